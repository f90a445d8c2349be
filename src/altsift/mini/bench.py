"""``altsift bench mini``: DataComp's protocol in miniature, on a laptop CPU.

1. generate a noisy web-like pool (``world.make_pool``) and clean held-out test sets;
2. score every pair: DataComp basic rules (the real ``basic`` signal), CLIP score with the shipped "web"
   mini CLIP, synthetic captions with the shipped mini captioner (SIEVE's 8 nucleus samples; the first one
   is the caption the mixing policies use, and is CLIP-scored too), SIEVE score (all-MiniLM-L6-v2 over phrase-masked alt-text vs captions, max of 8), and an
   **oracle OCR** column (the word the world rendered: RapidOCR is too slow for 20k images on 2 cores)
   with its CoTR (parrot caption rate);
3. select with each strategy (pool-wide thresholds: ``select.base``);
   By default this runs the real pipeline (webdataset shards -> ``altsift.pipeline.score`` with the
   ``basic``, ``clip``, ``caption`` and ``sieve`` signals); ``scorer="direct"`` calls the adapters in memory.
4. train a fresh tiny CLIP per subset with the same recipe and budget, evaluate at several step counts
   on the clean test sets; write ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import logging
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
from altsift.mini.networks import save_checkpoint
from altsift.mini.train import TrainConfig, train_captioner, train_clip
from altsift.models.base import GenerationOptions, ModelSpec, load_model
from altsift.select.base import fuse, get_threshold

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
SIEVE_GEN = GenerationOptions(**SIEVE_GEN_OPTIONS)


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


def sieve_mask(text: str) -> str:
    """SIEVE's medium-phrase masking (the ``sieve`` signal's own implementation)."""
    from altsift.signals.sieve import mask_phrases

    return mask_phrases([text])[0]


def cotr(caption: str, ocr_text: str) -> float:
    """Parrot paper Algorithm 1 (the ``parrot`` signal's own implementation)."""
    from altsift.signals.parrot import cotr as cotr_and_words

    return cotr_and_words(caption, ocr_text)[0]


def _basic_pass(pool: W.MiniPool) -> np.ndarray:
    from altsift.signals.registry import get_signal

    sig = get_signal("basic")()
    n = len(pool)
    batch = {
        "text": pool.texts,
        "status": ["ok"] * n,
        "uid": pool.uids,
        "key": pool.uids,
        "shard": [""] * n,
        "error": [None] * n,
        "json": [{}] * n,
        "image": [None] * n,
        "original_width": pool.original_sizes[:, 0].tolist(),
        "original_height": pool.original_sizes[:, 1].tolist(),
    }
    return np.asarray(sig(batch)["basic_pass"], dtype=bool)


def oracle_columns(df: pd.DataFrame, pool: W.MiniPool) -> pd.DataFrame:
    """Hidden ground truth and the oracle OCR columns (rendered word, has_text, CoTR), row-aligned with the pool."""
    df["kind"] = pool.kinds
    df["ocr_text"] = pool.words
    df["has_text"] = df["ocr_text"] != ""
    df["cotr"] = [cotr(t, o) for t, o in zip(pool.texts, pool.words, strict=True)]
    return df


def score_pool_pipeline(
    pool: W.MiniPool, work: Path, clip_model: str, captioner_model: str, text_model: str = "all-MiniLM-L6-v2"
) -> pd.DataFrame:
    """Score through the real pipeline: write shards, ``altsift.pipeline.score`` with basic, clip, caption, sieve."""
    import shutil

    from altsift.config import build_config
    from altsift.pipeline.score import score as run_score

    if work.exists():
        if any(p.name not in ("shards", "run") for p in work.iterdir()):
            raise ConfigError(f"{work} exists and holds files the bench did not write; choose another --out")
        shutil.rmtree(work)
    shards = write_shards(pool, work / "shards", shard_size=5000)
    tree = {
        "signals": ["basic", "clip", "caption", "sieve"],
        "score": {"batch_size": 512, "progress": False},
        "clip": {
            "model": clip_model,
            "backend": "mini",
            "batch_size": 512,
            "extra_texts": {"synthetic_caption": "caption_clip_score"},
        },
        "caption": {"model": captioner_model, "backend": "mini", "batch_size": 512, **SIEVE_GEN_OPTIONS},
        "sieve": {"model": text_model, "batch_size": 256},
    }
    cfg = build_config(tree, "mini bench config")
    run_score([str(p) for p in shards], work / "run", cfg.signals, cfg)
    tables = sorted((work / "run" / "scores").glob("*.parquet"))
    scored = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True).set_index("uid")
    df = scored.reindex(pool.uids).reset_index()
    if df["clip_score"].isna().any():
        raise RuntimeError(
            f"{int(df['clip_score'].isna().sum())} pool rows have no score after the pipeline run"
        )
    df["caption"] = df["synthetic_caption"]
    keep = [
        "uid",
        "text",
        "original_width",
        "original_height",
        "basic_pass",
        "clip_score",
        "caption",
        "caption_clip_score",
        "sieve_score",
    ]
    return oracle_columns(df[keep].copy(), pool)


