"""Telea text removal and RSA / RSC with a tiny random CLIP loaded through the real checkpoint path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from altsift.analysis.probe import overlay_text
from altsift.models.base import ModelSpec, load_model
from altsift.models.ocr import RapidOCRSpotter
from altsift.signals.text_removal import TextRemovalSignal, inpaint, polygon_mask, rescale_polygons
from helpers_clip import make_tiny_clip


@pytest.fixture(scope="module")
def scene():
    base = Image.fromarray(data.astronaut()).resize((256, 256))
    img, band = overlay_text(base, "Hogsmeade Station", font_size=24)
    return base, img, band


def test_inpaint_changes_only_masked_pixels(scene):
    _, img, band = scene
    out = inpaint(img, [band], radius=3, dilation=2)
    a, b = np.asarray(img), np.asarray(out)
    mask = polygon_mask([band], img.width, img.height, dilation=2) > 0
    assert np.array_equal(a[~mask], b[~mask])
    assert (a[mask] != b[mask]).any()
    assert inpaint(img, []) is img


def test_inpaint_removes_the_text_for_real_ocr(scene):
    _, img, band = scene
    spotter = RapidOCRSpotter()
    before, after = spotter.spot([img, inpaint(img, [band])])
    assert "".join(b.text for b in before).lower().replace(" ", "") == "hogsmeadestation"
    assert after == []


def test_rescale_polygons():
    assert rescale_polygons([[[10, 20], [30, 40]]], (100, 200), (50, 50)) == [[[5.0, 5.0], [15.0, 10.0]]]


class CountingEncoder:
    def __init__(self, enc):
        self.enc, self.image_calls, self.text_calls = enc, 0, 0

    def encode_images(self, images):
        self.image_calls += 1
        return self.enc.encode_images(images)

    def encode_texts(self, texts):
        self.text_calls += 1
        return self.enc.encode_texts(texts)


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def test_rsa_rsc_with_tiny_clip(scene, tiny_clip_dir):
    base, img, band = scene
    other, band2 = overlay_text(
        Image.fromarray(data.coffee()).resize((300, 200)), "Fresh Coffee Daily", font_size=20
    )
    enc = CountingEncoder(load_model("image_text", ModelSpec(model=str(tiny_clip_dir)), "hf_clip"))
    sig = TextRemovalSignal({"model": str(tiny_clip_dir), "dilation": 1}, encoder=enc)
    batch = {
        "uid": ["p", "q", "r", "s"],
        "status": ["ok", "ok", "ok", "bad_image"],
        "text": ["Hogsmeade Station at night", "a cup of coffee", "an astronaut", "x"],
        "image": [img, other, base, None],
        "has_text": [True, True, False, None],
        "ocr_polygons": [[band], [band2], [], None],
        "ocr_strings": [["Hogsmeade Station"], ["Fresh Coffee Daily"], [], None],
    }
    out = sig(batch)
    assert enc.image_calls == 1 and enc.text_calls == 1  # one encoder call per batch
    assert set(out) == set(sig.output_columns())
    # expected values from independent encoder calls on the expected variants
    e = enc.enc
    t = e.encode_texts(batch["text"][:3])

    def s(im, k):
        return float(e.encode_images([im])[0] @ t[k])

    raw0, all0 = s(img, 0), s(inpaint(img, [band], 3, 1), 0)
    assert out["clip_score_raw"][0] == pytest.approx(raw0, abs=1e-5)
    assert out["clip_score_all_removed"][0] == pytest.approx(all0, abs=1e-5)
    assert out["rsa"][0] == pytest.approx(raw0 - all0, abs=1e-5)
    # row 0: both words are in the caption -> Co-Emb = All-Emb polygons
    assert out["rsc"][0] == pytest.approx(out["rsa"][0], abs=1e-6)
    # row 1: text but no caption word in it -> nothing co-embedded, rsc = 0; rsa from the real removal
    assert out["rsc"][1] == 0.0 and out["clip_score_co_removed"][1] == out["clip_score_raw"][1]
    assert out["rsa"][1] == pytest.approx(s(other, 1) - s(inpaint(other, [band2], 3, 1), 1), abs=1e-5)
    # row 2: no text -> nothing removed
    assert out["rsa"][2] == 0.0 and out["rsc"][2] == 0.0
    assert out["clip_score_raw"][2] == pytest.approx(s(base, 2), abs=1e-5)
    # random baselines: row 0 gets row 1's polygons mapped to its size (and vice versa); no donor for Co-Emb
    donor = rescale_polygons([band2], other.size, img.size)
    assert out["clip_score_rand_all_removed"][0] == pytest.approx(s(inpaint(img, donor, 3, 1), 0), abs=1e-5)
    assert out["rsa_rand"][1] is not None and out["rsa_rand"][2] is None
    assert out["clip_score_rand_co_removed"] == [None, None, None, None]
    assert all(out[c][3] is None for c in out)


def test_text_removal_without_random_baselines(scene, tiny_clip_dir):
    _, img, band = scene
    sig = TextRemovalSignal({"model": str(tiny_clip_dir), "random_baselines": False, "max_side": 128})
    out = sig(
        {
            "uid": ["p"],
            "status": ["ok"],
            "text": ["Hogsmeade Station"],
            "image": [img],
            "has_text": [True],
            "ocr_polygons": [[band]],
            "ocr_strings": [["Hogsmeade Station"]],
        }
    )
    assert set(out) == {"clip_score_raw", "clip_score_all_removed", "clip_score_co_removed", "rsa", "rsc"}
    assert out["rsa"][0] == pytest.approx(out["clip_score_raw"][0] - out["clip_score_all_removed"][0])
