"""Image decoding within a pixel budget decided from the header."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from helpers_hostile import big_jpeg, lying_jpeg, peak_rss_mb
from helpers_shards import jpeg_bytes, png_header_only

DEFAULT_PIXELS = 178_956_970


def test_jpeg_header_claiming_a_huge_strip_is_decoded_at_reduced_scale():
    """A 0.7 KB JPEG claiming 65500x2700 decoded to 530 MB (draft() ignored a box the height missed)."""
    data = lying_jpeg(65500, 2700)
    assert len(data) < 2500
    peak, out = peak_rss_mb(f"""
        from altsift.io.shards import decode_image
        image, status, error, size = decode_image({data!r}, {DEFAULT_PIXELS}, 4096)
        print("RESULT", image.size, status, size)
    """)
    assert peak < 200, f"peak RSS {peak:.0f} MB"  # the old decode: ~1.4 GB
    assert "RESULT (4096, 169) None (65500, 2700)" in out


def test_big_real_jpeg_is_decoded_at_reduced_scale(tmp_path):
    """An 8000x8000 photo peaked at ~700 MB per decode (full decode, RGB copy, thumbnail)."""
    p = big_jpeg(tmp_path / "big.jpg")
    peak, out = peak_rss_mb(f"""
        from altsift.io.shards import decode_image
        image, status, error, size = decode_image(open({str(p)!r}, "rb").read(), {DEFAULT_PIXELS}, 4096)
        print("RESULT", image.size, image.mode, status, size)
    """)
    assert peak < 250, f"peak RSS {peak:.0f} MB"  # measured ~100 MB; the old decode ~730 MB
    assert "RESULT (4000, 4000) RGB None (8000, 8000)" in out  # decoded at 1/2 scale


@pytest.mark.parametrize(
    "size,side", [((1000, 300), 512), ((5000, 4000), 1024), ((300, 200), 512), ((2049, 10), 1024)]
)
def test_jpeg_output_stays_within_max_side_and_close_to_it(size, side):
    from altsift.io.images import decode_image

    d = decode_image(jpeg_bytes(*size), DEFAULT_PIXELS, side)
    assert d.status is None and d.size == size
    longest = max(d.image.size)
    assert longest <= side
    assert longest >= min(max(size), 0.75 * side) - 1
    w, h = d.image.size
    assert abs(w / h - size[0] / size[1]) < 0.2 * size[0] / size[1] + 0.5  # aspect kept


def test_png_and_webp_are_downscaled_and_refused_by_header():
    from altsift.io.images import decode_image, image_header, verify_image

    for fmt in ("PNG", "WEBP"):
        b = io.BytesIO()
        Image.new("RGBA", (3000, 1000), (1, 2, 3, 4)).save(b, fmt)
        d = decode_image(b.getvalue(), DEFAULT_PIXELS, 600)
        assert (
            d.status is None
            and d.image.size == (600, 200)
            and d.image.mode == "RGB"
            and d.size == (3000, 1000)
        )
        too = decode_image(b.getvalue(), 2_000_000, 600)
        assert (too.image, too.status, too.size) == (None, "image_too_large", (3000, 1000))
        assert image_header(b.getvalue()) == (None, None, None, (3000, 1000))
        assert verify_image(b.getvalue(), DEFAULT_PIXELS) == (None, None, None, (3000, 1000))
    bomb = png_header_only(100_000, 100_000)
    assert image_header(bomb, DEFAULT_PIXELS).status == "image_too_large"
    assert decode_image(bomb, DEFAULT_PIXELS, 4096).status == "image_too_large"


def test_header_only_and_verify_do_not_decode_pixels():
    from altsift.io.images import decode_image, image_header, verify_image

    truncated = jpeg_bytes(512, 512, seed=3)[:3000]  # header intact, entropy data cut
    assert image_header(truncated).size == (512, 512) and image_header(truncated).status is None
    assert verify_image(truncated, DEFAULT_PIXELS).status == "bad_image"
    assert decode_image(truncated, DEFAULT_PIXELS, 4096).status == "bad_image"
    ok = jpeg_bytes(512, 512, seed=3)
    assert verify_image(ok, DEFAULT_PIXELS) == (None, None, None, (512, 512))
    for data, status in ((None, "missing_image"), (b"", "empty_image"), (b"garbage" * 10, "bad_image")):
        for fn in (
            image_header,
            lambda d: verify_image(d, DEFAULT_PIXELS),
            lambda d: decode_image(d, DEFAULT_PIXELS),
        ):
            assert fn(data).status == status


def test_only_allow_listed_formats_are_opened():
    """TIFF, EPS, PSD... are never handed to their PIL plugins from an untrusted shard."""
    from altsift.io.images import DECODE_FORMATS, decode_image, image_header

    assert set(DECODE_FORMATS) <= {"JPEG", "PNG", "WEBP", "GIF", "BMP"} and "JPEG" in DECODE_FORMATS
    b = io.BytesIO()
    Image.new("RGB", (32, 32)).save(b, "TIFF")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    for data in (b.getvalue(), eps):
        assert decode_image(data, DEFAULT_PIXELS, 4096)[1] == "bad_image"
        assert image_header(data).status == "bad_image"
    g = io.BytesIO()
    Image.new("P", (40, 20)).save(g, "GIF")
    assert decode_image(g.getvalue(), DEFAULT_PIXELS, 4096).image.size == (40, 20)
