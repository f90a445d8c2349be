"""Seconds per training step of the mini bench's tiny CLIP: hard negatives and channels_last vs the plain step.

Same model (``MiniConfig(kind="clip", pos_init_std=1.0)``), batch and data for every variant, measured in one
process; prints the median step time of each variant and its ratio to the plain step.

    OMP_NUM_THREADS=1 python benchmarks/mini_train_step.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from altsift.mini import world as W
from altsift.mini.negatives import NegativeSampler
from altsift.mini.networks import MiniConfig, Tokenizer, build_model, images_to_tensor


def step_seconds(
    pool: W.MiniPool, batch: int, steps: int, channels_last: bool, hard_negatives: bool
) -> float:
    torch.manual_seed(0)
    model = build_model(MiniConfig(kind="clip", pos_init_std=1.0)).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    tok = Tokenizer(model.cfg.vocab, model.cfg.max_len)
    ids = torch.as_tensor(tok.encode(pool.texts))
    imgs = torch.as_tensor(pool.images)
    sampler = NegativeSampler(pool.texts, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        idx = torch.randperm(len(pool), generator=g)[:batch]
        t0 = time.perf_counter()
        x = images_to_tensor(imgs[idx])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        neg = torch.as_tensor(tok.encode(sampler.sample(idx.numpy()))) if hard_negatives else None
        loss = model.loss(x, ids[idx], neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[3:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=15)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pool = W.make_pool(1024, W.PRESET_SHARES["noisy"], seed=0)
    base = step_seconds(pool, a.batch, a.steps, False, False)
    print(f"threads {a.threads}, batch {a.batch}, load average {os.getloadavg()[0]:.2f}")
    print(f"plain: {base:.3f} s/step (1.00x)")
    for cl, hn in ((False, True), (True, False), (True, True)):
        t = step_seconds(pool, a.batch, a.steps, cl, hn)
        print(f"channels_last={cl} hard_negatives={hn}: {t:.3f} s/step ({t / base:.2f}x)")


if __name__ == "__main__":
    main()
