"""Writing webdataset shards in the layout DataComp's resharder produces.

``{:08d}.tar`` shards of ``{key}.{ext}`` members plus a ``{:08d}_stats.json`` per shard. Each shard is
written to a temp name and renamed when complete; the writer records every file it wrote with its size
and sha256 (hashed while streaming, no second read) so an export can list what it owns.

Why the standard library's ``tarfile`` and not ``webdataset.TarWriter``: the format is one tar member per
``key.ext`` and nothing more, which ``tarfile`` writes directly (PAX headers, so long keys work; ``TarWriter``
defaults to USTAR, whose names stop at 100+155 bytes). ``import webdataset`` also imports torch when torch is
installed (``webdataset.compat`` -> ``webdataset.pytorch``): 6-7 s measured with torch 2.13 CPU on the dev
box, on every export, and the light install must not need either. So webdataset is a test dependency only:
the tests read every export back with webdataset's own ``tar_file_expander`` / ``WebDataset`` to prove the
round trip. Keys must already obey webdataset's key rule (see :func:`safe_key`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_SAFE = re.compile(r"[A-Za-z0-9_-]")


def safe_key(key: str) -> str:
    """``key`` made safe for webdataset's key rule (key = basename up to its first dot, no folders).

    Letters, digits, ``_`` and ``-`` are kept; every other character becomes ``%XX`` per UTF-8 byte
    (``%`` itself included), so the escape is deterministic, reversible (:func:`unescape_key`) and two
    different keys never collide. ``x.y/000`` -> ``x%2Ey%2F000``. Typical img2dataset keys
    (``000010042``) are unchanged.
    """
    if not key:
        return "%"  # an empty key would make members named '.jpg' (hidden files with no key)
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in key
    )


def unescape_key(key: str) -> str:
    """Inverse of :func:`safe_key`."""
    if key == "%":
        return ""
    raw = bytearray()
    i = 0
    while i < len(key):
        if key[i] == "%":
            raw += bytes([int(key[i + 1 : i + 3], 16)])
            i += 3
        else:
            raw += key[i].encode()
            i += 1
    return raw.decode("utf-8", "surrogatepass")


@dataclass
class WrittenFile:
    """A file the writer produced (name relative to its folder)."""

    name: str
    size: int
    sha256: str


class _HashingFile:
    """A write-only file wrapper that hashes and counts what passes through."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


class ShardWriter:
    """Write samples into numbered tar shards of at most ``shard_size`` samples."""

    def __init__(
        self,
        out_dir: str | Path,
        shard_size: int = 10_000,
        first_shard: int = 0,
        shard_format: str = "{:08d}.tar",
        stats_format: str = "{:08d}_stats.json",
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.shard_format = shard_format
        self.stats_format = stats_format
        self.index = first_shard
        self.count = 0
        self.total = 0
        self.shards: list[Path] = []
        self.files: list[WrittenFile] = []
        self._tar: tarfile.TarFile | None = None
        self._raw: BinaryIO | None = None
        self._hash: _HashingFile | None = None
        self._tmp: Path | None = None
        self._keys: list[str] = []
        self._key_set: set[str] = set()

    def _open(self) -> None:
        final = self.out_dir / self.shard_format.format(self.index)
        self._tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._raw = open(self._tmp, "wb")  # noqa: SIM115 - stays open across write() calls
        self._hash = _HashingFile(self._raw)
        self._tar = tarfile.open(fileobj=self._hash, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        self.count = 0
        self._keys = []
        self._key_set = set()

    def has_key(self, key: str) -> bool:
        """Whether the shard being written already holds ``key`` (keys must be unique within a shard)."""
        return key in self._key_set

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Add one sample; ``members`` maps extension (``jpg``, ``txt``, ``json``) to bytes."""
        if "/" in key or "." in key or not key:
            raise ValueError(f"key {key!r} breaks webdataset's key rule; escape it with safe_key()")
        if self._tar is None:
            self._open()
        assert self._tar is not None
        if key in self._key_set:
            raise ValueError(f"key {key!r} is already in this shard")
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1
        self.total += 1
        self._keys.append(key)
        self._key_set.add(key)
        if self.count >= self.shard_size:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._tar is None or self._tmp is None or self._raw is None or self._hash is None:
            return
        self._tar.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        final = self.out_dir / self.shard_format.format(self.index)
        os.replace(self._tmp, final)
        self.files.append(WrittenFile(final.name, self._hash.size, self._hash.h.hexdigest()))
        stats: dict[str, Any] = {
            "count": self.count,
            "successes": self.count,
            "first_key": self._keys[0],
            "last_key": self._keys[-1],
        }
        data = json.dumps(stats, indent=2).encode()
        spath = self.out_dir / self.stats_format.format(self.index)
        spath.write_bytes(data)
        self.files.append(WrittenFile(spath.name, len(data), hashlib.sha256(data).hexdigest()))
        self.shards.append(final)
        self.index += 1
        self._tar = self._raw = self._hash = None
        self._tmp = None

    def close(self) -> None:
        self._close_shard()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._tar is not None and self._tmp is not None:
            try:
                self._tar.close()
            finally:
                if self._raw is not None:
                    self._raw.close()
                self._tmp.unlink(missing_ok=True)
