"""Text spotters and the ``ocr`` signal on real photos with rendered real alt-texts (real OCR, no mocks)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data

from altsift.analysis.probe import overlay_text
from altsift.errors import ModelNotFoundError
from altsift.models.base import ModelSpec, TextBox, load_model
from altsift.models.ocr import RapidOCRSpotter, TesseractSpotter, parse_tesseract_tsv, reading_order
from altsift.signals.ocr import OCRSignal, text_area
from altsift.signals.parrot import normalize_word


def _norm(s: str) -> str:
    return "".join(normalize_word(w) for w in s.split())


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    cat = Image.fromarray(data.chelsea()).resize((400, 264))
    coffee = Image.fromarray(data.coffee()).resize((400, 266))
    text_img, band = overlay_text(cat, "Hogsmeade Station", font_size=30)
    return {"text": text_img, "band": band, "plain": coffee, "blank": Image.new("RGB", (200, 150), "white")}


@pytest.fixture(scope="module")
def ocr_signal() -> OCRSignal:
    return OCRSignal({"crowded_words": 1})


def test_ocr_signal_reads_rendered_alt_text(photos, ocr_signal):
    batch = {
        "uid": ["a", "b", "c", "d"],
        "status": ["ok", "ok", "ok", "bad_image"],
        "text": ["t"] * 4,
        "image": [photos["text"], photos["blank"], photos["plain"], None],
    }
    out = ocr_signal(batch)
    assert out["has_text"][0] is True
    assert _norm(out["ocr_text"][0]) == "hogsmeadestation"
    assert out["has_text"][1] is False and out["ocr_text"][1] == "" and out["ocr_polygons"][1] == []
    assert out["has_text"][3] is None and out["ocr_text_area"][3] is None
    # the polygons lie on the white band drawn under the text
    x0, y0 = photos["band"][0]
    x1, y1 = photos["band"][2]
    for poly in out["ocr_polygons"][0]:
        p = np.asarray(poly)
        assert p[:, 0].min() >= x0 - 4 and p[:, 0].max() <= x1 + 4
        assert p[:, 1].min() >= y0 - 4 and p[:, 1].max() <= y1 + 4
    band_frac = (x1 - x0) * (y1 - y0) / (400 * 264)
    assert 0.3 * band_frac < out["ocr_text_area"][0] <= 1.05 * band_frac
    assert out["ocr_num_words"][0] == len(out["ocr_text"][0].split()) >= 1
    assert all(0.5 <= s <= 1.0 for s in out["ocr_scores"][0])
    # crowded_words=1: two words ("Hogsmeade Station") are crowded, unless OCR merged them
    assert out["ocr_crowded"][0] == (out["ocr_num_words"][0] > 1)


def test_ocr_on_source_resolution_not_resized(photos):
    # a large image with small text: the polygons come back in source pixel coordinates
    big = photos["text"].resize((1200, 792))
    boxes = RapidOCRSpotter(det_limit_side_len=1280).spot([big])[0]
    assert boxes and max(max(x for x, _ in b.polygon) for b in boxes) > 600


def test_rapidocr_workers_match_single_engine(photos):
    imgs = [photos["text"], photos["blank"], photos["text"]]
    one = RapidOCRSpotter().spot(imgs)
    two = RapidOCRSpotter(workers=2).spot(imgs)
    assert [[b.text for b in r] for r in one] == [[b.text for b in r] for r in two]


def test_reading_order():
    def box(x, y, t):
        return TextBox([(x, y), (x + 50, y), (x + 50, y + 20), (x, y + 20)], t, 1.0)

    shuffled = [box(200, 102, "D"), box(10, 10, "A"), box(120, 14, "B"), box(10, 100, "C")]
    assert [b.text for b in reading_order(shuffled)] == ["A", "B", "C", "D"]


def test_text_area_union():
    sq = [[0, 0], [50, 0], [50, 50], [0, 50]]
    assert text_area([sq], 100, 100) == pytest.approx(0.25, abs=0.015)
    assert text_area([sq, sq], 100, 100) == pytest.approx(0.25, abs=0.015)  # union, not sum
    assert text_area([], 100, 100) == 0.0


def test_missing_onnx_folder_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFoundError, match="could not load the spotter model"):
        RapidOCRSpotter(model=str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="unknown spotter backend 'deepsolo'"):
        load_model("spotter", ModelSpec(model="x", backend="deepsolo"), "rapidocr")


def test_parse_tesseract_tsv():
    tsv = (
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
        "1\t1\t0\t0\t0\t0\t0\t0\t100\t50\t-1\t\n"
        "5\t1\t1\t1\t1\t1\t10\t20\t30\t12\t91.5\tHello\n"
        "5\t2\t1\t1\t1\t1\t5\t6\t7\t8\t40\tWorld\n"
    )
    out = parse_tesseract_tsv(tsv, 2)
    assert out[0] == [([[10, 20], [40, 20], [40, 32], [10, 32]], "Hello", 0.915)]
    assert out[1][0][1] == "World" and out[1][0][2] == pytest.approx(0.4)


@pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="tesseract binary not installed (apt-get install tesseract-ocr)"
)
def test_tesseract_backend_reads_rendered_text(photos):
    sig = OCRSignal({"backend": "tesseract", "model": "eng", "min_score": 0.3})
    out = sig(
        {
            "uid": ["a", "b"],
            "status": ["ok", "ok"],
            "text": ["x", "y"],
            "image": [photos["text"], photos["blank"]],
        }
    )
    assert _norm(out["ocr_text"][0]) == "hogsmeadestation"
    assert out["has_text"][1] is False


def test_tesseract_missing_binary_message():
    with pytest.raises(ModelNotFoundError, match="apt-get install tesseract-ocr"):
        TesseractSpotter(binary="definitely-not-tesseract-binary")