def score_pool(
    pool: W.MiniPool, clip_model: str, captioner_model: str, text_model: str = "all-MiniLM-L6-v2"
) -> pd.DataFrame:
    """Every signal the strategies need, as one row per pair (the hidden ``kind`` is kept for reporting)."""
    t0 = time.perf_counter()
    clip = load_model("image_text", ModelSpec(model=clip_model, batch_size=512), "mini")
    cap = load_model("captioner", ModelSpec(model=captioner_model, batch_size=256), "mini")
    df = pd.DataFrame(
        {
            "uid": pool.uids,
            "text": pool.texts,
            "original_width": pool.original_sizes[:, 0],
            "original_height": pool.original_sizes[:, 1],
        }
    )
    df["basic_pass"] = _basic_pass(pool)
    img = clip.encode_arrays(pool.images)
    df["clip_score"] = (img * clip.encode_texts(pool.texts)).sum(1)
    from altsift.models.captioners import seed_for

    seeds = [seed_for(u, 0) for u in pool.uids]  # the caption signal's per-sample seeds (uid, seed 0)
    samples = cap.caption_arrays(pool.images, SIEVE_GEN, seeds)
    first = [row[0] for row in samples]  # the pipeline's ``synthetic_caption``: first of the 8 samples
    df["caption"] = first
    df["caption_clip_score"] = (img * clip.encode_texts(first)).sum(1)
    t1 = time.perf_counter()
    enc = load_model("text", ModelSpec(model=text_model, batch_size=256), "sentence_transformers")
    alt_m = [sieve_mask(t) for t in pool.texts]
    cap_m = [[sieve_mask(c) for c in row] for row in samples]
    uniq = sorted(set(alt_m) | {c for row in cap_m for c in row})
    emb = enc.encode(uniq)
    at = {t: i for i, t in enumerate(uniq)}
    a = emb[[at[t] for t in alt_m]]
    c = emb[[[at[x] for x in row] for row in cap_m]]  # (n, 8, d)
    sims = np.einsum("nd,nkd->nk", a, c)
    best = sims.argmax(1)
    empty = np.array([not cap_m[i][best[i]].strip() for i in range(len(pool))])
    df["sieve_score"] = np.where(empty, 0.0, sims.max(1))
    oracle_columns(df, pool)
    log.info(
        "scored %d pairs in %.1fs (MiniLM on %d unique texts: %.1fs)",
        len(pool),
        time.perf_counter() - t0,
        len(uniq),
        time.perf_counter() - t1,
    )
    return df


# --------------------------------------------------------------------------- strategies


@dataclass
class Subset:
    mask: np.ndarray
    captions: list[str]  # training caption per row (raw alt-text or synthetic)
    synthetic: np.ndarray  # bool: caption replaced


def _top(scores: np.ndarray, fraction: float) -> tuple[np.ndarray, float]:
    t = get_threshold(scores, fraction)
    return np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf) >= t, t


