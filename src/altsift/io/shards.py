"""Robust reading of webdataset shards in the img2dataset / DataComp layout.

A shard is a tar of ``{key}.jpg|png|webp``, ``{key}.txt`` and ``{key}.json`` members. We read it with
Python's ``tarfile`` in streaming mode rather than ``webdataset``'s iterators because we need
member-level control: every sample must come out exactly once with a status, a truncated tar must
keep the samples read before the damage, and members named ``../x`` or ``/abs/x`` must be reported
(they are never extracted; nothing is written to disk while reading).
"""

from __future__ import annotations

import glob
import io
import json
import logging
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import braceexpand
from PIL import Image

from altsift.errors import ConfigError
from altsift.io.uids import derive_uid, normalize_uid

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
SHARD_SUFFIXES = (".tar",)


def expand_inputs(specs: Iterable[str]) -> list[Path]:
    """Turn paths, globs, brace patterns (``shards/{00000..00099}.tar``) and folders into shard paths.

    Raises ConfigError naming every spec that matched nothing.
    """
    out: list[Path] = []
    missing: list[str] = []
    for spec in specs:
        found: list[Path] = []
        for pattern in braceexpand.braceexpand(str(spec)):
            p = Path(pattern).expanduser()
            if p.is_dir():
                found.extend(sorted(q for q in p.rglob("*") if q.suffix in SHARD_SUFFIXES and q.is_file()))
            elif any(ch in pattern for ch in "*?["):
                found.extend(sorted(Path(g) for g in glob.glob(str(p)) if Path(g).is_file()))
            elif p.is_file():
                found.append(p)
            else:
                missing.append(pattern)
        if not found and not missing:
            missing.append(str(spec))
        out.extend(found)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError(f"input not found: {shown}")
    seen: set[Path] = set()
    uniq = []
    for p in out:
        rp = p.resolve()
        if rp not in seen:
            seen.add(rp)
            uniq.append(p)
    if not uniq:
        raise ConfigError("no input shards given")
    return uniq


def shard_names(paths: list[Path]) -> list[str]:
    """Unique, filesystem-safe table names for shards: the stem, disambiguated by parent folders."""
    names: list[str] = []
    used: set[str] = set()
    for p in paths:
        stem = p.name.removesuffix(".tar")
        name = stem
        parent = p.parent
        while name in used and parent != parent.parent:
            name = f"{parent.name}__{name}"
            parent = parent.parent
        i = 1
        base = name
        while name in used:
            name = f"{base}__{i}"
            i += 1
        used.add(name)
        names.append(name)
    return names


@dataclass
class RawSample:
    """One sample as read from a tar: its members by extension, plus read-time problems."""

    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None  # status code when the sample is unusable at read time
    detail: str | None = None


@dataclass
class ShardReadResult:
    samples: list[RawSample]
    error: str | None = None  # shard-level error (empty, truncated, not a tar)


def _split_member(name: str) -> tuple[str, str]:
    """webdataset key/extension split: key = path up to the first dot of the basename."""
    p = PurePosixPath(name)
    base = p.name
    if "." not in base:
        return name, ""
    stem, ext = base.split(".", 1)
    key = str(p.parent / stem) if str(p.parent) not in ("", ".") else stem
    return key, ext.lower()


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name)
    return name.startswith("/") or ".." in p.parts


def read_shard(path: Path, max_member_bytes: int = 256 * 2**20) -> ShardReadResult:
    """Read every sample of a shard into memory, grouping members by key in tar order."""
    samples: dict[str, RawSample] = {}
    error: str | None = None
    try:
        with tarfile.open(path, mode="r|*") as tf:
            for m in tf:
                if m.isdir():
                    continue
                key, ext = _split_member(m.name)
                s = samples.setdefault(key, RawSample(key=key))
                if not m.isfile():  # links and devices are never followed or read
                    s.problem, s.detail = "unsafe_path", f"tar member '{m.name}' is a link or special file"
                    continue
                if _unsafe(m.name):
                    s.problem, s.detail = "unsafe_path", f"tar member name '{m.name}' escapes the shard"
                    continue
                if m.size > max_member_bytes:
                    s.problem, s.detail = "member_too_large", f"member '{m.name}' is {m.size} bytes"
                    continue
                f = tf.extractfile(m)
                if f is None:
                    continue
                s.files[ext] = f.read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        error = f"{type(e).__name__}: {e}"
        # The last sample may be incomplete: flag it rather than guess.
        if samples:
            last = next(reversed(samples.values()))
            if last.problem is None:
                last.problem, last.detail = "truncated_shard", f"shard ended while reading this sample ({error})"
    if not samples and error is None:
        error = "empty shard: no samples"
    return ShardReadResult(samples=list(samples.values()), error=error)


