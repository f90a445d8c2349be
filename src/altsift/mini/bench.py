"""``altsift bench mini``: DataComp's protocol in miniature, on a laptop CPU.

1. generate a noisy web-like pool (``world.make_pool``) and clean held-out test sets;
2. score it through the real pipeline (webdataset shards -> ``altsift.pipeline.score``) with the ``basic``,
   ``clip`` (shipped "web" mini CLIP; the synthetic caption is CLIP-scored too), ``caption`` (shipped mini
   captioner, SIEVE's 8 nucleus samples; the first is the caption the mixing presets use), ``sieve``
   (all-MiniLM-L6-v2), and, with ``ocr="rapidocr"`` (the default), the ``ocr`` (RapidOCR on the rendered
   images) and ``parrot`` (CoTR) signals;
3. select with each strategy: a :class:`Strategy` is a ``SelectRequest`` (presets with their options,
   ``where`` expressions, pool-wide top fractions) run by ``altsift.select.core.run_selection`` on the run
   directory, exactly what ``altsift select RUN --preset ... --set ...`` does; every subset is written with
   ``write_selection`` to ``OUT/subsets/<strategy>.npy``. Strategies marked ``oracle`` run on a copy of the
   score table whose OCR columns (``has_text``, ``ocr_text``, ``cotr``) are the world's ground truth
   (the rendered word), or that holds the hidden ``kind`` (``oracle_faithful``);
4. for each training seed, train a fresh tiny CLIP per subset with the same recipe and budget, evaluate at
   several step counts on the clean test sets; report mean and spread over the seeds in ``results.json``
   and ``results.md``.
"""

from __future__ import annotations

import json
import logging
import math
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from altsift.errors import ConfigError
from altsift.mini import world as W
from altsift.mini.eval import caption_metrics, evaluate, text_probe
from altsift.mini.networks import MiniConfig, save_checkpoint
from altsift.mini.train import TrainConfig, train_captioner, train_clip
from altsift.models.base import GenerationOptions, ModelSpec, load_model
from altsift.select.core import SelectRequest, run_selection, write_selection

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mini"
# SIEVE's decoding (top_p 0.9, top_k 50, repetition penalty 1.1, 8 samples). SIEVE's min_length 5 / max_length 20
# count its 4 prompt tokens ("[DEC] a picture of"): 1..16 new tokens. The mini captioner has no prompt.
SIEVE_GEN_OPTIONS: dict[str, Any] = {
    "do_sample": True,
    "top_p": 0.9,
    "top_k": 50,
    "temperature": 1.0,
    "repetition_penalty": 1.1,
    "num_return_sequences": 8,
    "min_length": 1,
    "max_length": 16,
    "min_new_tokens": None,  # explicit: the *_length limits above are the ones that apply
    "max_new_tokens": None,
    "prompt": None,  # the mini captioner has no prompt (the sieve signal would bring SIEVE's)
}
#: greedy decoding for the second run's synthetic captions (the mixing presets' "_greedy" strategies): one
#: caption per image, the captioner's most likely one, rather than the first of SIEVE's nucleus samples
GREEDY_GEN_OPTIONS: dict[str, Any] = {
    **SIEVE_GEN_OPTIONS,
    "do_sample": False,
    "top_p": None,
    "top_k": None,
    "repetition_penalty": 1.0,
    "num_return_sequences": 1,
}


# --------------------------------------------------------------------------- shipped models


@dataclass
class ModelTrainPlan:
    clip_pool: int = 30_000
    clip_shares: W.PoolShares = field(default_factory=lambda: W.PoolShares(0.4, 0.1, 0.1, 0.4))
    clip_steps: int = 500
    cap_pool: int = 5_000
    cap_steps: int = 1000
    seed: int = 0


