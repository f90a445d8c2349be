"""Hostile shards and images for reader tests: sparse tars, compression bombs, lying JPEG headers."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import textwrap
import zlib
from pathlib import Path

from PIL import Image


def _octal12(n: int) -> bytes:
    return b"%011o\0" % n


def sparse_member(name: str, real_size: int) -> bytes:
    """A GNU (old-style) sparse member whose header claims ``real_size`` bytes while storing one
    512-byte block: tarfile reads it back as ``real_size`` bytes (mostly zeros)."""
    ti = tarfile.TarInfo(name)
    ti.size = 512
    buf = bytearray(ti.tobuf(tarfile.GNU_FORMAT))
    buf[156:157] = b"S"
    buf[386:410] = _octal12(0) + _octal12(512)  # one data region at offset 0
    buf[482] = 0  # no extension blocks
    buf[483:495] = _octal12(real_size)
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf) + b"\x01" * 512


def sparse_tar(path: Path, n: int = 4, real_size: int = 250 * 2**20) -> Path:
    """``n`` samples, each one sparse ``.jpg`` claiming ``real_size`` bytes; the file is ~n KB."""
    path.write_bytes(b"".join(sparse_member(f"s{i}.jpg", real_size) for i in range(n)) + b"\0" * 1024)
    return path


def gz_bomb_tar(path: Path, n: int = 4, member_size: int = 200 * 2**20) -> Path:
    """A valid ``.tar.gz`` of ``n`` samples, each a ``member_size``-byte ``.jpg`` of zeros plus a
    ``.txt``: ~1 KB of gzip per MB. Each MB is deflated once after a full flush and repeated, so
    building 800 MB of tar costs a CRC pass, not a compression."""
    mib = b"\0" * 2**20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp.compress(b"")
    zero_mib = comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH)
    crc, size = 0, 0
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, no name

        def put(data: bytes, compressed: bytes | None = None) -> None:
            nonlocal crc, size
            crc, size = zlib.crc32(data, crc), size + len(data)
            f.write(
                compressed if compressed is not None else comp.compress(data) + comp.flush(zlib.Z_FULL_FLUSH)
            )

        for i in range(n):
            ti = tarfile.TarInfo(f"z{i}.jpg")
            ti.size = member_size
            put(ti.tobuf(tarfile.GNU_FORMAT))
            for _ in range(member_size // 2**20):
                put(mib, zero_mib)
            put(b"\0" * (member_size % 2**20 + (-member_size % 512)))
            txt = tarfile.TarInfo(f"z{i}.txt")
            txt.size = 5
            put(txt.tobuf(tarfile.GNU_FORMAT) + b"hello" + b"\0" * 507)
        put(b"\0" * 10240)
        f.write(comp.flush(zlib.Z_FINISH))
        f.write(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return path


def lying_jpeg(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF header claims ``width`` x ``height`` (libjpeg fills the rest)."""
    b = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 120, 120)).save(b, "JPEG", quality=50)
    data = bytearray(b.getvalue())
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def big_jpeg(path: Path, side: int = 8000) -> Path:
    """A real ``side`` x ``side`` photo-like JPEG (smooth gradients: small file, fast to encode)."""
    grad = Image.linear_gradient("L").resize((side, side))
    Image.merge(
        "RGB",
        (grad, grad.transpose(Image.Transpose.ROTATE_90), grad.transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
    ).save(path, "JPEG", quality=90)
    return path


def tar_bytes(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar (in memory) of ``(name, data)`` members in order; names may hold surrogate escapes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def tar_body(members: list[tarfile.TarInfo | tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """Tar members without the end-of-archive marker (as if more followed)."""
    out = []
    for m in members:
        ti, data = (m, b"") if isinstance(m, tarfile.TarInfo) else (tarfile.TarInfo(m[0]), m[1])
        ti.size = len(data)
        out.append(ti.tobuf(fmt, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512))
    return b"".join(out)


def nested_json(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def caption_json(uid: str, caption: str) -> bytes:
    return json.dumps({"uid": uid, "caption": caption}).encode()  # json escapes lone surrogates


def peak_rss_mb(code: str, timeout: float = 120) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; return (its peak RSS in MB, its stdout).

    Reads ``VmHWM`` (the peak of the process's own address space): ``ru_maxrss`` would also count
    the parent's peak, which Linux carries into a child across ``vfork``/``exec``."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        def _peak_kb():
            try:
                with open("/proc/self/status") as f:
                    return int(next(x for x in f if x.startswith("VmHWM:")).split()[1])
            except (OSError, StopIteration):
                import resource
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("PEAK_RSS_KB", _peak_kb())
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("PEAK_RSS_KB"))
    return int(line.split()[1]) / 1024, out.stdout
