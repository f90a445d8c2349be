"""``clip`` signal: scores, missing rows, embeddings, extra text columns, options."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from altsift.models.base import ModelSpec
from altsift.models.hf_clip import HFCLIP
from altsift.signals.registry import get_signal
from helpers_clip import make_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tinyclip"))


def _batch():
    rng = np.random.default_rng(3)
    imgs = [Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 36, 3), dtype=np.uint8)) for i in range(5)]
    return {
        "uid": [f"{i:032x}" for i in range(5)],
        "status": ["ok", "ok", "decode_error", "ok", "ok"],
        "text": ["a dog", "the cat sat", "broken", None, "a red car"],
        "image": [imgs[0], imgs[1], None, imgs[3], imgs[4]],
        "synthetic_caption": ["a photo of a dog", ["a cat", "the cat on a mat"], "x", "a thing", None],
    }


def test_clip_signal_scores_match_adapter(tiny_clip):
    sig = get_signal("clip")({"model": str(tiny_clip), "device": "cpu", "batch_size": 2})
    b = _batch()
    out = sig(b)
    assert list(out) == ["clip_score"] and sig.output_array_columns() == () and sig.required_signals() == ()
    s = out["clip_score"]
    assert s[2] is None and s[3] is None  # failed row, missing text
    m = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu"))
    for i in (0, 1, 4):
        e = float(m.encode_images([b["image"][i]])[0] @ m.encode_texts([b["text"][i]])[0])
        assert abs(s[i] - e) < 1e-5 and -1.0 <= s[i] <= 1.0


def test_clip_signal_embeddings_and_extra_texts(tiny_clip):
    sig = get_signal("clip")(
        {
            "model": str(tiny_clip),
            "device": "cpu",
            "save_embeddings": True,
            "extra_texts": {"synthetic_caption": "clip_score_synthetic"},
        }
    )
    assert sig.output_columns() == ("clip_score", "clip_score_synthetic")
    assert sig.output_array_columns() == ("clip_image_emb", "clip_text_emb")
    assert sig.required_signals() == ("caption",)
    b = _batch()
    out = sig(b)
    ie, te = out["clip_image_emb"], out["clip_text_emb"]
    assert ie.shape == (5, 16) and te.shape == (5, 16) and ie.dtype == np.float32
    assert np.isnan(ie[2]).all() and not np.isnan(ie[3]).any() and np.isnan(te[3]).all()
    np.testing.assert_allclose(
        np.einsum("nd,nd->n", ie[[0, 1, 4]], te[[0, 1, 4]]),
        [out["clip_score"][i] for i in (0, 1, 4)],
        atol=1e-6,
    )
    syn = out["clip_score_synthetic"]
    m = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu"))
    t = m.encode_texts(["a photo of a dog", "a cat", "the cat on a mat", "a thing"])
    assert abs(syn[0] - float(ie[0] @ t[0])) < 1e-5
    assert isinstance(syn[1], list) and np.allclose(syn[1], [ie[1] @ t[1], ie[1] @ t[2]], atol=1e-5)
    assert syn[2] is None and abs(syn[3] - float(ie[3] @ t[3])) < 1e-5 and syn[4] is None


def test_clip_signal_all_rows_failed(tiny_clip):
    sig = get_signal("clip")({"model": str(tiny_clip), "device": "cpu", "save_embeddings": True})
    out = sig({"status": ["x", "y"], "text": ["a", "b"], "image": [None, None]})
    assert out["clip_score"] == [None, None] and out["clip_image_emb"].shape == (2, 16)


def test_clip_options_rejected():
    with pytest.raises(ValueError, match="unknown_option"):
        get_signal("clip").Options.model_validate({"unknown_option": 1})
