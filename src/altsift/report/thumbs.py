"""Thumbnails for the HTML report, read from the original shards with bounded memory.

Where a sample lives: its score table's schema metadata ``altsift.shard`` holds the source ``path``
of the shard, and the table's ``key`` column the sample's key inside it. :func:`read_thumbnails`
groups the wanted samples by shard, reads only those shards, streams each one member by member and
stops as soon as every wanted key of that shard was found; only the image bytes of wanted samples
are kept, and each image is decoded (with the decompression-bomb guard of :func:`decode_image`) and
downscaled to a small JPEG at once. A shard that is missing or unreadable, or a sample that is not
found or does not decode, gives a :class:`Thumb` with ``error`` set (the report draws a placeholder).

All shard access is in :func:`iter_shard_images`, which uses the scoring reader's streaming iterator,
so local paths and object-store URLs (``s3://``, ``gs://``, ``https://``) both work.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from altsift.io.shards import IMAGE_EXTS, ReadLimits, decode_image, open_shard
from altsift.io.tables import SHARD_META_KEY

log = logging.getLogger(__name__)

THUMB_SIDE = 128
JPEG_QUALITY = 80
MAX_MEMBER_BYTES = 64 * 2**20
MAX_IMAGE_PIXELS = 178_956_970  # the scoring default (ScoreOptions.max_image_pixels)
MAX_DECODE_SIDE = 4096  # the scoring default: OCR polygons are in this (possibly downscaled) frame


@dataclass
class Thumb:
    """A downscaled JPEG (``data_uri``) and the frame the scoring signals saw (``frame`` w, h)."""

    data_uri: str | None = None
    width: int = 0
    height: int = 0
    frame: tuple[int, int] | None = None  # size of the image the signals (and OCR polygons) used
    error: str | None = None


def shard_sources(files: Iterable[Path]) -> dict[str, str | None]:
    """``{table stem: source shard path}`` from each score table's ``altsift.shard`` metadata."""
    out: dict[str, str | None] = {}
    for f in files:
        raw = (pq.read_schema(f).metadata or {}).get(SHARD_META_KEY)
        try:
            out[f.stem] = json.loads(raw).get("path") if raw else None
        except (ValueError, AttributeError):
            out[f.stem] = None
    return out


def iter_shard_images(path: str, keys: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(key, image bytes)`` for the wanted ``keys`` of one shard (local path or fsspec URL),
    streaming with the scoring reader (``io.shards.open_shard``: one sample held at a time, per-member
    byte budget); stops once all were found. Raises OSError when the shard is missing or damaged
    before every wanted key was found (the keys yielded before the damage stand)."""
    left = set(keys)
    limits = ReadLimits(max_member_bytes=MAX_MEMBER_BYTES, max_sample_bytes=MAX_MEMBER_BYTES * 2)
    with open_shard(path, limits, extensions=IMAGE_EXTS) as stream:
        for sample in stream:
            if sample.key in left:
                data = next((sample.files[e] for e in IMAGE_EXTS if e in sample.files), None)
                if data is not None:
                    left.discard(sample.key)
                    yield sample.key, data
            if not left:
                return
    if stream.error:  # wanted keys are left and the shard could not be read to its end
        raise OSError(stream.error)


def make_thumb(data: bytes, side: int = THUMB_SIDE, max_decode_side: int | None = MAX_DECODE_SIDE) -> Thumb:
    """Decode safely, downscale to ``side`` px on the long side, encode as a JPEG data URI."""
    im, _status, err, orig = decode_image(data, MAX_IMAGE_PIXELS, max(side * 2, 256))
    if im is None:
        return Thumb(error=err or "cannot decode image")
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    frame = orig
    if orig and max_decode_side and max(orig) > max_decode_side:  # the scoring decoder downscaled it
        s = max_decode_side / max(orig)
        frame = (round(orig[0] * s), round(orig[1] * s))
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Thumb(data_uri=uri, width=im.width, height=im.height, frame=frame)


def read_thumbnails(
    wanted: Iterable[tuple[str, str]],
    sources: dict[str, str | None],
    side: int = THUMB_SIDE,
    max_decode_side: int | None = MAX_DECODE_SIDE,
    progress: bool = True,
) -> dict[tuple[str, str], Thumb]:
    """Thumbnails for ``(shard, key)`` pairs; every pair gets a :class:`Thumb` (``error`` on failure)."""
    from tqdm.auto import tqdm

    by_shard: dict[str, set[str]] = {}
    for shard, key in wanted:
        by_shard.setdefault(shard, set()).add(key)
    out: dict[tuple[str, str], Thumb] = {}
    for shard in tqdm(sorted(by_shard), desc="report: thumbnails", unit="shard", disable=not progress):
        keys = by_shard[shard]
        src = sources.get(shard)
        err = None
        if not src:
            err = "the score table does not record its source shard"
        elif "://" not in src and not Path(src).is_file():
            err = f"shard not found: {src}"
        else:
            try:
                for key, data in iter_shard_images(src, keys):
                    out[(shard, key)] = make_thumb(data, side, max_decode_side)
            except (OSError, tarfile.TarError, EOFError, ValueError) as e:
                err = f"cannot read shard {src}: {type(e).__name__}: {e}"
                log.warning("report: %s", err)
        for key in keys:
            out.setdefault((shard, key), Thumb(error=err or "image not found in the shard"))
    return out