def strategies(fraction: float = 0.3) -> dict[str, tuple[str, Callable[[pd.DataFrame], Subset]]]:
    """name -> (description, df -> Subset). Thresholds are pool-wide (DataComp ``get_threshold``)."""

    def raw(mask: np.ndarray, df: pd.DataFrame) -> Subset:
        return Subset(np.asarray(mask, bool), list(df["text"]), np.zeros(len(df), bool))

    def mix(df: pd.DataFrame, filtered: bool) -> Subset:
        keep_raw, t = _top(df["clip_score"].to_numpy(), fraction)
        syn = ~keep_raw
        if filtered:
            syn &= df["caption_clip_score"].to_numpy() >= t
        caps = np.where(keep_raw, df["text"], df["caption"]).tolist()
        return Subset(keep_raw | syn, caps, syn)

    pct = f"{round(fraction * 100)}%"
    return {
        "no_filter": ("the whole pool", lambda df: raw(np.ones(len(df), bool), df)),
        "basic": (
            "DataComp basic filter (English, >2 words, >5 chars, min side >= 200, aspect <= 3)",
            lambda df: raw(df["basic_pass"].to_numpy(bool), df),
        ),
        "clip_top": (
            f"CLIP score (web mini CLIP) top {pct}",
            lambda df: raw(_top(df["clip_score"].to_numpy(), fraction)[0], df),
        ),
        "sieve_top": (
            f"SIEVE score top {pct}",
            lambda df: raw(_top(df["sieve_score"].to_numpy(), fraction)[0], df),
        ),
        "sieve_clip_fusion": (
            f"0.5 minmax(SIEVE) + 0.5 minmax(CLIP) top {pct}",
            lambda df: raw(_top(fuse(df, {"sieve_score": 0.5, "clip_score": 0.5}), fraction)[0], df),
        ),
        "mix_raw_top_cap_rest": (
            f"raw captions for CLIP top {pct}, synthetic captions for the rest",
            lambda df: mix(df, False),
        ),
        "mix_raw_top_cap_rest_filtered": (
            "as above, synthetic pairs kept only if their CLIP score passes the same threshold",
            lambda df: mix(df, True),
        ),
        "text_filter": (
            f"parrot paper recipe: drop images with text (oracle OCR), keep CLIP >= the top-{pct} threshold",
            lambda df: raw(
                ~df["has_text"].to_numpy(bool) & _top(df["clip_score"].to_numpy(), fraction)[0], df
            ),
        ),
        "cotr0_clip_top": (
            f"drop parrot captions (CoTR > 0, oracle OCR), keep CLIP >= the top-{pct} threshold",
            lambda df: raw((df["cotr"].to_numpy() == 0) & _top(df["clip_score"].to_numpy(), fraction)[0], df),
        ),
        "oracle_faithful": (
            "reference: only the faithful pairs (hidden ground truth)",
            lambda df: raw(df["kind"].to_numpy() == "faithful", df),
        ),
    }


def composition(df: pd.DataFrame, sub: Subset) -> dict[str, Any]:
    m = sub.mask
    kinds = df["kind"].to_numpy()
    n = int(m.sum())
    out: dict[str, Any] = {"size": n, "synthetic": int((m & sub.synthetic).sum())}
    raw = m & ~sub.synthetic
    for k in W.KINDS:
        out[f"raw_{k}"] = int((raw & (kinds == k)).sum())
    out["parrot_kept_share"] = float((raw & (kinds == "parrot")).sum() / max(1, (kinds == "parrot").sum()))
    out["images_with_text_share"] = float((m & df["has_text"].to_numpy(bool)).sum() / max(1, n))
    return out


# --------------------------------------------------------------------------- the bench


@dataclass
class BenchConfig:
    pool_size: int = 20_000
    steps: int = 200
    batch_size: int = 256
    eval_at: tuple[int, ...] = (100, 150, 200)
    fraction: float = 0.3
    seed: int = 0
    clip_model: str = str(ASSETS / "web_clip")
    captioner_model: str = str(ASSETS / "captioner")
    only: tuple[str, ...] = ()
    #: ``pipeline``: shards + ``altsift.pipeline.score`` with the real signals; ``direct``: adapters in memory
    scorer: str = "pipeline"
    #: clean test set sizes: zero-shot, binding, retrieval, text probe
    test_sizes: tuple[int, int, int, int] = (960, 1000, 1000, 300)

    @classmethod
    def quick(cls) -> BenchConfig:
        return cls(pool_size=4000, steps=60, batch_size=128, eval_at=(30, 60))


