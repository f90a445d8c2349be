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
    sig = TextRemovalSignal(
        {"model": str(tiny_clip_dir), "dilation": 1, "random_source": "batch"}, encoder=enc
    )
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
    # row 1: text but no caption word in it -> Co-Emb. removal not applicable (null); rsa from the removal
    assert out["rsc"][1] is None and out["clip_score_co_removed"][1] is None
    assert out["rsa"][1] == pytest.approx(s(other, 1) - s(inpaint(other, [band2], 3, 1), 1), abs=1e-5)
    # row 2: no text -> RSA and RSC not applicable: null, not 0 (issue 14 item 3)
    assert out["rsa"][2] is None and out["rsc"][2] is None and out["clip_score_all_removed"][2] is None
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


def _removal_batch(scene, uids):
    base, img, band = scene
    other, band2 = overlay_text(
        Image.fromarray(data.coffee()).resize((300, 200)), "Fresh Coffee Daily", font_size=20
    )
    rows = {
        "p": ("Hogsmeade Station at night", img, True, [band], ["Hogsmeade Station"]),
        "q": ("Fresh coffee Daily", other, True, [band2], ["Fresh Coffee Daily"]),
        "r": ("an astronaut", base, False, [], []),
    }
    keys = ("text", "image", "has_text", "ocr_polygons", "ocr_strings")
    batch = {"uid": list(uids), "status": ["ok"] * len(uids)}
    batch.update({k: [rows[u][j] for u in uids] for j, k in enumerate(keys)})
    return batch


def test_not_applicable_zero_keeps_the_old_output(scene, tiny_clip_dir):
    sig = TextRemovalSignal(
        {"model": str(tiny_clip_dir), "not_applicable": "zero", "random_baselines": False}
    )
    out = sig(_removal_batch(scene, ["q", "r"]))
    assert out["rsa"][1] == 0.0 and out["rsc"][1] == 0.0  # text-free row
    assert out["clip_score_all_removed"][1] == out["clip_score_raw"][1]


def test_random_baseline_does_not_depend_on_the_batch(scene, tiny_clip_dir):
    """Issue 14 item 3: a row's random baseline is seeded by its uid, never by its batch-mates."""
    sig = TextRemovalSignal({"model": str(tiny_clip_dir)})
    a = sig(_removal_batch(scene, ["p", "q", "r"]))
    b = sig(_removal_batch(scene, ["r", "p"]))  # other batch composition and order, no other donor
    c = sig(_removal_batch(scene, ["p"]))
    for col in ("rsa_rand", "rsc_rand", "clip_score_rand_all_removed"):
        assert a[col][0] is not None
        assert b[col][1] == pytest.approx(a[col][0], abs=1e-6)
        assert c[col][0] == pytest.approx(a[col][0], abs=1e-6)
    assert a["rsa_rand"][2] is None and a["rsa"][2] is None  # text-free: not applicable
    assert a["rsc_rand"][1] is not None  # q's caption words are in its text: Co-Emb. baseline exists


def test_shifted_polygons_keep_shape_and_avoid_the_text():
    from altsift.signals.text_removal import row_rng, shifted_polygons

    band = [[20.0, 40.0], [120.0, 40.0], [120.0, 60.0], [20.0, 60.0]]
    moved = shifted_polygons([band], (200, 200), row_rng(42, "p"))[0]
    again = shifted_polygons([band], (200, 200), row_rng(42, "p"))[0]
    assert moved == again  # seeded by uid only
    a, m = np.asarray(band), np.asarray(moved)
    np.testing.assert_allclose(m - m[0], a - a[0])  # a translation: same shape and area
    assert m[:, 0].min() >= 0 and m[:, 0].max() <= 200 and m[:, 1].max() <= 200
    ys = (m[:, 1].min(), m[:, 1].max())
    assert ys[0] > 60 or ys[1] < 40  # a free placement exists and is found: no overlap with the text


def test_where_rsa_nonnegative_skips_text_free_rows(scene, tiny_clip_dir):
    import pyarrow as pa

    from altsift.select.expr import compile_where

    out = TextRemovalSignal({"model": str(tiny_clip_dir)})(_removal_batch(scene, ["p", "q", "r"]))
    table = pa.table({"rsa": pa.array(out["rsa"], pa.float64())})
    kept = compile_where("rsa >= 0 or rsa < 0", {"rsa": pa.float64()}).evaluate_table(table)
    assert kept.tolist() == [True, True, False]  # the text-free row r has no RSA: never selected
