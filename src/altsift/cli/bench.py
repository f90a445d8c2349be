"""``altsift bench mini``: the miniature DataComp (generate, score, select, train, evaluate)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import typer

from altsift.cli import app
from altsift.errors import ConfigError

bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Benchmarks.")
mini_app = typer.Typer(rich_markup_mode=None, invoke_without_command=True)
app.add_typer(bench_app, name="bench")
bench_app.add_typer(mini_app, name="mini")


@mini_app.callback()
def mini(
    ctx: typer.Context,
    out: Path = typer.Option(
        Path("bench_mini"),
        "--out",
        "-o",
        help="Folder for results.json, results.md, scores.parquet, subsets/ and the scored pool/run.",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Small pool and short training (a few minutes; used by make demo)."
    ),
    pool_size: int | None = typer.Option(
        None, help="Pairs in the generated pool (default 6000; 2000 with --quick)."
    ),
    steps: int | None = typer.Option(None, help="Training steps per strategy (default 80; 50 with --quick)."),
    batch_size: int | None = typer.Option(None, help="Training batch (default 128; 64 with --quick)."),
    eval_at: str | None = typer.Option(
        None, help="Comma-separated steps to evaluate at (default 80; 25,50 with --quick)."
    ),
    fraction: float = typer.Option(0.3, help="Fraction kept by the top-fraction strategies."),
    seeds: str | None = typer.Option(
        None, help="Comma-separated training seeds (default 0,1,2; 0 with --quick); tables report mean ± sd."
    ),
    pool_seed: int = typer.Option(0, help="Seed of the generated pool."),
    ocr: str | None = typer.Option(
        None,
        help="'rapidocr' (default): the ocr and parrot signals run, and the report also shows the oracle rows; "
        "'oracle' (--quick): only the ground-truth OCR rows.",
    ),
    only: str | None = typer.Option(
        None,
        help="Comma-separated strategy names, or 'all' (default: the 13 of the recorded full run; all with --quick).",
    ),
    clip_model: str | None = typer.Option(
        None, help="Mini CLIP checkpoint dir (default: the shipped web_clip)."
    ),
    captioner_model: str | None = typer.Option(
        None, help="Mini captioner checkpoint dir (default: the shipped one)."
    ),
    test_sizes: str | None = typer.Option(
        None,
        help="Clean test sizes ZS,BINDING,RETRIEVAL,PROBE (default 960,1000,1000,300; halved with --quick).",
    ),
    hard_negatives: bool | None = typer.Option(
        None,
        "--hard-negatives/--no-hard-negatives",
        help="Train every strategy's CLIP with rule-made hard negative captions (colour/shape swaps and "
        "replacements, NegCLIP); default: see docs/mini.md.",
    ),
    text_pos_init: float | None = typer.Option(
        None,
        help="Std of the trained CLIPs' initial text position embeddings (default 1.0; 0.02 = the shipped "
        "models' init, under which the text tower ignores word order).",
    ),
) -> None:
    """Generate a noisy pool, score it, select with every strategy, train a fresh tiny CLIP per subset
    with the same budget, and report zero-shot / binding accuracy and retrieval R@1 on clean test sets.

    Subcommands: 'train-models' retrains the shipped checkpoints; 'pool' writes a pool as webdataset shards.
    """
    if ctx.invoked_subcommand is not None:
        return
    from altsift.mini.bench import BenchConfig, run_bench

    cfg = BenchConfig.quick() if quick else BenchConfig()
    for k, v in (
        ("pool_size", pool_size),
        ("steps", steps),
        ("batch_size", batch_size),
        ("clip_model", clip_model),
        ("captioner_model", captioner_model),
        ("hard_negatives", hard_negatives),
        ("text_pos_init", text_pos_init),
    ):
        if v is not None:
            setattr(cfg, k, v)
    cfg.fraction, cfg.pool_seed = fraction, pool_seed
    if seeds:
        cfg.seeds = tuple(int(v) for v in seeds.split(",") if v.strip())
    if ocr:
        cfg.ocr = ocr
    if eval_at:
        cfg.eval_at = tuple(int(s) for s in eval_at.split(","))
    elif steps is not None:
        cfg.eval_at = tuple(sorted({max(1, steps // 2), steps}))
    if test_sizes:
        sizes = tuple(int(v) for v in test_sizes.split(","))
        if len(sizes) != 4:
            raise ConfigError(f"--test-sizes needs 4 comma-separated integers, got '{test_sizes}'")
        cfg.test_sizes = sizes  # type: ignore[assignment]
    if only:
        cfg.only = () if only.strip() == "all" else tuple(s.strip() for s in only.split(",") if s.strip())
    res = run_bench(cfg, out, progress=lambda s: typer.echo(s, err=True))
    typer.echo((out / "results.md").read_text())
    typer.echo(f"wrote {out}/results.json, results.md, scores.parquet in {res['total_seconds']:.0f}s")


@mini_app.command("train-models")
def train_models(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where to write web_clip/ and captioner/ (default: the package assets)."
    ),
    clip_steps: int = typer.Option(500, help="Training steps for the web CLIP."),
    captioner_steps: int = typer.Option(1000, help="Training steps for the captioner."),
    seed: int = typer.Option(0),
) -> None:
    """Retrain the two shipped mini checkpoints (web CLIP on a parrot-heavy pool, captioner on clean pairs)."""
    from altsift.mini.bench import ASSETS, ModelTrainPlan, train_shipped_models

    t0 = time.perf_counter()
    cmd = "altsift " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    plan = ModelTrainPlan(clip_steps=clip_steps, cap_steps=captioner_steps, seed=seed)
    rep = train_shipped_models(out or ASSETS, plan, command=cmd)
    typer.echo(json.dumps(rep, indent=1))
    typer.echo(f"done in {time.perf_counter() - t0:.0f}s -> {out or ASSETS}")


@mini_app.command("pool")
def pool(
    out: Path = typer.Argument(..., help="Folder for the shards (00000.tar, ...)."),
    size: int = typer.Option(2000, help="Number of pairs."),
    shard_size: int = typer.Option(1000, help="Pairs per shard."),
    seed: int = typer.Option(0),
) -> None:
    """Write a noisy mini pool as img2dataset-style webdataset shards, plus ground_truth.parquet."""
    import pandas as pd

    from altsift.mini import world as W
    from altsift.mini.bench import write_shards

    p = W.make_pool(size, W.PRESET_SHARES["noisy"], seed=seed)
    paths = write_shards(p, out, shard_size)
    pd.DataFrame(
        {
            "uid": p.uids,
            "text": p.texts,
            "kind": p.kinds,
            "rendered_word": p.words,
            "gt_caption": p.gt_captions,
        }
    ).to_parquet(out / "ground_truth.parquet")
    typer.echo(f"wrote {len(paths)} shards with {size} pairs to {out}")