def run_bench(
    cfg: BenchConfig, out: Path | None = None, progress: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Generate, score, select, train and evaluate; returns (and writes) the results."""
    t_all = time.perf_counter()
    pool = W.make_pool(cfg.pool_size, W.PRESET_SHARES["noisy"], seed=cfg.seed)
    n_zs, n_bind, n_ret, n_probe = cfg.test_sizes
    tests = W.make_test_sets(n_zs, n_bind, n_ret)
    probe = W.make_probe_set(n_probe)
    progress(f"pool of {len(pool)} pairs generated ({dict(pd.Series(pool.kinds).value_counts())})")
    t0 = time.perf_counter()
    if cfg.scorer == "pipeline":
        work = (out or Path(tempfile.mkdtemp(prefix="altsift_mini_"))) / "pool"
        df = score_pool_pipeline(pool, work, cfg.clip_model, cfg.captioner_model)
    elif cfg.scorer == "direct":
        df = score_pool(pool, cfg.clip_model, cfg.captioner_model)
    else:
        raise ConfigError(f"scorer must be 'pipeline' or 'direct', got '{cfg.scorer}'")
    score_s = time.perf_counter() - t0
    progress(f"scored in {score_s:.1f}s")

    from altsift.models.mini_backend import MiniClipEncoder

    known = strategies(cfg.fraction)
    if unknown := [s for s in cfg.only if s not in known]:
        raise ConfigError(f"unknown strategies {unknown}. Known: {', '.join(known)}")
    eval_at = tuple(s for s in cfg.eval_at if s <= cfg.steps) or (cfg.steps,)
    tcfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, seed=cfg.seed, eval_at=eval_at)
    rows = []
    for name, (desc, fn) in strategies(cfg.fraction).items():
        if cfg.only and name not in cfg.only:
            continue
        sub = fn(df)
        comp = composition(df, sub)
        idx = np.flatnonzero(sub.mask)
        if len(idx) == 0:
            progress(f"{name}: empty subset, skipped")
            continue
        res = train_clip(
            pool.images[idx],
            [sub.captions[i] for i in idx],
            tcfg,
            evaluate=lambda m: evaluate(MiniClipEncoder(m, "cpu", "fp32", 512), tests),
        )
        pr = text_probe(MiniClipEncoder(res.model, "cpu", "fp32", 512), probe, list(W.WORDS))
        rows.append(
            {
                "strategy": name,
                "description": desc,
                **comp,
                "train_seconds": round(res.train_seconds, 1),
                "evals": {str(k): v for k, v in res.evals.items()},
                "probe_gap": pr["gap"],
                "probe_word_beats_caption": pr["word_beats_caption"],
            }
        )
        final = res.evals[max(res.evals)]
        progress(
            f"{name}: n={comp['size']} zs={final['zs_acc']:.3f} bind={final['binding_acc']:.3f} "
            f"i2t={final['i2t_r1']:.3f} ({res.train_seconds:.0f}s)"
        )
    clip = load_model("image_text", ModelSpec(model=cfg.clip_model), "mini")
    result = {
        "config": {**asdict(cfg), "noise_shares": asdict(W.PRESET_SHARES["noisy"])},
        "scorer": cfg.scorer,
        "ocr": "oracle: the rendered word from the world's ground truth (no OCR model run)",
        "web_clip_probe": text_probe(clip, probe, list(W.WORDS)),
        "web_clip_eval": evaluate(clip, tests),
        "score_seconds": round(score_s, 1),
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "strategies": rows,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=1, default=float))
        (out / "results.md").write_text(to_markdown(result))
        df.to_parquet(out / "scores.parquet")
    return result


def to_markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    steps = sorted({int(s) for r in result["strategies"] for s in r["evals"]})
    last = str(steps[-1]) if steps else ""
    lines = [
        f"Pool {c['pool_size']} pairs (shares {c['noise_shares']}), fraction {c['fraction']}, "
        f"fresh tiny CLIP per subset: {c['steps']} steps x batch {c['batch_size']}, seed {c['seed']}. "
        f"OCR column: {result['ocr']}. Scoring {result['score_seconds']} s, total {result['total_seconds']} s.",
        "",
        f"| strategy | size | raw faithful | raw vague | raw wrong | raw parrot | synthetic | parrots kept | "
        f"zs@{last} | zs+word@{last} | binding@{last} | i2t R@1 | t2i R@1 | probe gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["strategies"]:
        e = r["evals"][last]
        lines.append(
            f"| {r['strategy']} | {r['size']} | {r['raw_faithful']} | {r['raw_vague']} | {r['raw_wrong']} | "
            f"{r['raw_parrot']} | {r['synthetic']} | {r['parrot_kept_share']:.0%} | {e['zs_acc']:.3f} | "
            f"{e['zs_acc_word']:.3f} | {e['binding_acc']:.3f} | {e['i2t_r1']:.3f} | {e['t2i_r1']:.3f} | {r['probe_gap']:+.3f} |"
        )
    lines += [
        "",
        "Budgets (zero-shot acc / binding acc / i2t R@1 at each step count):",
        "",
        "| strategy | " + " | ".join(f"@{s}" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for r in result["strategies"]:
        cells = [
            f"{r['evals'][str(s)]['zs_acc']:.3f} / {r['evals'][str(s)]['binding_acc']:.3f} / "
            f"{r['evals'][str(s)]['i2t_r1']:.3f}"
            for s in steps
        ]
        lines.append(f"| {r['strategy']} | " + " | ".join(cells) + " |")
    p = result["web_clip_probe"]
    lines += [
        "",
        f"Web mini CLIP text probe: cos(A,W)={p['cos_with_word']:.3f}, cos(B,W)={p['cos_without_word']:.3f}, "
        f"gap {p['gap']:+.3f}; word top-1 {p['word_top1']:.1%} (chance {p['word_top1_chance']:.1%}); "
        f"word beats caption on {p['word_beats_caption']:.1%} of images with text.",
        "",
    ]
    return "\n".join(lines)
