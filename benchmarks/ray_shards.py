"""Synthetic webdataset shards for the Ray benchmarks (img2dataset layout, real JPEG bytes, varied captions)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "red",
    "car",
    "on",
    "a",
    "street",
    "near",
    "the",
    "old",
    "house",
    "with",
    "blue",
    "sky",
    "and",
    "green",
    "trees",
    "in",
    "summer",
    "light",
    "dog",
    "cat",
    "bike",
    "city",
    "beach",
    "mountain",
    "river",
]


def jpegs(n: int, side: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct JPEGs of ``side`` x ``side`` (smooth gradients plus noise: realistic sizes)."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:side, 0:side]
    for _ in range(n):
        base = (np.stack([xx, yy, (xx + yy) // 2], -1) * (255 / max(side, 1))).astype(np.float32)
        arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        b = io.BytesIO()
        Image.fromarray(arr).save(b, "JPEG", quality=85)
        out.append(b.getvalue())
    return out


def write_shards(
    root: Path, n_shards: int, per_shard: int, side: int = 64, distinct_images: int = 64
) -> list[Path]:
    """Write ``n_shards`` tars of ``per_shard`` samples (jpg + txt + json); images cycle through a small set."""
    root.mkdir(parents=True, exist_ok=True)
    images = jpegs(distinct_images, side)
    rng = np.random.default_rng(1)
    paths = []
    i = 0
    for s in range(n_shards):
        p = root / f"{s:05d}.tar"
        with tarfile.open(p, "w") as tf:
            for j in range(per_shard):
                words = rng.choice(WORDS, size=int(rng.integers(4, 16)))
                members = {
                    "jpg": images[i % len(images)],
                    "txt": " ".join(words).encode(),
                    "json": json.dumps({"uid": hashlib.md5(f"b{i}".encode()).hexdigest()}).encode(),
                }
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{s:05d}{j:05d}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
                i += 1
        paths.append(p)
    return paths
