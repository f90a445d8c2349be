"""Build small webdataset shards for tests (img2dataset layout)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(w: int = 256, h: int = 224, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", quality=85)
    return b.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (a decompression-bomb shape) with no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def uid_of(i: int) -> str:
    return hashlib.md5(f"test-{i}".encode()).hexdigest()


def sample(i: int, text: str | None = None, w: int = 256, h: int = 224, **meta) -> dict[str, bytes]:
    """Members of one valid sample."""
    js = {"uid": uid_of(i), "original_width": w, "original_height": h, **meta}
    return {
        "jpg": jpeg_bytes(w, h, seed=i),
        "txt": (text if text is not None else f"a photo of a red car number {i} on the street").encode(),
        "json": json.dumps(js).encode(),
    }


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """Write ``[(key, {ext: bytes})]`` as a tar; member names are ``key.ext``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}" if ext else key)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def make_shards(root: Path, n_shards: int = 3, per_shard: int = 6, start: int = 0) -> list[Path]:
    """``n_shards`` valid shards of ``per_shard`` samples each, uids ``uid_of(start..)``."""
    paths = []
    i = start
    for s in range(n_shards):
        items = []
        for j in range(per_shard):
            items.append((f"{s:05d}{j:04d}", sample(i)))
            i += 1
        paths.append(write_tar(root / f"{s:05d}.tar", items))
    return paths
