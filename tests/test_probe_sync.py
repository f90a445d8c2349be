"""Synthetic-text probe, n-gram vocabularies and the probe / cluster commands (tiny random CLIP)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import altsift.cli.analysis  # noqa: F401  (registers the commands)
from altsift.analysis.clusters import cluster_stats, run_cluster
from altsift.analysis.probe import (
    STYLES,
    default_font_path,
    ngram_counts,
    render_text,
    sync_score,
    vocab_stats,
)
from altsift.cli import app
from altsift.models.base import ModelSpec, load_model
from helpers_clip import make_tiny_clip


def test_bundled_font_and_styles():
    assert default_font_path().is_file()
    assert set(STYLES) == {"white_black", "black_white", "gray_white", "gray_black"}


@pytest.mark.parametrize("style", list(STYLES))
def test_render_text_centred_in_style(style):
    bg, fg = STYLES[style]
    im = render_text("SALE", style)
    a = np.asarray(im).astype(int)
    assert im.size == (224, 224)
    assert tuple(a[0, 0]) == bg
    ink = np.argwhere((np.abs(a - np.array(bg)).sum(-1)) > 0)
    assert len(ink) > 50
    cy, cx = ink.mean(0)
    assert abs(cx - 112) < 8 and abs(cy - 112) < 10  # centred
    assert (np.abs(a - np.array(fg)).sum(-1) == 0).sum() > 20  # foreground colour present


class FakeEncoder:
    """Image embedding = mean ink colour features; text embedding from the text: deterministic, checkable."""

    def encode_images(self, images):
        e = np.stack([np.asarray(im, np.float32).mean((0, 1)) + 1.0 for im in images])
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def encode_texts(self, texts):
        e = np.stack([np.array([len(t), 1.0, 2.0], np.float32) for t in texts])
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_sync_score_is_mean_cosine_of_each_image_with_its_own_text():
    enc = FakeEncoder()
    texts = ["a", "stop sign", "open 24 hours"]
    res = sync_score(enc, texts, chunk=2)
    t = enc.encode_texts(texts)
    expect = np.array(
        [[enc.encode_images([render_text(x, s)])[0] @ t[i] for s in STYLES] for i, x in enumerate(texts)]
    )
    np.testing.assert_allclose(res.scores, expect, rtol=1e-5)
    assert res.mean == pytest.approx(expect.mean()) and res.n == 12
    assert res.per_style["gray_black"][0] == pytest.approx(expect[:, 3].mean())


def test_ngrams_and_vocab_stats():
    c = ngram_counts(["Stop sign ahead", "stop SIGN", None, ""], n_max=2)
    assert c["stop"] == 2 and c["stop sign"] == 2 and c["sign ahead"] == 1
    df = pd.DataFrame({"text": ["Stop sign ahead", "stop sign"], "co_emb_text": ["Stop", ""]})
    v = vocab_stats(df, n_max=2, top=3)
    cap = v[v.source == "caption"]
    assert cap["ngram"].tolist()[:3] == ["stop", "sign", "stop sign"] and len(cap) == 3
    assert v[v.source == "co_emb"]["ngram"].tolist() == ["stop"]


def _make_run(root, n_per_shard=(30, 25), dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, dim)) * 5
    for s, n in enumerate(n_per_shard):
        shard = f"{s:05d}"
        lab = rng.integers(0, 3, n)
        emb = (centers[lab] + rng.normal(size=(n, dim)) * 0.1).astype(np.float32)
        (root / "arrays" / "clip_image_emb").mkdir(parents=True, exist_ok=True)
        np.save(root / "arrays" / "clip_image_emb" / f"{shard}.npy", emb)
        (root / "scores").mkdir(exist_ok=True)
        t = pa.table(
            {
                "uid": [f"{s:04x}{i:028x}" for i in range(n)],
                "status": ["ok"] * n,
                "shard": [shard] * n,
                "text": [f"stop sign number {i}" for i in range(n)],
                "has_text": (lab == 0).tolist(),
                "is_parrot": (lab == 0).tolist(),
                "cotr": np.where(lab == 0, 0.5, 0.0),
                "co_emb_text": ["stop sign" if x == 0 else "" for x in lab],
                "clip_score": lab.astype(float) / 10,
                "true_label": lab,
            }
        )
        pq.write_table(t, root / "scores" / f"{shard}.parquet")


def test_cluster_command_adds_cluster_id_and_stats(tmp_path):
    _make_run(tmp_path)
    r = CliRunner().invoke(
        app, ["cluster", str(tmp_path), "--k", "3", "--niter", "20", "--nredo", "2", "--pca-dim", "8"]
    )
    assert r.exit_code == 0, r.output
    df = pd.concat([pd.read_parquet(f) for f in sorted((tmp_path / "scores").glob("*.parquet"))])
    assert "cluster_id" in df.columns and len(df) == 55
    # the three well-separated groups are recovered exactly (up to label permutation)
    assert pd.crosstab(df["true_label"], df["cluster_id"]).astype(bool).sum(axis=1).eq(1).all()
    stats = pd.read_parquet(tmp_path / "clusters" / "stats.parquet")
    assert stats["size"].sum() == 55 and len(stats) == 3
    text_cluster = stats.loc[stats["share_with_text"] == 1.0]
    assert len(text_cluster) == 1 and text_cluster["parrot_rate"].item() == 1.0
    assert (tmp_path / "clusters" / "stats.md").read_text().startswith("# Clusters: k=3")
    # reuse the saved centroids: same assignment
    res = run_cluster(tmp_path, model_path=tmp_path / "clusters" / "kmeans.npz")
    np.testing.assert_array_equal(res.labels, df["cluster_id"].to_numpy())


def test_cluster_too_few_rows(tmp_path):
    _make_run(tmp_path, n_per_shard=(5,))
    r = CliRunner().invoke(app, ["cluster", str(tmp_path), "--k", "50"])
    assert (
        r.exit_code == 2 and "need at least 50 embeddings" in r.stderr
    )  # one line, exit 2 (cli/__init__.py)


def test_cluster_stats_nan_aware():
    df = pd.DataFrame({"has_text": [True, None, False], "clip_score": [0.2, 0.4, np.nan]})
    s = cluster_stats(df, np.array([0, 0, 1]))
    row0 = s.set_index("cluster_id").loc[0]
    assert (
        row0["size"] == 2 and row0["share_with_text"] == 1.0 and row0["mean_clip_score"] == pytest.approx(0.3)
    )


def test_probe_command_with_tiny_clip(tmp_path):
    ckpt = make_tiny_clip(tmp_path / "clip")
    _make_run(tmp_path / "run", n_per_shard=(6,))
    texts = tmp_path / "t.txt"
    texts.write_text("hello world\nstop sign\n")
    out = tmp_path / "probe"
    r = CliRunner().invoke(
        app,
        [
            "probe",
            "--model",
            str(ckpt),
            "--texts",
            str(texts),
            "--run-dir",
            str(tmp_path / "run"),
            "--top",
            "3",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    scores = pd.read_parquet(out / "sync_scores.parquet")
    assert set(scores["vocab"]) == {"texts", "caption_vocab", "co_emb_vocab"}
    assert set(scores["style"]) == set(STYLES) | {"all"}
    # the CLI's numbers equal a direct sync_score with the same checkpoint
    enc = load_model("image_text", ModelSpec(model=str(ckpt)), "hf_clip")
    direct = sync_score(enc, ["hello world", "stop sign"])
    got = scores[(scores.vocab == "texts") & (scores["style"] == "all")]["mean"].item()
    assert got == pytest.approx(direct.mean, abs=1e-5)
    assert (out / "vocab.parquet").exists() and "Sync. Score" in (out / "probe.md").read_text()
