"""Writing webdataset shards in the layout DataComp's resharder produces.

``{:08d}.tar`` shards of ``{key}.{ext}`` members plus a ``{:08d}_stats.json`` per shard. Each shard is
written to a temp name and renamed when complete.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any


class ShardWriter:
    """Write samples into numbered tar shards of at most ``shard_size`` samples."""

    def __init__(self, out_dir: str | Path, shard_size: int = 10_000, first_shard: int = 0,
                 shard_format: str = "{:08d}.tar", stats_format: str = "{:08d}_stats.json") -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.shard_format = shard_format
        self.stats_format = stats_format
        self.index = first_shard
        self.count = 0
        self.total = 0
        self.shards: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._keys: list[str] = []

    def _open(self) -> None:
        final = self.out_dir / self.shard_format.format(self.index)
        self._tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._tar = tarfile.open(self._tmp, "w")  # noqa: SIM115 - stays open across write() calls
        self.count = 0
        self._keys = []

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Add one sample; ``members`` maps extension (``jpg``, ``txt``, ``json``) to bytes."""
        if self._tar is None:
            self._open()
        assert self._tar is not None
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1
        self.total += 1
        self._keys.append(key)
        if self.count >= self.shard_size:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._tar is None or self._tmp is None:
            return
        self._tar.close()
        final = self.out_dir / self.shard_format.format(self.index)
        os.replace(self._tmp, final)
        stats: dict[str, Any] = {"count": self.count, "successes": self.count, "first_key": self._keys[0],
                                 "last_key": self._keys[-1]}
        (self.out_dir / self.stats_format.format(self.index)).write_text(json.dumps(stats, indent=2))
        self.shards.append(final)
        self.index += 1
        self._tar = None
        self._tmp = None

    def close(self) -> None:
        self._close_shard()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._tar is not None and self._tmp is not None:
            self._tar.close()
            self._tmp.unlink(missing_ok=True)
