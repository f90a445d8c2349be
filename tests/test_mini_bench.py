"""Mini bench: one tiny end-to-end run through the CLI (pipeline scoring with RapidOCR, every strategy, two
seeds), shared by every test; its subsets are what ``altsift select`` writes with the same presets."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from altsift.mini import world as W
from altsift.mini.bench import BenchConfig, strategies
from altsift.mini.networks import MiniConfig, build_model, save_checkpoint

SMALL = {"width": 8, "embed_dim": 32, "text_width": 32, "text_ff": 64, "gru_hidden": 48}
POOL = 150


@pytest.fixture(scope="module")
def cli():
    from altsift.cli import _load_commands, app

    _load_commands()
    runner = CliRunner()
    return lambda args: runner.invoke(app, args)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, cli):
    d = tmp_path_factory.mktemp("mini_bench")
    torch.manual_seed(0)
    clip = save_checkpoint(build_model(MiniConfig(kind="clip", **SMALL)).eval(), d / "web_clip")
    cap = save_checkpoint(build_model(MiniConfig(kind="captioner", **SMALL)).eval(), d / "captioner")
    out = d / "b"
    args = ["bench", "mini", "-o", str(out), "--pool-size", str(POOL), "--steps", "2", "--batch-size", "16",
            "--seeds", "0,1", "--test-sizes", "48,20,20,10", "--clip-model", str(clip),
            "--captioner-model", str(cap), "--pool-seed", "3", "--only", "all"]  # fmt: skip
    r = cli(args)
    assert r.exit_code == 0, r.output
    return out, json.loads((out / "results.json").read_text()), r.output


def test_every_strategy_is_trained_per_seed_and_reported_with_spread(bench):
    out, res, stdout = bench
    names = [s.name for s in strategies(0.3, "rapidocr")]
    assert [r["strategy"] for r in res["strategies"]] == names
    assert {"text_filter", "text_filter_oracle", "cotr0_clip_top", "oracle_faithful", "mix_best_of",
            "mix_raw_top_synthetic_rest_filtered_greedy"} <= set(names)  # fmt: skip
    assert set(res["caption_quality_vs_ground_truth"]) == {"first_nucleus_sample", "greedy"}
    for r in res["strategies"]:
        assert set(r["per_seed"]) == {"0", "1"}, r["strategy"]
        assert set(r["stats"]) == {"1", "2"}  # --steps 2 evaluates at 1 and 2
        zs = r["stats"]["2"]["zs_acc"]
        assert zs["n"] == 2 and zs["min"] <= zs["mean"] <= zs["max"]
        assert zs["sd"] == pytest.approx(
            np.std([r["per_seed"][s]["evals"]["2"]["zs_acc"] for s in "01"], ddof=1)
        )
    md = (out / "results.md").read_text()
    assert "| mix_best_of |" in md and " ± " in md and "Findings" in md and "RapidOCR on the pool" in md
    assert res["findings"] and all(f["verdict"] for f in res["findings"])
    q = res["ocr_quality"]
    assert 0 <= q["recall_images_with_text"] <= 1 and q["false_positive_rate"] <= 0.2
    assert "| no_filter |" in stdout


@pytest.mark.parametrize("name", [s.name for s in strategies(0.3, "rapidocr")])
def test_bench_subsets_are_altsift_select_with_the_same_presets(bench, cli, tmp_path, name):
    """`altsift select <the bench's run dir or oracle table> <the strategy's presets and options>` writes the
    very subset the bench trained on (and, for the mixing presets, the same training captions)."""
    out, res, _ = bench
    row = next(r for r in res["strategies"] if r["strategy"] == name)
    args = shlex.split(row["select"])[1:]
    assert args[0] == "select" and args[1].startswith("OUT/")
    args[1] = str(out / args[1].removeprefix("OUT/"))
    r = cli([*args, "-o", str(tmp_path / "s.npy"), "-q"])
    assert r.exit_code == 0, r.output
    ours, theirs = np.load(out / "subsets" / f"{name}.npy"), np.load(tmp_path / "s.npy")
    assert len(ours) == row["size"] and np.array_equal(ours, theirs)
    assert (out / "subsets" / f"{name}.parquet").is_file() == (tmp_path / "s.parquet").is_file()
    if (
        tmp_path / "s.parquet"
    ).is_file():  # the presets' columns: mixing presets' training captions, fused scores
        a = pd.read_parquet(out / "subsets" / f"{name}.parquet").sort_values("uid", ignore_index=True)
        b = pd.read_parquet(tmp_path / "s.parquet").sort_values("uid", ignore_index=True)
        pd.testing.assert_frame_equal(a, b)
        if "caption_source" in a:
            assert (a["caption_source"] == "synthetic").sum() == row["synthetic"]
    else:
        assert row["synthetic"] == 0


def test_oracle_strategies_use_ground_truth(bench):
    out, res, _ = bench
    rows = {r["strategy"]: r for r in res["strategies"]}
    pool = W.make_pool(POOL, W.PRESET_SHARES["noisy"], seed=3)
    assert rows["no_filter"]["size"] == POOL
    assert (
        rows["oracle_faithful"]["size"]
        == rows["oracle_faithful"]["raw_faithful"]
        == pool.kinds.count("faithful")
    )
    assert rows["text_filter_oracle"]["images_with_text_share"] == 0.0
    assert rows["cotr0_clip_top_oracle"]["raw_parrot"] == 0
    mix, mixf, top = (rows[k] for k in ("mix_raw_top_synthetic_rest", "mix_raw_top_synthetic_rest_filtered",
                                         "clip_top"))  # fmt: skip
    assert mix["size"] - mix["synthetic"] == top["size"] == mixf["size"] - mixf["synthetic"]
    assert mixf["synthetic"] <= mix["synthetic"]
    scores = pd.read_parquet(out / "scores.parquet")
    assert (scores["has_text"] == (np.array(pool.words) != "")).all() and list(scores["kind"]) == pool.kinds


def test_unknown_strategy_and_ocr_are_config_errors():
    from altsift.errors import ConfigError
    from altsift.mini.bench import run_bench

    with pytest.raises(ConfigError, match="unknown strategies"):
        run_bench(BenchConfig(only=("nope",)))
    with pytest.raises(ConfigError, match="ocr must be"):
        run_bench(BenchConfig(ocr="tesseract"))
    for bad in (float("nan"), 0.0, -1.0):
        with pytest.raises(ConfigError, match="text_pos_init"):
            run_bench(BenchConfig(text_pos_init=bad))


def test_cli_pool(cli, tmp_path):
    r = cli(["bench", "mini", "pool", str(tmp_path / "shards"), "--size", "30", "--shard-size", "20"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "00000.tar",
        "00001.tar",
        "ground_truth.parquet",
    ]