def train_shipped_models(
    out: Path = ASSETS, plan: ModelTrainPlan | None = None, command: str = ""
) -> dict[str, Any]:
    """Train the "web" CLIP (noisy, parrot-heavy pool) and the captioner (small clean set); save both."""
    p = plan or ModelTrainPlan()
    tests = W.make_test_sets()
    probe = W.make_probe_set(500)
    report: dict[str, Any] = {}

    from altsift.models.mini_backend import MiniCaptioner, MiniClipEncoder

    pool = W.make_pool(p.clip_pool, p.clip_shares, seed=p.seed + 101)
    cfg = TrainConfig(steps=p.clip_steps, batch_size=256, seed=p.seed, eval_at=(p.clip_steps,))
    r = train_clip(
        pool.images,
        pool.texts,
        cfg,
        evaluate=lambda m: evaluate(MiniClipEncoder(m, "cpu", "fp32", 512), tests),
    )
    probe_res = text_probe(MiniClipEncoder(r.model, "cpu", "fp32", 512), probe, list(W.WORDS))
    info = {
        "command": command,
        "data": f"make_pool({p.clip_pool}, shares={asdict(p.clip_shares)}, seed={p.seed + 101})",
        "train": asdict(cfg),
        "train_seconds": round(r.train_seconds, 1),
        "final_eval": r.evals.get(p.clip_steps, {}),
        "text_probe": probe_res,
    }
    d = save_checkpoint(r.model, out / "web_clip", info)
    (d / "train_log.txt").write_text("\n".join([*r.log_lines, "text probe: " + json.dumps(probe_res)]) + "\n")
    report["web_clip"] = info

    clean = W.make_pool(p.cap_pool, W.PRESET_SHARES["clean"], seed=p.seed + 202)
    ccfg = TrainConfig(steps=p.cap_steps, batch_size=128, seed=p.seed)
    rc = train_captioner(clean.images, clean.texts, ccfg)
    held = W.make_pool(500, W.PRESET_SHARES["clean"], seed=p.seed + 303)
    preds = [
        c[0]
        for c in MiniCaptioner(rc.model, "cpu", "fp32", 512).caption_arrays(
            held.images, GenerationOptions(), range(500)
        )
    ]
    cm = caption_metrics(preds, held.gt_captions)
    cinfo = {
        "command": command,
        "data": f"make_pool({p.cap_pool}, shares=clean, seed={p.seed + 202})",
        "train": asdict(ccfg),
        "train_seconds": round(rc.train_seconds, 1),
        "heldout_500_greedy": cm,
    }
    d = save_checkpoint(rc.model, out / "captioner", cinfo)
    (d / "train_log.txt").write_text("\n".join([*rc.log_lines, "held-out greedy: " + json.dumps(cm)]) + "\n")
    report["captioner"] = cinfo
    return report


# --------------------------------------------------------------------------- pool I/O


def write_shards(pool: W.MiniPool, out: Path, shard_size: int = 10_000) -> list[Path]:
    """Write the pool as img2dataset-style webdataset tars: ``{key}.png/.txt/.json`` (json has uid, sizes)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, start in enumerate(range(0, len(pool), shard_size)):
        path = out / f"{s:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(start, min(start + shard_size, len(pool))):
                key = f"{s:05d}{i - start:04d}"
                buf = BytesIO()
                Image.fromarray(pool.images[i]).save(buf, format="PNG")
                w, h = (int(v) for v in pool.original_sizes[i])
                meta = {
                    "key": key,
                    "uid": pool.uids[i],
                    "caption": pool.texts[i],
                    "original_width": w,
                    "original_height": h,
                    "width": W.IMAGE_SIZE,
                    "height": W.IMAGE_SIZE,
                    "status": "success",
                }
                for ext, data in (
                    ("png", buf.getvalue()),
                    ("txt", pool.texts[i].encode()),
                    ("json", json.dumps(meta).encode()),
                ):
                    ti = tarfile.TarInfo(f"{key}.{ext}")
                    ti.size = len(data)
                    tar.addfile(ti, BytesIO(data))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- scoring


def score_pool_pipeline(
    pool: W.MiniPool,
    work: Path,
    clip_model: str,
    captioner_model: str,
    text_model: str = "all-MiniLM-L6-v2",
    ocr: str = "rapidocr",
    greedy: bool = True,
) -> dict[str, Path]:
    """Score through the real pipeline: write shards, run ``altsift.pipeline.score``; returns the run dirs.

    ``run``: basic, clip (raw and synthetic caption: ``clip_score``, ``clip_score_synthetic``), caption
    (SIEVE's 8 nucleus samples), sieve, and with ``ocr="rapidocr"`` also ocr and parrot. ``greedy`` (when
    set): a second run on the same shards with basic, clip and caption decoded greedily.
    """
    import shutil

    from altsift.config import build_config
    from altsift.pipeline.score import score as run_score

    if work.exists():
        if any(p.name not in ("shards", "run", "run_greedy") for p in work.iterdir()):
            raise ConfigError(f"{work} exists and holds files the bench did not write; choose another --out")
        shutil.rmtree(work)
    shards = [str(p) for p in write_shards(pool, work / "shards", shard_size=5000)]
    clip = {
        "model": clip_model,
        "backend": "mini",
        "batch_size": 512,
        "extra_texts": {"synthetic_caption": "clip_score_synthetic"},
    }
    tree: dict[str, Any] = {
        "signals": ["basic", "clip", "caption", "sieve"] + (["ocr", "parrot"] if ocr == "rapidocr" else []),
        "score": {"batch_size": 512, "progress": False},
        "clip": clip,
        "caption": {"model": captioner_model, "backend": "mini", "batch_size": 512, **SIEVE_GEN_OPTIONS},
        "sieve": {"model": text_model, "batch_size": 256},
    }
    runs = {"run": work / "run"}
    cfg = build_config(tree, "mini bench config")
    run_score(shards, runs["run"], cfg.signals, cfg)
    if greedy:
        tree = {
            "signals": ["basic", "clip", "caption"],
            "score": {"batch_size": 512, "progress": False},
            "clip": clip,
            "caption": {"model": captioner_model, "backend": "mini", "batch_size": 512, **GREEDY_GEN_OPTIONS},
        }
        runs["greedy"] = work / "run_greedy"
        cfg = build_config(tree, "mini bench config (greedy captions)")
        run_score(shards, runs["greedy"], cfg.signals, cfg)
    return runs


def read_scores(run: Path, pool: W.MiniPool) -> pd.DataFrame:
    """The run's score tables as one frame, row-aligned with the pool (every row must be scored)."""
    tables = sorted((run / "scores").glob("*.parquet"))
    scored = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True).set_index("uid")
    df = scored.reindex(pool.uids).reset_index()
    if df["clip_score"].isna().any():
        raise RuntimeError(
            f"{int(df['clip_score'].isna().sum())} pool rows have no score after the pipeline run"
        )
    return df


