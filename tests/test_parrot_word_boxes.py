"""Word-level Co-Emb. text removal (issue 14 item 2): line boxes split into word boxes, real RapidOCR."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from altsift.analysis.probe import overlay_text
from altsift.models.ocr import RapidOCRSpotter, split_line
from altsift.signals.ocr import OCRSignal
from altsift.signals.parrot import co_emb_boxes, normalize_word
from altsift.signals.text_removal import inpaint


def test_split_line_by_character_positions():
    quad = [[0, 0], [100, 0], [100, 10], [0, 10]]
    boxes = split_line(quad, "ab cdefg", 0.9)  # 8 characters: "ab" = [0, 2), "cdefg" = [3, 8)
    assert [b.text for b in boxes] == ["ab", "cdefg"]
    np.testing.assert_allclose(boxes[0].polygon, [[0, 0], [25, 0], [25, 10], [0, 10]])
    np.testing.assert_allclose(boxes[1].polygon, [[37.5, 0], [100, 0], [100, 10], [37.5, 10]])
    assert [b.text for b in split_line(quad, "single", 0.9)] == ["single"]


def test_split_line_uses_character_boxes_on_a_rotated_line():
    # a line rotated by 90 degrees (reading downwards), with per-character boxes from the recogniser
    quad = [[10, 0], [10, 40], [0, 40], [0, 0]]
    chars = list("a bb")
    cboxes = [[[10, y], [10, y + 8], [0, y + 8], [0, y]] for y in (0, 10, 20, 30)]
    a, bb = split_line(quad, "a bb", 1.0, cboxes, chars)
    np.testing.assert_allclose(a.polygon, [[10, 0], [10, 8], [0, 8], [0, 0]])
    np.testing.assert_allclose(bb.polygon, [[10, 20], [10, 38], [0, 38], [0, 20]])


def _norm_words(boxes) -> set[str]:
    return {normalize_word(w) for b in boxes for w in b.text.split()}


@pytest.fixture(scope="module")
def line_image() -> Image.Image:
    base = Image.fromarray(data.chelsea()).resize((420, 277))
    img, _ = overlay_text(base, "Hogsmeade Station", font_size=30)
    return img


@pytest.mark.parametrize("level", ["word", "line"])
def test_only_the_co_embedded_word_is_inpainted(line_image, level):
    caption = "Hogsmeade at night"  # holds "Hogsmeade", not "Station"
    out = OCRSignal({"box_level": level})(
        {"uid": ["a"], "status": ["ok"], "text": [caption], "image": [line_image]}
    )
    strings, polys = out["ocr_strings"][0], out["ocr_polygons"][0]
    co = co_emb_boxes(strings, caption)
    removed = inpaint(line_image, [p for p, c in zip(polys, co, strict=True) if c], 3, 2)
    after = _norm_words(RapidOCRSpotter().spot([removed])[0])
    assert "hogsmeade" not in after
    if level == "word":
        assert strings == ["Hogsmeade", "Station"] and co == [True, False]
        assert "station" in after  # the other word of the line survives Co-Emb. removal
        changed = np.flatnonzero(
            np.abs(np.asarray(removed, int) - np.asarray(line_image, int)).sum(-1).any(0)
        )
        station_x0 = min(x for x, _ in polys[1])
        assert changed.max() < station_x0  # every changed column lies left of "Station"
    else:
        assert len(strings) == 1 and "station" not in after  # the whole line went: RSC = RSA


def test_detector_scale_rules():
    """altsift resizes for the detector itself (RapidOCR 1.4.4 raises a ``max`` cap below 1500 px)."""
    sp = RapidOCRSpotter(det_limit_side_len=640, det_min_side=0, det_max_upscale=1.0)
    assert sp.det_scale(1280, 960) == pytest.approx(0.5)
    assert sp.det_scale(400, 300) == 1.0  # max with det_max_upscale=1: never upscales
    assert RapidOCRSpotter(det_limit_side_len=640, det_min_side=480).det_scale(1280, 720) == pytest.approx(
        480 / 720
    )
    assert RapidOCRSpotter(det_limit_side_len=736, det_limit_type="min").det_scale(400, 368) == pytest.approx(
        2.0
    )


def test_small_text_in_a_large_photo_at_a_larger_detector_size():
    base = Image.fromarray(data.coffee()).resize((1400, 934))
    img, band = overlay_text(base, "Fresh Coffee Daily", font_size=12)
    boxes = RapidOCRSpotter(det_limit_side_len=960).spot([img])[0]
    assert "daily" in _norm_words(boxes)
    for b in boxes:  # polygons come back in source pixels, on the band
        assert (
            band[0][1] - 4 <= min(y for _, y in b.polygon) and max(y for _, y in b.polygon) <= band[2][1] + 4
        )
