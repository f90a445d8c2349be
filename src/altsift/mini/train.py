"""CPU training loops for the mini models (same recipe for every strategy, so only the data differs).

AdamW, linear warm-up then cosine decay to the fixed step count, batches drawn epoch-wise from a seeded
permutation. No augmentation. Evaluation callbacks run at the requested steps with the model in eval mode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from altsift.mini.negatives import NegativeSampler
from altsift.mini.networks import (
    MiniConfig,
    TinyCaptioner,
    TinyCLIP,
    Tokenizer,
    build_model,
    images_to_tensor,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 200
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 20
    seed: int = 0
    eval_at: Sequence[int] = ()
    log_every: int = 25
    #: CLIP only: add one rule-made hard negative caption per training caption to the image->text softmax
    #: (NegCLIP; see ``altsift.mini.negatives``)
    hard_negatives: bool = False


@dataclass
class TrainResult:
    model: Any
    losses: list[float] = field(default_factory=list)
    evals: dict[int, dict[str, float]] = field(default_factory=dict)
    train_seconds: float = 0.0  # optimizer steps only (evaluation excluded)
    log_lines: list[str] = field(default_factory=list)


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))

    return f


def _batches(n: int, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield perm[i : i + batch]


def _fit(
    model: TinyCLIP | TinyCaptioner,
    images: np.ndarray,
    ids: np.ndarray,
    cfg: TrainConfig,
    evaluate: Callable[[Any], dict[str, float]] | None,
    name: str,
    negatives: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TrainResult:
    if len(images) == 0:
        raise ValueError("cannot train on an empty subset")
    torch.manual_seed(cfg.seed)
    imgs = torch.as_tensor(images)
    tok = torch.as_tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    res = TrainResult(model)
    batches = _batches(len(imgs), min(cfg.batch_size, len(imgs)), cfg.seed)
    eval_at = set(cfg.eval_at)
    model.train()
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        idx = next(batches)
        if negatives is None:
            loss = model.loss(images_to_tensor(imgs[idx]), tok[idx])
        else:
            neg = torch.as_tensor(negatives(idx.numpy()))
            loss = model.loss(images_to_tensor(imgs[idx]), tok[idx], neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        res.train_seconds += time.perf_counter() - t0
        res.losses.append(float(loss.detach()))
        if step % cfg.log_every == 0 or step == cfg.steps:
            line = f"{name} step {step}/{cfg.steps} loss {np.mean(res.losses[-cfg.log_every :]):.4f} t={res.train_seconds:.1f}s"
            res.log_lines.append(line)
            log.info(line)
        if evaluate is not None and step in eval_at:
            model.eval()
            res.evals[step] = evaluate(model)
            model.train()
            line = f"{name} eval @{step}: " + ", ".join(f"{k}={v:.4f}" for k, v in res.evals[step].items())
            res.log_lines.append(line)
            log.info(line)
    model.eval()
    return res


def train_clip(
    images: np.ndarray,
    texts: list[str],
    cfg: TrainConfig,
    model_cfg: MiniConfig | None = None,
    evaluate: Callable[[TinyCLIP], dict[str, float]] | None = None,
) -> TrainResult:
    """Train a fresh ``TinyCLIP`` on (images, texts) with symmetric InfoNCE (plus, with
    ``cfg.hard_negatives``, one rule-made negative caption per caption in the image->text softmax)."""
    mcfg = model_cfg or MiniConfig(kind="clip")
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    tokenizer = Tokenizer(mcfg.vocab, mcfg.max_len)
    ids = tokenizer.encode(texts)
    negatives = None
    if cfg.hard_negatives:
        sampler = NegativeSampler(list(texts), seed=cfg.seed)

        def negatives(idx: np.ndarray) -> np.ndarray:
            return tokenizer.encode(sampler.sample(idx))

    return _fit(model, images, ids, cfg, evaluate, "clip", negatives)


def train_captioner(
    images: np.ndarray,
    texts: list[str],
    cfg: TrainConfig,
    model_cfg: MiniConfig | None = None,
    evaluate: Callable[[TinyCaptioner], dict[str, float]] | None = None,
) -> TrainResult:
    """Train a fresh ``TinyCaptioner`` with teacher forcing on (images, captions)."""
    mcfg = model_cfg or MiniConfig(kind="captioner")
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    ids = Tokenizer(mcfg.vocab, mcfg.max_len).encode(texts, bos_eos=True)
    return _fit(model, images, ids, cfg, evaluate, "captioner")