def oracle_frame(df: pd.DataFrame, pool: W.MiniPool) -> pd.DataFrame:
    """The score table with oracle OCR (the rendered word) in ``has_text``/``ocr_text``/``cotr``, plus the
    hidden ``kind``. CoTR comes from the ``parrot`` signal's own ``cotr`` (Algorithm 1)."""
    from altsift.signals.parrot import cotr

    keep = [c for c in df.columns if c not in ("has_text", "ocr_text", "cotr", "cotr_fuzzy", "is_parrot")]
    out = df[keep].copy()
    out["kind"] = pool.kinds
    out["ocr_text"] = pool.words
    out["has_text"] = out["ocr_text"] != ""
    out["cotr"] = [cotr(t, w)[0] for t, w in zip(pool.texts, pool.words, strict=True)]
    return out


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Strategy:
    """A selection request for ``altsift.select`` (presets with options, where, top fractions).

    ``pool``: ``run`` selects on the run directory (what ``altsift select RUN`` reads); ``greedy`` on the
    second run directory, whose synthetic captions are decoded greedily; ``oracle`` on the score table with
    ground-truth OCR columns and the hidden ``kind``.
    """

    name: str
    description: str
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    where: tuple[str, ...] = ()
    top_fraction: dict[str, float] = field(default_factory=dict)
    pool: str = "run"
    needs_ocr: bool = False

    def request(self) -> SelectRequest:
        return SelectRequest(
            where=list(self.where),
            top_fraction=dict(self.top_fraction),
            presets={k: dict(v) for k, v in self.presets.items()},
        )

    def cli(self, source: str | None = None) -> str:
        """The equivalent ``altsift select`` command (shell-quoted; option values are YAML, as ``--set`` reads).

        The default source names the bench's output: ``OUT/pool/run``, ``OUT/pool/run_greedy`` or, for the
        oracle rows, ``OUT/scores.parquet`` (the score table with the oracle columns)."""
        import shlex

        src = (
            source
            or {"run": "OUT/pool/run", "greedy": "OUT/pool/run_greedy", "oracle": "OUT/scores.parquet"}[
                self.pool
            ]
        )
        parts = ["altsift", "select", src]
        for name, opts in self.presets.items():
            parts += ["--preset", name]
            for k, v in opts.items():
                key = k if len(self.presets) == 1 else f"{name}.{k}"
                parts += ["--set", f"{key}={v if isinstance(v, str) else json.dumps(v)}"]
        for w in self.where:
            parts += ["--where", w]
        for c, f in self.top_fraction.items():
            parts += ["--top-fraction", f"{c}={f:g}"]
        return " ".join(shlex.quote(p) for p in parts)


