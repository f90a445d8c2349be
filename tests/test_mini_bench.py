"""Mini bench: scoring + every strategy's selection on a tiny pool, a short end-to-end run, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from altsift.mini import world as W
from altsift.mini.bench import BenchConfig, composition, cotr, run_bench, score_pool, sieve_mask, strategies
from altsift.mini.networks import MiniConfig, build_model, save_checkpoint

SMALL = {"width": 8, "embed_dim": 32, "text_width": 32, "text_ff": 64, "gru_hidden": 48}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("mini_models")
    torch.manual_seed(0)
    clip = save_checkpoint(build_model(MiniConfig(kind="clip", **SMALL)).eval(), d / "web_clip")
    cap = save_checkpoint(build_model(MiniConfig(kind="captioner", **SMALL)).eval(), d / "captioner")
    return str(clip), str(cap)


def test_paper_helpers():
    assert cotr("buy tazu", "tazu") == 0.5 and cotr("a red circle", "") == 0.0 and cotr("", "x") == 0.0
    assert sieve_mask("An image of a photo of images") == "  s"  # substring removal, SIEVE order


def test_scoring_and_every_strategy(models):
    clip, cap = models
    pool = W.make_pool(160, W.PRESET_SHARES["noisy"], seed=1)
    df = score_pool(pool, clip, cap)
    assert (
        len(df) == 160
        and df["clip_score"].between(-1, 1).all()
        and df["sieve_score"].between(-1, 1.0001).all()
    )
    assert (df["has_text"] == (np.array(pool.words) != "")).all()
    assert (df.loc[df.kind == "parrot", "cotr"] > 0).all() and (
        df.loc[df.kind == "faithful", "cotr"] == 0
    ).all()
    comps = {}
    for name, (_, fn) in strategies(0.3).items():
        sub = fn(df)
        assert sub.mask.shape == (160,) and len(sub.captions) == 160
        comps[name] = composition(df, sub)
    assert comps["no_filter"]["size"] == 160
    for name in ("clip_top", "sieve_top", "sieve_clip_fusion"):
        assert 0.29 * 160 <= comps[name]["size"] <= 0.36 * 160
    assert comps["oracle_faithful"]["size"] == comps["oracle_faithful"]["raw_faithful"]
    assert comps["text_filter"]["images_with_text_share"] == 0.0
    assert comps["cotr0_clip_top"]["raw_parrot"] == 0
    mix, mixf = comps["mix_raw_top_cap_rest"], comps["mix_raw_top_cap_rest_filtered"]
    assert mix["size"] == 160 and mix["synthetic"] == 160 - comps["clip_top"]["size"]
    assert mixf["size"] <= mix["size"] and mixf["size"] - mixf["synthetic"] == comps["clip_top"]["size"]


def test_bench_end_to_end_tiny(models, tmp_path):
    clip, cap = models
    cfg = BenchConfig(
        pool_size=120,
        steps=3,
        batch_size=32,
        eval_at=(1, 3),
        clip_model=clip,
        captioner_model=cap,
        only=("no_filter", "sieve_top", "mix_raw_top_cap_rest"),
        test_sizes=(96, 40, 40, 20),
    )
    res = run_bench(cfg, tmp_path, progress=lambda s: None)
    assert [r["strategy"] for r in res["strategies"]] == list(cfg.only)
    for r in res["strategies"]:
        assert set(r["evals"]) == {"1", "3"}
        assert 0 <= r["evals"]["3"]["zs_acc"] <= 1 and 0 <= r["evals"]["3"]["i2t_r1"] <= 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["ocr"].startswith("oracle")
    md = (tmp_path / "results.md").read_text()
    assert "| sieve_top |" in md and "@3" in md
    assert (tmp_path / "scores.parquet").is_file()


def test_cli_pool_and_bench(models, tmp_path):
    from altsift.cli import _load_commands, app

    _load_commands()
    runner = CliRunner()
    r = runner.invoke(
        app, ["bench", "mini", "pool", str(tmp_path / "shards"), "--size", "30", "--shard-size", "20"]
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "00000.tar",
        "00001.tar",
        "ground_truth.parquet",
    ]
    clip, cap = models
    r = runner.invoke(
        app,
        [
            "bench",
            "mini",
            "--out",
            str(tmp_path / "b"),
            "--pool-size",
            "60",
            "--steps",
            "2",
            "--test-sizes",
            "48,20,20,10",
            "--batch-size",
            "16",
            "--only",
            "basic",
            "--clip-model",
            clip,
            "--captioner-model",
            cap,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "| basic |" in r.output and (tmp_path / "b" / "results.json").is_file()


def test_bench_strategies_agree_with_the_shipped_select_presets():
    """The bench's strategies are the presets users run: same masks and captions on the same table."""
    import pandas as pd

    from altsift.select.base import Pool, get_preset

    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({
        "text": [f"raw {i}" for i in range(n)],
        "caption": [f"syn {i}" for i in range(n)],
        "clip_score": rng.uniform(0, 1, n).round(2),  # rounded: ties at the threshold are exercised too
        "caption_clip_score": rng.uniform(0, 1, n).round(2),
        "sieve_score": rng.uniform(0, 1, n),
        "basic_pass": rng.random(n) < 0.5,
    })
    s = strategies(0.3)

    def preset(name, **opts):
        return get_preset(name)(opts).apply(Pool(df=df))

    assert (s["clip_top"][1](df).mask == preset("clip_score", column="clip_score", fraction=0.3).mask).all()
    assert (s["basic"][1](df).mask == preset("basic_filter").mask).all()
    fused = preset("sieve", weights={"sieve_score": 0.5, "clip_score": 0.5}, fraction=0.3)
    assert (s["sieve_clip_fusion"][1](df).mask == fused.mask).all()
    assert (s["sieve_top"][1](df).mask == preset("sieve", weights={"sieve_score": 1.0}, fraction=0.3).mask).all()
    for name, pname in (("mix_raw_top_cap_rest", "mix_raw_top_synthetic_rest"),
                        ("mix_raw_top_cap_rest_filtered", "mix_raw_top_synthetic_rest_filtered")):
        ours = s[name][1](df)
        sel = preset(pname, synthetic_score="caption_clip_score", synthetic_text="caption", raw_fraction=0.3)
        assert (ours.mask == sel.mask).all(), name
        kept = np.flatnonzero(sel.mask)
        assert [ours.captions[i] for i in kept] == [sel.columns["caption"][i] for i in kept], name
