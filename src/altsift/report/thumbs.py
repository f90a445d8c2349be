"""Thumbnails for the HTML report, read from the original shards with bounded memory.

Where a sample lives: its score table's schema metadata ``altsift.shard`` holds the source ``path``
of the shard, and the table's ``key`` column the sample's key inside it. :func:`read_thumbnails`
groups the wanted samples by shard, reads only those shards, streams each one member by member and
stops as soon as every wanted key of that shard was found; only the image bytes of wanted samples
are kept, and each image is decoded (with the decompression-bomb guard of :func:`decode_image`) and
downscaled to a small JPEG at once. A shard that is missing or unreadable, or a sample that is not
found or does not decode, gives a :class:`Thumb` with ``error`` set (the report draws a placeholder).

All shard access is in :func:`iter_shard_images`, so switching to the streaming iterator of
``altsift.io.shards`` (or to object-store URLs) touches one function.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from altsift.io.shards import IMAGE_EXTS, decode_image
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


def _key_ext(name: str) -> tuple[str, str]:
    """webdataset key/extension split (key = path up to the first dot of the basename)."""
    p = PurePosixPath(name)
    if "." not in p.name:
        return name, ""
    stem, ext = p.name.split(".", 1)
    key = str(p.parent / stem) if str(p.parent) not in ("", ".") else stem
    return key, ext.lower()


def iter_shard_images(path: str, keys: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(key, image bytes)`` for the wanted ``keys`` of one shard, streaming; stop once all found.

    Only regular members are read (links and special files are skipped), each at most
    ``MAX_MEMBER_BYTES``; nothing is extracted to disk. Raises OSError / tarfile.TarError when the
    shard cannot be opened or is damaged (samples yielded before the damage stand).
    """
    if "://" in path:
        raise OSError(f"remote shard {path} is not read by the report")
    left = set(keys)
    with tarfile.open(path, mode="r|*") as tf:
        for m in tf:
            if not left:
                break
            if not m.isfile() or m.size > MAX_MEMBER_BYTES:
                continue
            key, ext = _key_ext(m.name)
            if key in left and ext in IMAGE_EXTS:
                f = tf.extractfile(m)
                if f is not None:
                    left.discard(key)
                    yield key, f.read()


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
