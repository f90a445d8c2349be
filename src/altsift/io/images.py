"""Image decoding with a pixel budget decided from the header, before any pixel is allocated.

Every function takes the encoded bytes of one sample and never raises on bad data: problems come
back as a status (``missing_image``, ``empty_image``, ``bad_image``, ``image_too_large``; meanings in
``io.shards.STATUS_CODES``) with a message.

- ``image_header`` reads only the header (``Image.open(...).size``, no pixel decoded): the original
  size for ``original_width/height`` when no signal needs pixels.
- ``decode_image`` refuses an image whose header claims more than ``max_pixels`` pixels, and decodes
  a JPEG straight to the smallest DCT scale (1/2, 1/4, 1/8, via PIL's ``draft()``) that still covers
  ``max_side`` on its longer side, *keeping the aspect ratio* (a 65500x2700 header is decoded at 1/8,
  ~8 MB, not 530 MB), then downscales to ``max_side``. PNG, WebP, GIF and BMP cannot be decoded at a
  reduced scale, so for them ``max_pixels`` is the whole budget (peak ~4 bytes per claimed pixel).
- ``verify_image`` decodes to check the data (JPEG at 1/8 scale) and keeps no pixels.

Only ``DECODE_FORMATS`` are opened (the formats img2dataset writes plus GIF/BMP): PIL's other plugins
(EPS via Ghostscript, TIFF, PSD, ...) are never reached from untrusted shards. PIL's own
decompression-bomb check (``Image.MAX_IMAGE_PIXELS``) still applies on top of ``max_pixels``.

Public API::

    DECODE_FORMATS: tuple[str, ...]
    class Decoded(NamedTuple): image, status, error, size       # unpacks like the old 4-tuple
    image_header(data, max_pixels=None) -> Decoded               # image is None
    decode_image(data, max_pixels, max_side=None) -> Decoded
    verify_image(data, max_pixels) -> Decoded                    # image is None
"""

from __future__ import annotations

import io
import re
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

Image.init()  # register every plugin once, so the allow-list below can be checked against it
#: The only formats PIL may open (those of this list the installed Pillow supports). JPEG includes
#: camera multi-picture files (PIL reports them as "MPO").
DECODE_FORMATS = tuple(f for f in ("JPEG", "PNG", "WEBP", "GIF", "BMP") if f in Image.OPEN)
_DRAFT_FORMATS = ("JPEG", "MPO")
_VERIFY_SIDE = 64  # JPEG verification decodes at the coarsest DCT scale at or above this side


class Decoded(NamedTuple):
    """Result of reading one image. ``size`` is the original (header) size when it could be read."""

    image: Image.Image | None
    status: str | None  # None when fine
    error: str | None
    size: tuple[int, int] | None


def _clean_message(e: BaseException) -> str:
    msg = re.sub(r" at 0x[0-9a-fA-F]+", "", str(e))  # no object addresses: messages stay reproducible
    return f"{type(e).__name__}: {msg}"[:500]


def _precheck(data: bytes | None) -> Decoded | None:
    if data is None:
        return Decoded(None, "missing_image", "no image bytes", None)
    if len(data) == 0:
        return Decoded(None, "empty_image", "image member is zero bytes", None)
    return None


def _too_large(w: int, h: int, max_pixels: int | None) -> Decoded | None:
    if w <= 0 or h <= 0:
        return Decoded(None, "bad_image", f"image header claims a {w}x{h} size", None)
    if max_pixels is not None and w * h > max_pixels:
        return Decoded(None, "image_too_large",
                       f"{w}x{h} exceeds {max_pixels} pixels (decompression bomb guard)", (w, h))
    return None


def _failure(e: Exception) -> Decoded:
    if isinstance(e, Image.DecompressionBombError):
        return Decoded(None, "image_too_large", str(e), None)
    if isinstance(e, UnidentifiedImageError):
        return Decoded(None, "bad_image", f"not an image in a supported format ({', '.join(DECODE_FORMATS)})", None)
    return Decoded(None, "bad_image", f"cannot decode image: {_clean_message(e)}", None)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longer side is ``side`` (aspect kept, at least 1 pixel each way)."""
    w, h = size
    scale = side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def image_header(data: bytes | None, max_pixels: int | None = None) -> Decoded:
    """The original size from the header alone (nothing decoded); ``image_too_large`` above ``max_pixels``."""
    pre = _precheck(data)
    if pre is not None:
        return pre
    try:
        with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as im:
            w, h = im.size
    except Exception as e:  # PIL raises many types for corrupt headers
        return _failure(e)
    bad = _too_large(w, h, max_pixels)
    return bad if bad is not None else Decoded(None, None, None, (w, h))


def _decode(data: bytes | None, max_pixels: int, max_side: int | None, keep: bool) -> Decoded:
    pre = _precheck(data)
    if pre is not None:
        return pre
    try:
        with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as im:
            w, h = im.size
            bad = _too_large(w, h, max_pixels)
            if bad is not None:
                return bad
            target = _fit((w, h), max_side) if max_side and max(w, h) > max_side else None
            if target is not None and im.format in _DRAFT_FORMATS:
                im.draft("RGB", target)  # DCT scaling: decoded at 1/2..1/8 scale, still >= target
            im.load()
            if not keep:
                return Decoded(None, None, None, (w, h))
            out = im.convert("RGB")  # always a new image: `im` is closed when the block ends
        if max_side and max(out.size) > max_side:
            out.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return Decoded(out, None, None, (w, h))
    except Exception as e:
        return _failure(e)


def decode_image(data: bytes | None, max_pixels: int, max_side: int | None = None) -> Decoded:
    """Decode to RGB within the pixel budget. Never raises on bad data.

    Refused (``image_too_large``, nothing decoded) when the header claims more than ``max_pixels``;
    downscaled so the longer side is at most ``max_side`` (JPEGs are decoded at reduced scale
    directly). ``size`` is always the original size.
    """
    return _decode(data, max_pixels, max_side, keep=True)


def verify_image(data: bytes | None, max_pixels: int) -> Decoded:
    """Decode only to check the data (JPEG at its coarsest useful DCT scale); no pixels are kept."""
    return _decode(data, max_pixels, _VERIFY_SIDE, keep=False)
