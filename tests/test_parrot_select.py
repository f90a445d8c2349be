"""The parrot_text_filter preset (dedup within clusters) and the aesthetic head signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from altsift.errors import ConfigError, ModelNotFoundError
from altsift.select.base import Pool, get_preset
from altsift.select.parrot import dedup_within_clusters
from altsift.signals.aesthetic import AestheticSignal, apply_head, load_head_layers


def _pool(drop=()):
    # rows 0,1: near-duplicates in cluster 0 (row 1 has the higher CLIP score); row 2 distinct in cluster 0;
    # row 3: same embedding as row 0 but another cluster; row 4 has text; row 5 low CLIP; row 6 low aesthetic;
    # row 7: has_text unknown (no OCR result)
    e = np.eye(8, dtype=np.float32)
    e[1] = e[0] + 0.05
    e[3] = e[0]
    df = pd.DataFrame(
        {
            "has_text": [False, False, False, False, True, False, False, None],
            "clip_score": [0.35, 0.40, 0.31, 0.33, 0.5, 0.29, 0.36, 0.4],
            "aesthetic_score": [5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 4.0, 6.0],
            "cluster_id": [0, 0, 0, 1, 0, 0, 1, 1],
        }
    )
    return Pool(df=df.drop(columns=list(drop)), array_loader=lambda name: {"clip_image_emb": e}[name])


def test_parrot_text_filter_steps():
    preset = get_preset("parrot_text_filter")()
    sel = preset.apply(_pool())
    assert np.flatnonzero(sel.mask).tolist() == [1, 2, 3]
    assert [s.kept_cumulative for s in sel.steps] == [6, 5, 4, 3]
    assert sel.steps[0].kept_alone == 6 and sel.steps[-1].detail["removed_duplicates"] == 1
    assert set(preset.needed_columns()) == {"has_text", "clip_score", "aesthetic_score", "cluster_id"}


def test_parrot_text_filter_options():
    p = get_preset("parrot_text_filter")
    sel = p({"aesthetic_threshold": None, "dedup": False}).apply(_pool())
    assert np.flatnonzero(sel.mask).tolist() == [0, 1, 2, 3, 6]
    pool = _pool(drop=["aesthetic_score", "cluster_id"])
    with pytest.raises(ConfigError, match="aesthetic_threshold=null"):
        p().apply(pool)
    with pytest.raises(ConfigError, match="altsift cluster"):
        p({"aesthetic_threshold": None}).apply(pool)


def test_dedup_within_clusters_greedy_best_first():
    emb = np.array([[1, 0], [0.99, 0.14], [0, 1], [1, 0]], np.float32)
    keep = dedup_within_clusters(emb, np.array([0, 0, 0, 0]), np.array([0.1, 0.9, 0.5, np.nan]), 0.95)
    assert keep.tolist() == [False, True, True, False]
    # block boundaries do not change the result
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 8)).astype(np.float32)
    x = np.concatenate([base, base + 0.01 * rng.normal(size=base.shape)]).astype(np.float32)
    cl, sc = rng.integers(0, 3, 40), rng.random(40)
    a = dedup_within_clusters(x, cl, sc, 0.98, block=3)
    b = dedup_within_clusters(x, cl, sc, 0.98, block=1024)
    assert a.tolist() == b.tolist() and 20 <= a.sum() < 40


class ConstEncoder:
    def __init__(self, d):
        self.d = d

    def encode_images(self, images):
        return np.stack([np.full(self.d, float(np.asarray(im).mean()) + 1, np.float32) for im in images])


def test_aesthetic_head_mlp_without_activations(tmp_path):
    torch.manual_seed(0)
    # LAION improved-aesthetic-predictor layout: layers.{0,2,4,6,7}, dropout between, no activation
    mlp = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 4),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(4, 3),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(3, 2),
        torch.nn.Linear(2, 1),
    ).eval()
    path = tmp_path / "head.pth"
    torch.save({"layers." + k: v for k, v in mlp.state_dict().items()}, path)
    layers = load_head_layers(path)
    assert [w.shape for w, _ in layers] == [(16, 8), (4, 16), (3, 4), (2, 3), (1, 2)]
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    with torch.no_grad():
        ref = mlp(torch.from_numpy(x))[:, 0].numpy()
    np.testing.assert_allclose(apply_head(layers, x), ref, rtol=1e-5, atol=1e-6)
    sig = AestheticSignal({"head": str(path), "normalize": True}, encoder=ConstEncoder(8))
    out = sig(
        {
            "status": ["ok", "bad_image", "ok"],
            "image": [Image.new("RGB", (4, 4), "gray"), None, Image.new("RGB", (4, 4))],
        }
    )
    e = np.full((1, 8), float(np.asarray(Image.new("RGB", (4, 4), "gray")).mean()) + 1, np.float32)
    e /= np.linalg.norm(e)
    assert out["aesthetic_score"][0] == pytest.approx(float(apply_head(layers, e)[0]), rel=1e-5)
    assert out["aesthetic_score"][1] is None and out["aesthetic_score"][2] is not None


def test_aesthetic_linear_safetensors_and_errors(tmp_path):
    from safetensors.numpy import save_file

    save_file(
        {"weight": np.ones((1, 4), np.float32), "bias": np.array([0.5], np.float32)},
        tmp_path / "lin.safetensors",
    )
    layers = load_head_layers(tmp_path / "lin.safetensors")
    assert apply_head(layers, np.ones((2, 4), np.float32)).tolist() == [4.5, 4.5]
    with pytest.raises(ModelNotFoundError, match="aesthetic.head"):
        AestheticSignal({}, encoder=ConstEncoder(4))
    sig = AestheticSignal({"head": str(tmp_path / "lin.safetensors")}, encoder=ConstEncoder(8))
    with pytest.raises(ValueError, match="expects 4-d embeddings"):
        sig({"status": ["ok"], "image": [Image.new("RGB", (4, 4))]})
