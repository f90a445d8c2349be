"""Image decoding with a pixel budget decided from the header, before any pixel is allocated.

Every function takes the encoded bytes of one sample and never raises on bad data: problems come
back as a status (``missing_image``, ``empty_image``, ``bad_image``, ``image_too_large``; meanings in
``io.shards.STATUS_CODES``) with a message.

- ``image_header`` reads only the header (``Image.open(...).size``, no pixel decoded): the original
  size for ``original_width/height`` when no signal needs pixels.
- ``decode_image`` refuses an image whose header claims more than ``max_pixels`` pixels. A JPEG larger
  than ``max_side`` is decoded straight at reduced scale (1/2, 1/4 or 1/8, libjpeg's DCT scaling via
  PIL's ``draft()``): the coarsest scale whose longer side stays >= 3/4 of ``max_side``, judged on the
  longer side so the aspect ratio cannot defeat it (a 65500x2700 header is decoded at 1/8, ~8 MB, not
  530 MB; an 8000x8000 photo at 1/2 for ``max_side=4096``). The result is then downscaled to at most
  ``max_side`` (so a JPEG's longer side ends between 3/4 x and 1 x ``max_side``). PNG, WebP, GIF and
  BMP cannot be decoded at reduced scale: for them ``max_pixels`` is the whole budget (peak ~4 bytes
  per claimed pixel, plus the RGB copy).
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
_DRAFT_FLOOR = 0.75  # a reduced-scale JPEG decode keeps its longer side >= this fraction of max_side


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
        return Decoded(
            None, "image_too_large", f"{w}x{h} exceeds {max_pixels} pixels (decompression bomb guard)", (w, h)
        )
    return None


def _failure(e: Exception) -> Decoded:
    if isinstance(e, Image.DecompressionBombError):
        return Decoded(None, "image_too_large", str(e), None)
    if isinstance(e, UnidentifiedImageError):
        return Decoded(
            None, "bad_image", f"not an image in a supported format ({', '.join(DECODE_FORMATS)})", None
        )
    return Decoded(None, "bad_image", f"cannot decode image: {_clean_message(e)}", None)


def _draft_scale(size: tuple[int, int], max_side: int) -> int:
    """The coarsest JPEG DCT scale (8, 4, 2 or 1) whose longer side stays >= 3/4 of ``max_side``."""
    longest = max(size)
    return next((s for s in (8, 4, 2) if longest / s >= max_side * _DRAFT_FLOOR), 1)


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
    im: Image.Image | None = None
    out: Image.Image | None = None
    try:
        im = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
        w, h = im.size
        bad = _too_large(w, h, max_pixels)
        if bad is not None:
            return bad
        if max_side and max(w, h) > max_side and im.format in _DRAFT_FORMATS:
            scale = _draft_scale((w, h), max_side)
            if scale > 1:  # DCT scaling: libjpeg decodes straight to 1/scale of the size
                im.draft("RGB", (max(1, w // scale), max(1, h // scale)))
        im.load()
        if not keep:
            return Decoded(None, None, None, (w, h))
        out = im if im.mode == "RGB" else im.convert("RGB")  # no copy when already RGB
        if max_side and max(out.size) > max_side:
            out.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return Decoded(out, None, None, (w, h))
    except Exception as e:
        return _failure(e)
    finally:
        if im is not None and im is not out:
            im.close()


def decode_image(data: bytes | None, max_pixels: int, max_side: int | None = None) -> Decoded:
    """Decode to RGB within the pixel budget. Never raises on bad data.

    Refused (``image_too_large``, nothing decoded) when the header claims more than ``max_pixels``;
    downscaled so the longer side is at most ``max_side`` (JPEGs are decoded at reduced scale
    directly, ending between 3/4 x and 1 x ``max_side``). ``size`` is always the original size.
    """
    return _decode(data, max_pixels, max_side, keep=True)


def verify_image(data: bytes | None, max_pixels: int) -> Decoded:
    """Decode only to check the data (JPEG at its coarsest useful DCT scale); no pixels are kept."""
    return _decode(data, max_pixels, _VERIFY_SIDE, keep=False)