def strategies(fraction: float = 0.3, ocr: str = "rapidocr", greedy: bool = True) -> list[Strategy]:
    """The bench's strategies: presets of ``altsift.select`` with their options (pool-wide thresholds)."""
    f = fraction
    pct = f"{round(f * 100)}%"
    no_text = {"parrot_text_filter": {"clip_threshold": None, "aesthetic_threshold": None, "dedup": False}}
    clip_top = {"clip_score": f}
    out = [
        Strategy("no_filter", "the whole pool", {"no_filter": {}}),
        Strategy("basic", "DataComp basic filter (basic_pass)", {"basic_filter": {}}),
        Strategy("clip_top", f"CLIP score top {pct}", {"clip_score": {"column": "clip_score", "fraction": f}}),
        Strategy("sieve_top", f"SIEVE score top {pct}", {"sieve": {"weights": {"sieve_score": 1.0}, "fraction": f}}),
        Strategy("sieve_clip_fusion", f"SIEVE generic filter: 0.5 minmax(SIEVE) + 0.5 minmax(CLIP), top {pct}",
                 {"sieve": {"weights": {"sieve_score": 0.5, "clip_score": 0.5}, "fraction": f}}),
        Strategy("mix_synthetic_top", f"synthetic captions only, top {pct} by their CLIP score",
                 {"mix_synthetic_top": {"fraction": f}}),
        Strategy("mix_raw_top_synthetic_rest", f"raw captions for the CLIP top {pct}, synthetic for the rest",
                 {"mix_raw_top_synthetic_rest": {"raw_fraction": f}}),
        Strategy("mix_raw_top_synthetic_rest_filtered",
                 "as above; a synthetic pair is kept only if its CLIP score passes the same threshold",
                 {"mix_raw_top_synthetic_rest_filtered": {"raw_fraction": f}}),
        Strategy("mix_best_of", f"per pair the better-scoring caption, then top {pct} by that score",
                 {"mix_best_of": {"fraction": f}}),
        Strategy("mix_replace_below", "raw caption where raw CLIP >= the top-50% threshold, synthetic below it "
                 "if that passes the same threshold", {"mix_replace_below": {"fraction": 0.5, "filter_synthetic": True}}),
    ]  # fmt: skip
    if greedy:
        out += [
            Strategy(f"{s.name}_greedy", s.description + " (greedy captions)", s.presets, pool="greedy")
            for s in out
            if s.name in ("mix_raw_top_synthetic_rest", "mix_raw_top_synthetic_rest_filtered", "mix_best_of")
        ]  # fmt: skip
    variants = [("", "run")] if ocr == "rapidocr" else []
    variants.append(("_oracle", "oracle"))
    for suffix, pool in variants:
        what = "RapidOCR" if pool == "run" else "oracle OCR"
        out += [
            Strategy(f"text_filter{suffix}", f"parrot paper: drop images with text ({what}), CLIP top-{pct} threshold",
                     no_text, top_fraction=clip_top, pool=pool, needs_ocr=True),
            Strategy(f"cotr0_clip_top{suffix}", f"drop parrot captions (CoTR > 0, {what}), CLIP top-{pct} threshold",
                     where=("cotr is null or cotr == 0",), top_fraction=clip_top, pool=pool, needs_ocr=True),
        ]  # fmt: skip
    out.append(Strategy("oracle_faithful", "reference: only the faithful pairs (hidden ground truth)",
                        where=("kind == 'faithful'",), pool="oracle"))  # fmt: skip
    return out


@dataclass
class Chosen:
    """A strategy's subset: row mask, training caption per row, and which rows carry a synthetic caption."""

    mask: np.ndarray
    captions: list[str]
    synthetic: np.ndarray
    warnings: list[str]


def select(
    strategy: Strategy, source: Path | pd.DataFrame, texts: list[str], out: Path | None = None
) -> Chosen:
    """Run the strategy through ``altsift.select`` (and write the subset with ``write_selection``)."""
    pool, sel = run_selection(source, strategy.request())
    if out is not None:
        write_selection(pool, sel, out, overwrite=True, request=strategy.request())
    mask = np.asarray(sel.mask, dtype=bool)
    n = len(mask)
    if "caption" in sel.columns:
        caps = sel.columns["caption"]
        captions = [str(caps[i]) if mask[i] else texts[i] for i in range(n)]
        synthetic = np.asarray([s == "synthetic" for s in sel.columns["caption_source"]], dtype=bool)
    else:
        captions, synthetic = list(texts), np.zeros(n, dtype=bool)
    return Chosen(mask, captions, synthetic & mask, list(sel.warnings))


def composition(kinds: np.ndarray, has_text: np.ndarray, sub: Chosen) -> dict[str, Any]:
    m = sub.mask
    n = int(m.sum())
    out: dict[str, Any] = {"size": n, "synthetic": int((m & sub.synthetic).sum())}
    raw = m & ~sub.synthetic
    for k in W.KINDS:
        out[f"raw_{k}"] = int((raw & (kinds == k)).sum())
    out["parrot_kept_share"] = float((raw & (kinds == "parrot")).sum() / max(1, (kinds == "parrot").sum()))
    out["images_with_text_share"] = float((m & has_text).sum() / max(1, n))
    return out


# --------------------------------------------------------------------------- the bench


#: the full run's strategies (18 x 3 seeds does not fit ~15 min on 2 cores; ``--only all`` runs every one)
FULL_STRATEGIES = (
    "no_filter", "basic", "clip_top", "sieve_top", "sieve_clip_fusion", "mix_raw_top_synthetic_rest_filtered",
    "mix_raw_top_synthetic_rest_filtered_greedy", "mix_best_of_greedy", "text_filter", "text_filter_oracle",
    "cotr0_clip_top", "cotr0_clip_top_oracle", "oracle_faithful",
)  # fmt: skip