def _size(value: Any) -> int | None:
    """A json image side as a positive int32, else None (NaN, Infinity, 1e400, bools, strings, <= 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 < value < 2**31 else None  # NaN fails both comparisons


def parse_sample(raw: RawSample, shard: str, seen_uids: set[str]) -> dict[str, Any]:
    """Turn a RawSample into a row dict (without decoding the image) and give it a status."""
    problems: list[tuple[str, str]] = []
    if raw.problem:
        problems.append((raw.problem, raw.detail or raw.problem))
    meta: dict[str, Any] = {}
    if "json" in raw.files:
        try:
            loaded = json.loads(raw.files["json"].decode("utf-8"))
            if isinstance(loaded, dict):
                meta = loaded
            else:
                problems.append(("bad_json", "json is not an object"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(("bad_json", f"invalid json: {e}"))
    text: str | None = None
    if "txt" in raw.files:
        try:
            text = raw.files["txt"].decode("utf-8")
        except UnicodeDecodeError as e:
            text = raw.files["txt"].decode("utf-8", errors="replace")
            problems.append(("bad_utf8", f"caption is not valid UTF-8: {e}"))
    elif isinstance(meta.get("caption"), str):
        text = meta["caption"]
    if text is None:
        problems.append(("missing_caption", "no .txt member and no caption in json"))
    elif not text.strip():
        problems.append(("empty_caption", "caption is empty"))
    image_ext = next((e for e in IMAGE_EXTS if e in raw.files), None)
    if image_ext is None and not raw.problem:
        problems.append(("missing_image", f"no image member ({'/'.join(IMAGE_EXTS)})"))
    uid = normalize_uid(meta.get("uid"))
    uid_derived = uid is None
    if uid is None:
        uid = derive_uid(shard, raw.key)
    if uid in seen_uids:
        problems.append(("duplicate_uid", f"uid {uid} already seen in this shard"))
    seen_uids.add(uid)
    ow, oh = meta.get("original_width"), meta.get("original_height")
    return {
        "uid": uid,
        "uid_derived": uid_derived,
        "key": raw.key,
        "shard": shard,
        "text": text,
        "status": problems[0][0] if problems else "ok",
        "error": "; ".join(d for _, d in problems) if problems else None,
        "original_width": _size(ow),
        "original_height": _size(oh),
        "json": meta,
        "_image_bytes": raw.files.get(image_ext) if image_ext else None,
        "_image_ext": image_ext,
    }


def decode_image(data: bytes | None, max_pixels: int, max_side: int | None) -> tuple[Image.Image | None, str | None, str | None, tuple[int, int] | None]:
    """Decode to RGB. Returns (image, status, error, original size). Never raises on bad data.

    Images larger than ``max_pixels`` are refused (decompression bomb); images with a side above
    ``max_side`` are downscaled (the original size is still reported).
    """
    if data is None:
        return None, "missing_image", "no image bytes", None
    if len(data) == 0:
        return None, "empty_image", "image member is zero bytes", None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                return None, "image_too_large", f"{w}x{h} exceeds {max_pixels} pixels (decompression bomb guard)", (w, h)
            if max_side and max(w, h) > max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))
            im = im.convert("RGB")
            im.load()
            if max_side and max(im.size) > max_side:
                im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
            return im, None, None, (w, h)
    except Image.DecompressionBombError as e:
        return None, "image_too_large", str(e), None
    except Exception as e:  # PIL raises many types for corrupt data
        msg = re.sub(r" at 0x[0-9a-fA-F]+", "", str(e))  # no object addresses: messages stay reproducible
        return None, "bad_image", f"cannot decode image: {type(e).__name__}: {msg}", None
