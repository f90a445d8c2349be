"""SIEVE end-to-end throughput: captioning + masked alt-text/caption similarity (real all-MiniLM-L6-v2).

Runs the ``caption`` signal then the ``sieve`` signal over ``--n`` samples (real LAION alt-texts from
tests/data, real photos from scikit-image) in batches, and reports samples/s end to end and the time
split between captioning and text embedding.

Captioner (``--captioner``):
  - ``tiny``: a tiny random BLIP of the real architecture (tests/helpers_captioner.py), mechanics only:
    its speed says nothing about BLIP-base;
  - ``imported``: captions read with ``caption.from_file`` (no captioning model: the SIEVE cost of reusing
    captions computed elsewhere);
  - a path to a BLIP checkpoint directory (e.g. a converted BLIP-base 14M) for real numbers.

    python benchmarks/sieve_throughput.py --n 64                          # tiny, quick check
    python benchmarks/sieve_throughput.py --n 2048 --captioner imported   # embedding cost only
    python benchmarks/sieve_throughput.py --n 256 --captioner /models/blip-base-14M --precision bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def alt_texts(n: int) -> list[str]:
    import pandas as pd

    texts = (
        pd.read_parquet(ROOT / "tests" / "data" / "laion_alt_texts_200.parquet")["TEXT"].astype(str).tolist()
    )
    return [texts[i % len(texts)] for i in range(n)]


def photos(n: int):
    from PIL import Image
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "hubble_deep_field"]
    imgs = [Image.fromarray(getattr(data, k)()).convert("RGB") for k in names if hasattr(data, k)]
    return [imgs[i % len(imgs)] for i in range(n)]


def make_batches(n: int, batch_size: int, with_images: bool):
    texts = alt_texts(n)
    images = photos(n) if with_images else [None] * n
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        yield {
            "uid": [f"{i:032x}" for i in range(s, e)],
            "key": [f"{i:09d}" for i in range(s, e)],
            "text": texts[s:e],
            "status": ["ok"] * (e - s),
            "image": images[s:e],
            "json": [{}] * (e - s),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="number of samples (size flag)")
    ap.add_argument("--batch-size", type=int, default=32, help="samples per batch handed to the signals")
    ap.add_argument("--captioner", default="tiny", help="tiny | imported | path to a BLIP checkpoint dir")
    ap.add_argument("--num-captions", type=int, default=8, help="captions per image (SIEVE: 8)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--text-batch-size", type=int, default=128, help="sentences per MiniLM forward pass")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from altsift.signals.caption import CaptionSignal
    from altsift.signals.sieve import SieveSignal, sieve_caption_defaults

    tmp = Path(tempfile.mkdtemp(prefix="sieve_bench_"))
    common = {"device": args.device, "precision": args.precision, "batch_size": args.batch_size}
    if args.captioner == "imported":
        import pandas as pd

        texts = alt_texts(args.n)
        rows = [
            (f"{i:032x}", f"{texts[(i + j) % args.n][:60]} {j}")
            for i in range(args.n)
            for j in range(args.num_captions)
        ]
        pd.DataFrame(rows, columns=["uid", "caption"]).to_parquet(tmp / "captions.parquet")
        cap_opts = {"from_file": str(tmp / "captions.parquet")}
    else:
        if args.captioner == "tiny":
            sys.path.insert(0, str(ROOT / "tests"))
            from helpers_captioner import make_tiny_blip

            model = str(make_tiny_blip(tmp / "tiny_blip"))
        else:
            model = args.captioner
        cap_opts = {
            **sieve_caption_defaults(),
            **common,
            "model": model,
            "num_return_sequences": args.num_captions,
        }
    t0 = time.perf_counter()
    cap = CaptionSignal(cap_opts)
    sieve = SieveSignal(
        {"device": args.device, "precision": args.precision, "batch_size": args.text_batch_size}
    )
    load_s = time.perf_counter() - t0

    t_cap = t_sieve = 0.0
    n_caps = 0
    scores: list[float] = []
    batches = list(make_batches(args.n, args.batch_size, with_images=args.captioner != "imported"))
    for batch in batches:
        t = time.perf_counter()
        batch.update(cap(batch))
        t_cap += time.perf_counter() - t
        t = time.perf_counter()
        out = sieve(batch)
        t_sieve += time.perf_counter() - t
        n_caps += sum(len(c) for c in batch["synthetic_captions"] if c)
        scores.extend(s for s in out["sieve_score"] if s is not None)
    total = t_cap + t_sieve
    print(
        json.dumps(
            {
                "n": args.n,
                "captioner": args.captioner,
                "device": args.device,
                "precision": args.precision,
                "torch_threads": torch.get_num_threads(),
                "captions": n_caps,
                "load_s": round(load_s, 2),
                "caption_s": round(t_cap, 3),
                "sieve_embed_s": round(t_sieve, 3),
                "samples_per_s": round(args.n / total, 2),
                "caption_share": round(t_cap / total, 3),
                "sentences_per_s_embed": round((args.n + n_caps) / t_sieve, 1),
                "scored": len(scores),
            }
        )
    )


if __name__ == "__main__":
    main()