@dataclass
class BenchConfig:
    pool_size: int = 6000
    steps: int = 80
    batch_size: int = 128
    #: steps at which to evaluate (one evaluation: ~10% of a training's time; ``--eval-at 40,80`` for a curve)
    eval_at: tuple[int, ...] = (80,)
    fraction: float = 0.3
    #: training seeds: each trains a fresh CLIP per subset (init and batch order); the pool is one (pool_seed)
    seeds: tuple[int, ...] = (0, 1, 2)
    pool_seed: int = 0
    #: ``rapidocr``: the ocr and parrot signals run in the pipeline (and the oracle variants too); ``oracle``: only
    #: the ground-truth OCR variants
    ocr: str = "rapidocr"
    clip_model: str = str(ASSETS / "web_clip")
    captioner_model: str = str(ASSETS / "captioner")
    #: strategies to run (empty: every one)
    only: tuple[str, ...] = FULL_STRATEGIES
    #: also score the pool with greedy synthetic captions and run the mixing presets on them ("_greedy" rows)
    greedy: bool = True
    #: clean test set sizes: zero-shot, binding, retrieval, text probe
    test_sizes: tuple[int, int, int, int] = (960, 1000, 1000, 300)
    #: train every strategy's CLIP with rule-made hard negative captions (NegCLIP; ``altsift.mini.negatives``);
    #: measured (RESULTS_mini.md, "Binding ablation"): binding of the oracle subset 0.637 vs 0.622 without,
    #: CLIP top 0.668 vs 0.643, no filter 0.556 vs 0.548 (gains within the seed spread)
    hard_negatives: bool = True
    #: std of the per-strategy CLIPs' initial text position embeddings (``MiniConfig.pos_init_std``): 1.0 lets
    #: them learn word order, so binding is learnable; the shipped scoring models keep 0.02
    text_pos_init: float = 1.0

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(pool_size=2000, steps=50, batch_size=64, eval_at=(25, 50), seeds=(0,), ocr="oracle", greedy=False, only=(),
                   test_sizes=(480, 500, 500, 200))  # fmt: skip


METRICS = ("zs_acc", "zs_acc_word", "binding_acc", "i2t_r1", "t2i_r1", "probe_gap")


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(len(a))}  # fmt: skip


