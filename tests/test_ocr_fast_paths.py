"""Issue 14 item 7: detector upscaling, width-batched recogniser, space re-read, ORT arena (real RapidOCR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from altsift.analysis.probe import overlay_text
from altsift.models.ocr import RapidOCRSpotter, extend_quads, pad_quads, width_batches
from altsift.signals.ocr import OCROptions
from altsift.signals.parrot import cotr, cotr_fuzzy

FONT = Path(__file__).resolve().parents[1] / "src" / "altsift" / "assets" / "fonts" / "DejaVuSans.ttf"
CAPTION = "Boutique Studio in Laos"


@pytest.fixture(scope="module")
def spotter() -> RapidOCRSpotter:
    return RapidOCRSpotter()


@pytest.fixture(scope="module")
def small_text_on_bricks() -> Image.Image:
    """A 360x260 brick texture with 10 px dark text: DBNet sees nothing at scale 1."""
    im = Image.fromarray(np.stack([data.brick()] * 3, -1)).resize((360, 260))
    ImageDraw.Draw(im).text(
        (40, 110), "Boutique Studio Laos", font=ImageFont.truetype(str(FONT), 10), fill=(20, 20, 20)
    )
    return im


def test_detector_scale_upscales_small_images():
    sp = RapidOCRSpotter(det_limit_side_len=704, det_min_side=0, det_max_upscale=2.0)
    assert sp.det_scale(1408, 900) == pytest.approx(0.5)
    assert sp.det_scale(528, 400) == pytest.approx(704 / 528)  # long side brought to 704
    assert sp.det_scale(300, 200) == pytest.approx(2.0)  # at most det_max_upscale
    floor = RapidOCRSpotter(det_limit_side_len=704, det_min_side=480, det_max_upscale=1.5)
    assert floor.det_scale(1400, 400) == pytest.approx(1.2)  # short side brought to 480
    assert floor.det_scale(360, 240) == pytest.approx(1.5)  # the floor too stops at det_max_upscale
    assert RapidOCRSpotter(det_max_upscale=1.0, det_min_side=0).det_scale(300, 200) == 1.0
    with pytest.raises(ValueError):
        OCROptions(det_max_upscale=0.5)


def test_small_text_on_a_texture_needs_the_upscaled_detector(spotter, small_text_on_bricks):
    old = RapidOCRSpotter(det_limit_side_len=640, det_min_side=0, det_max_upscale=1.0)
    read_old = " ".join(b.text for b in old.spot([small_text_on_bricks])[0])
    read_new = " ".join(b.text for b in spotter.spot([small_text_on_bricks])[0])
    assert cotr_fuzzy(CAPTION, read_old) == 0.0
    assert cotr_fuzzy(CAPTION, read_new) >= 0.5


def test_width_batches_limit_padding():
    widths = [64, 600, 70, 66, 320, 330]
    batches = width_batches(widths, max_batch=6, slack=0.1)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert batches == [[0, 3, 2], [4, 5], [1]]  # the long line is never padded onto short words
    for b in batches:
        assert len(b) * max(widths[i] for i in b) <= 1.1 * sum(widths[i] for i in b)
    assert width_batches(widths, max_batch=2, slack=10.0) == [[0, 3], [2, 4], [5, 1]]
    assert width_batches([], 6, 0.1) == []


def test_width_batched_recogniser_reads_like_rapidocr(spotter):
    base = Image.fromarray(data.chelsea()).resize((420, 277))
    img, _ = overlay_text(base, "Hogsmeade Station", font_size=30)
    img2, _ = overlay_text(Image.fromarray(data.coffee()).resize((420, 280)), "Open 24 Hours", font_size=22)
    eng = spotter._engines[0]
    crops = []
    for im in (img, img2):
        bgr = np.ascontiguousarray(np.asarray(im)[:, :, ::-1])
        boxes, _ = spotter._detect(eng, bgr)
        crops += eng.get_crop_img_list(bgr, list(boxes))
    assert len(crops) >= 2
    ours = [r[0] for r in spotter._recognize(eng, crops, False)]
    theirs = [r[0] for r in eng.text_rec(crops, False)[0]]
    assert ours == theirs
    assert "HogsmeadeStation" in "".join(ours).replace(" ", "")


def test_ort_arena_same_output(small_text_on_bricks, spotter):
    plain = RapidOCRSpotter(ort_arena=False)
    assert spotter._engines[0].text_det.infer.session.get_session_options().enable_cpu_mem_arena
    assert not plain._engines[0].text_det.infer.session.get_session_options().enable_cpu_mem_arena
    a = [[(b.text, b.polygon) for b in r] for r in spotter.spot([small_text_on_bricks])]
    b = [[(b.text, b.polygon) for b in r] for r in plain.spot([small_text_on_bricks])]
    assert a == b


def test_pad_quads_grows_across_the_text():
    q = np.float32([[[0, 0], [100, 0], [100, 10], [0, 10]], [[0, 0], [10, 0], [10, 100], [0, 100]]])
    g = pad_quads(q, 0.1)
    np.testing.assert_allclose(g[0], [[0, -1], [100, -1], [100, 11], [0, 11]])  # horizontal: taller
    np.testing.assert_allclose(g[1], [[-1, 0], [11, 0], [11, 100], [-1, 100]])  # vertical text: wider
    np.testing.assert_allclose(pad_quads(q, 0.0), q)


def test_extend_quads_grows_along_the_text():
    q = np.float32([[[0, 0], [100, 0], [100, 10], [0, 10]], [[0, 0], [10, 0], [10, 100], [0, 100]]])
    g = extend_quads(q, 0.5)
    np.testing.assert_allclose(g[0], [[-5, 0], [105, 0], [105, 10], [-5, 10]])  # horizontal: longer
    np.testing.assert_allclose(g[1], [[0, -5], [10, -5], [10, 105], [0, 105]])  # vertical text: taller
    r = np.float32([[[0, 0], [80, 60], [74, 68], [-6, 8]]])  # rotated 36.9 degrees, height 10
    e = extend_quads(r, 1.0)
    np.testing.assert_allclose(e[0, 1] - r[0, 1], [8, 6], atol=1e-4)  # one height along the text
    np.testing.assert_allclose(e[0, 0] - r[0, 0], [-8, -6], atol=1e-4)
    np.testing.assert_allclose(extend_quads(q, 0.0), q)


def test_space_retry_restores_dropped_spaces(spotter):
    im = Image.fromarray(data.coffee())
    im = im.resize((512, round(im.height * 512 / im.width)))
    text = "Winter In Vermont, Yankee Magazine Cover 2015"
    img, _ = overlay_text(im, text, font_size=28, y_frac=0.5)
    no_retry = RapidOCRSpotter(space_retry_pad=0.0, box_level="line").spot([img])[0]
    retry = RapidOCRSpotter(box_level="line").spot([img])[0]
    assert [b.text for b in no_retry] == ["WinterInVermont,YankeeMagazineCover2015"]  # the recogniser's habit
    assert [b.text for b in retry] == [text]
    assert cotr(text, " ".join(b.text for b in retry))[0] == 1.0  # Algorithm 1 needs the spaces
    words = spotter.spot([img])[0]  # word boxes come from the re-read line
    assert [b.text for b in words] == text.split()


@pytest.mark.parametrize("shape", [(480, 704), (517, 333), (20, 31), (96, 1000)])
def test_detector_input_matches_rapidocr(shape, spotter):
    """altsift's float32 detector pre-processing equals RapidOCR's ``DetPreProcess`` (float64)."""
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    from altsift.models.ocr import DetInput

    det = spotter._engines[0].text_det
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = DetPreProcess(max(max(shape), 32), "max", det.mean, det.std)(img)
    got = DetInput(det.mean, det.std)(img)
    if ref is None:
        assert got is None
    else:
        assert got.shape == ref.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, atol=1e-5)