def run_bench(
    cfg: BenchConfig, out: Path | None = None, progress: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Generate, score, select, train and evaluate; returns (and writes) the results."""
    from altsift.models.mini_backend import MiniClipEncoder

    if cfg.ocr not in ("rapidocr", "oracle"):
        raise ConfigError(f"ocr must be 'rapidocr' or 'oracle', got '{cfg.ocr}'")
    if not cfg.seeds:
        raise ConfigError("give at least one training seed")
    if not (math.isfinite(cfg.text_pos_init) and cfg.text_pos_init > 0):
        raise ConfigError(f"text_pos_init must be a positive finite std, got {cfg.text_pos_init}")
    known = strategies(cfg.fraction, cfg.ocr, cfg.greedy)
    names = {k.name for k in known}
    if cfg.only == FULL_STRATEGIES:  # it names rows that --ocr oracle / greedy=False do not make
        cfg.only = tuple(s for s in cfg.only if s in names)
    if unknown := [s for s in cfg.only if s not in names]:
        raise ConfigError(f"unknown strategies {unknown}. Known: {', '.join(k.name for k in known)}")
    chosen_strats = [s for s in known if not cfg.only or s.name in cfg.only]
    t_all = time.perf_counter()
    pool = W.make_pool(cfg.pool_size, W.PRESET_SHARES["noisy"], seed=cfg.pool_seed)
    n_zs, n_bind, n_ret, n_probe = cfg.test_sizes
    tests = W.make_test_sets(n_zs, n_bind, n_ret)
    probe = W.make_probe_set(n_probe)
    progress(f"pool of {len(pool)} pairs generated ({dict(pd.Series(pool.kinds).value_counts())})")
    root = out or Path(tempfile.mkdtemp(prefix="altsift_mini_"))
    t0 = time.perf_counter()
    runs = score_pool_pipeline(
        pool, root / "pool", cfg.clip_model, cfg.captioner_model, ocr=cfg.ocr, greedy=cfg.greedy
    )
    score_s = time.perf_counter() - t0
    progress(f"scored through the pipeline in {score_s:.1f}s ({', '.join(map(str, runs.values()))})")
    df = read_scores(runs["run"], pool)
    captions = {
        "first_nucleus_sample": caption_metrics(df["synthetic_caption"].fillna("").tolist(), pool.gt_captions)
    }
    if "greedy" in runs:
        g = read_scores(runs["greedy"], pool)["synthetic_caption"].fillna("").tolist()
        captions["greedy"] = caption_metrics(g, pool.gt_captions)
    oracle = oracle_frame(df, pool)
    kinds = np.asarray(pool.kinds)
    true_text = np.asarray(pool.words) != ""

    subsets: dict[str, Chosen] = {}
    sel_dir = root / "subsets"
    sel_dir.mkdir(parents=True, exist_ok=True)
    warnings: set[str] = set()
    sel_log = logging.getLogger("altsift.select")
    level = sel_log.level
    sel_log.setLevel(logging.ERROR)  # provenance warnings (mini CLIP is not L/14) are collected once below
    try:
        for s in chosen_strats:
            source = oracle if s.pool == "oracle" else runs[s.pool]
            subsets[s.name] = select(s, source, pool.texts, sel_dir / f"{s.name}.npy")
            warnings.update(subsets[s.name].warnings)
    finally:
        sel_log.setLevel(level)

    eval_at = tuple(s for s in cfg.eval_at if s <= cfg.steps) or (cfg.steps,)
    rows: list[dict[str, Any]] = []
    for s in chosen_strats:
        sub = subsets[s.name]
        comp = composition(kinds, true_text, sub)
        idx = np.flatnonzero(sub.mask)
        row: dict[str, Any] = {"strategy": s.name, "description": s.description, "select": s.cli(),
                               "pool": s.pool, **comp, "per_seed": {}}  # fmt: skip
        if len(idx) == 0:
            progress(f"{s.name}: empty subset, not trained")
            rows.append(row)
            continue
        for seed in cfg.seeds:
            tcfg = TrainConfig(
                steps=cfg.steps,
                batch_size=cfg.batch_size,
                seed=seed,
                eval_at=eval_at,
                hard_negatives=cfg.hard_negatives,
            )
            res = train_clip(
                pool.images[idx],
                [sub.captions[i] for i in idx],
                tcfg,
                MiniConfig(kind="clip", pos_init_std=cfg.text_pos_init),
                evaluate=lambda m: evaluate(MiniClipEncoder(m, "cpu", "fp32", 512), tests),
            )
            pr = text_probe(MiniClipEncoder(res.model, "cpu", "fp32", 512), probe, list(W.WORDS))
            evals = {str(k): {**v, "probe_gap": pr["gap"] if k == max(res.evals) else float("nan")}
                     for k, v in res.evals.items()}  # fmt: skip
            row["per_seed"][str(seed)] = {"evals": evals, "train_seconds": round(res.train_seconds, 1)}
            final = res.evals[max(res.evals)]
            progress(f"{s.name} seed {seed}: n={comp['size']} zs={final['zs_acc']:.3f} "
                     f"bind={final['binding_acc']:.3f} i2t={final['i2t_r1']:.3f} ({res.train_seconds:.0f}s)")  # fmt: skip
        row["stats"] = {
            step: {m: _stats([row["per_seed"][str(sd)]["evals"][step][m] for sd in cfg.seeds])
                   for m in METRICS if step == str(max(eval_at)) or m != "probe_gap"}
            for step in (str(e) for e in eval_at)
        }  # fmt: skip
        rows.append(row)
    clip = load_model("image_text", ModelSpec(model=cfg.clip_model), "mini")
    ocr_quality = None
    if cfg.ocr == "rapidocr":
        has = df["has_text"].fillna(False).to_numpy(bool)
        found = df["ocr_text"].fillna("").str.strip().to_numpy()
        ocr_quality = {
            "recall_images_with_text": float((has & true_text).sum() / max(1, true_text.sum())),
            "false_positive_rate": float((has & ~true_text).sum() / max(1, (~true_text).sum())),
            "exact_word_share": float(np.mean(found[true_text] == np.asarray(pool.words)[true_text])),
            "parrot_flagged_cotr_gt0": float((df["cotr"].fillna(0).to_numpy()[kinds == "parrot"] > 0).mean()),
        }
    result = {
        "config": {**asdict(cfg), "noise_shares": asdict(W.PRESET_SHARES["noisy"])},
        "ocr": (
            "RapidOCR through the ocr and parrot signals (rows *_oracle use the rendered word instead)"
            if cfg.ocr == "rapidocr"
            else "oracle only: the rendered word from the world's ground truth (no OCR model run)"
        ),
        "ocr_quality": ocr_quality,
        "caption_quality_vs_ground_truth": captions,
        "selection_warnings": sorted(warnings),
        "web_clip_probe": text_probe(clip, probe, list(W.WORDS)),
        "web_clip_eval": evaluate(clip, tests),
        "score_seconds": round(score_s, 1),
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "strategies": rows,
    }
    result["findings"] = findings(result)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=1, default=float))
        (out / "results.md").write_text(to_markdown(result))
        oracle.to_parquet(out / "scores.parquet")
    return result


# --------------------------------------------------------------------------- report


def _cell(st: dict[str, float]) -> str:
    if st["n"] == 1:
        return f"{st['mean']:.3f}"
    return f"{st['mean']:.3f} ± {st['sd']:.3f}"


def compare(result: dict[str, Any], a: str, b: str, metric: str) -> dict[str, Any] | None:
    """Mean difference a - b on ``metric`` at the last step, and whether it exceeds the seed spread:
    the seed ranges [min, max] of a and b do not overlap (needs >= 2 seeds)."""
    rows = {r["strategy"]: r for r in result["strategies"] if "stats" in r}
    if a not in rows or b not in rows:
        return None
    last = max(rows[a]["stats"], key=int)
    sa, sb = rows[a]["stats"][last][metric], rows[b]["stats"][last][metric]
    sep = sa["n"] > 1 and sb["n"] > 1 and (sa["min"] > sb["max"] or sa["max"] < sb["min"])
    return {"a": a, "b": b, "metric": metric, "step": int(last), "a_mean": sa["mean"], "a_sd": sa["sd"],
            "b_mean": sb["mean"], "b_sd": sb["sd"], "diff": sa["mean"] - sb["mean"], "exceeds_spread": bool(sep)}  # fmt: skip


#: (claim, a, b, metric, expected sign of a - b)
CLAIMS: tuple[tuple[str, str, str, str, int], ...] = (
    ("DataComp: CLIP-score filtering beats no filtering (zero-shot)", "clip_top", "no_filter", "zs_acc", 1),
    ("DataComp: CLIP-score filtering beats no filtering (retrieval)", "clip_top", "no_filter", "i2t_r1", 1),
    ("DataComp: CLIP-score filtering beats the basic filter (retrieval)", "clip_top", "basic", "i2t_r1", 1),
    ("SIEVE: SIEVE+CLIP fusion beats CLIP score alone (zero-shot)", "sieve_clip_fusion", "clip_top", "zs_acc", 1),
    ("SIEVE: SIEVE+CLIP fusion beats CLIP score alone (retrieval)", "sieve_clip_fusion", "clip_top", "i2t_r1", 1),
    ("Parrot: parrot captions teach text spotting (probe gap, no filter vs RapidOCR CoTR=0 filter)",
     "no_filter", "cotr0_clip_top", "probe_gap", 1),
    ("Parrot: dropping images with text (RapidOCR) beats CLIP top alone (zero-shot)",
     "text_filter", "clip_top", "zs_acc", 1),
    ("Nguyen et al.: raw top 30% + filtered synthetic beats raw top 30% (zero-shot)",
     "mix_raw_top_synthetic_rest_filtered", "clip_top", "zs_acc", 1),
    ("Nguyen et al.: raw top 30% + filtered synthetic beats raw top 30% (retrieval)",
     "mix_raw_top_synthetic_rest_filtered", "clip_top", "i2t_r1", 1),
    ("Nguyen et al., greedy captions: raw top 30% + filtered synthetic beats raw top 30% (zero-shot)",
     "mix_raw_top_synthetic_rest_filtered_greedy", "clip_top", "zs_acc", 1),
    ("Nguyen et al., greedy captions: raw top 30% + filtered synthetic beats raw top 30% (retrieval)",
     "mix_raw_top_synthetic_rest_filtered_greedy", "clip_top", "i2t_r1", 1),
    ("Parrot: CLIP-score filtering alone still teaches text spotting (probe gap vs CoTR=0 at the same threshold)",
     "clip_top", "cotr0_clip_top", "probe_gap", 1),
    ("DataComp: CLIP-score filtering beats no filtering (binding)", "clip_top", "no_filter", "binding_acc", 1),
    ("Eval sanity: the oracle-filtered subset beats no filter (retrieval)", "oracle_faithful", "no_filter",
     "i2t_r1", 1),
    ("Eval sanity: the oracle-filtered subset beats no filter (zero-shot)", "oracle_faithful", "no_filter", "zs_acc", 1),
    ("Eval sanity: the oracle-filtered subset beats no filter (binding)", "oracle_faithful", "no_filter",
     "binding_acc", 1),
)  # fmt: skip


def findings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each claim: reproduced (expected sign, beyond the seed spread), same direction within the spread,
    or not reproduced."""
    out = []
    for claim, a, b, metric, sign in CLAIMS:
        c = compare(result, a, b, metric)
        if c is None:
            continue
        right = c["diff"] * sign > 0
        c["claim"] = claim
        if c["diff"] == 0:
            c["verdict"] = "no difference"
            out.append(c)
            continue
        one = c["a_sd"] == 0.0 and c["b_sd"] == 0.0 and len(result["config"]["seeds"]) == 1
        c["verdict"] = (
            ("same direction (one seed: no spread, not a verdict)" if right else "opposite (one seed: not a verdict)")
            if one
            else "reproduced" if right and c["exceeds_spread"]
            else "same direction, within the seed spread" if right
            else "not reproduced (opposite, beyond the spread)" if c["exceeds_spread"]
            else "not reproduced (opposite, within the spread)"
        )  # fmt: skip
        out.append(c)
    return out


def to_markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    trained = [r for r in result["strategies"] if "stats" in r]
    steps = sorted({int(s) for r in trained for s in r["stats"]})
    last = str(steps[-1]) if steps else ""
    seeds = c["seeds"]
    spread = (
        "mean ± sd over training seeds " + ", ".join(map(str, seeds))
        if len(seeds) > 1
        else f"seed {seeds[0]}"
    )
    lines = [
        f"Pool {c['pool_size']} pairs (seed {c['pool_seed']}, shares {c['noise_shares']}), fraction {c['fraction']}, "
        f"fresh tiny CLIP per subset: {c['steps']} steps x batch {c['batch_size']}"
        f"{', hard negative captions' if c.get('hard_negatives') else ''}, text position init std "
        f"{c.get('text_pos_init', 0.02)}; {spread}. "
        f"OCR: {result['ocr']}. Scoring {result['score_seconds']} s, total {result['total_seconds']} s.",
        "",
        "| strategy | size | raw faithful | raw vague | raw wrong | raw parrot | synthetic | parrots kept | "
        "images with text |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["strategies"]:
        lines.append(
            f"| {r['strategy']} | {r['size']} | {r['raw_faithful']} | {r['raw_vague']} | {r['raw_wrong']} | "
            f"{r['raw_parrot']} | {r['synthetic']} | {r['parrot_kept_share']:.0%} | {r['images_with_text_share']:.0%} |"
        )
    lines += [
        "",
        f"At {last} steps ({spread}):",
        "",
        "| strategy | zero-shot | zero-shot, word in image | binding | i2t R@1 | t2i R@1 | probe gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in trained:
        st = r["stats"][last]
        lines.append(f"| {r['strategy']} | " + " | ".join(_cell(st[m]) for m in METRICS) + " |")
    lines += [
        "",
        "Budgets (zero-shot / binding / i2t R@1, means over seeds, at each step count):",
        "",
        "| strategy | " + " | ".join(f"@{s}" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for r in trained:
        cells = [" / ".join(f"{r['stats'][str(s)][m]['mean']:.3f}" for m in ("zs_acc", "binding_acc", "i2t_r1"))
                 for s in steps]  # fmt: skip
        lines.append(f"| {r['strategy']} | " + " | ".join(cells) + " |")
    if result.get("findings"):
        lines += [
            "",
            "Findings (difference of means at the last step; 'beyond the spread' = the seeds' [min, max] ranges "
            "do not overlap):",
            "",
            "| claim | a - b | metric | a | b | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for f in result["findings"]:
            lines.append(
                f"| {f['claim']} | {f['a']} - {f['b']} | {f['metric']} | {f['a_mean']:.3f} ± {f['a_sd']:.3f} | "
                f"{f['b_mean']:.3f} ± {f['b_sd']:.3f} | {f['verdict']} ({f['diff']:+.3f}) |"
            )
    q = result.get("ocr_quality")
    if q:
        lines += [
            "",
            f"RapidOCR on the pool: finds text in {q['recall_images_with_text']:.1%} of the images that carry a word, "
            f"false positives on {q['false_positive_rate']:.1%} of those without; reads the exact word on "
            f"{q['exact_word_share']:.1%}; flags {q['parrot_flagged_cotr_gt0']:.1%} of the parrot pairs (CoTR > 0).",
        ]
    cq = result.get("caption_quality_vs_ground_truth") or {}
    if cq:
        lines += [
            "",
            "Synthetic captions vs the scene's ground-truth caption (whole pool): "
            + "; ".join(
                f"{k.replace('_', ' ')}: exact {v['exact']:.1%}, word-F1 {v['word_f1']:.3f}"
                for k, v in cq.items()
            )
            + ".",
        ]
    p = result["web_clip_probe"]
    lines += [
        "",
        f"Web mini CLIP text probe: cos(A,W)={p['cos_with_word']:.3f}, cos(B,W)={p['cos_without_word']:.3f}, "
        f"gap {p['gap']:+.3f}; word top-1 {p['word_top1']:.1%} (chance {p['word_top1_chance']:.1%}); "
        f"word beats caption on {p['word_beats_caption']:.1%} of images with text.",
        "",
    ]
    return "\n".join(lines)
