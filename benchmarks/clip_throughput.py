"""CLIP signal throughput vs a bare model forward loop (random ViT-B/32-shaped CLIP, no downloads).

Pipeline: the ``clip`` signal on batches of decoded PIL images + real LAION alt-texts (tests/data;
preprocessing, text cleaning and tokenisation included).
Bare: ``model.get_image_features`` + ``get_text_features`` on the same pre-processed tensors.
Prints images/s for both and the ratio (goal >= 0.9).

    python benchmarks/clip_throughput.py --n 256 --batch 32 --precision fp32 --device cpu
    python benchmarks/clip_throughput.py --tiny --n 16      # smoke test (tiny model)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_model(path: Path, tiny: bool) -> Path:
    from helpers_clip import make_tiny_clip

    if tiny:
        return make_tiny_clip(path)
    # ViT-B/32 shapes: vision 768/12L/patch 32/224, text 512/12L, projection 512 (random weights)
    make_tiny_clip(path, image_size=224, patch_size=32, hidden=64, projection_dim=512, layers=1)
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig.from_pretrained(path)
    cfg.vision_config.update(
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    )
    cfg.text_config.update(
        dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8)
    )
    CLIPModel(cfg).save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="number of image-text pairs")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument(
        "--image-size", type=int, nargs=2, default=(640, 480), help="source W H of the test images"
    )
    ap.add_argument("--tiny", action="store_true", help="tiny model (smoke test)")
    ap.add_argument(
        "--e2e",
        action="store_true",
        help="also time the whole `altsift score` path: tar reading, JPEG decoding in threads, "
        "preprocessing, model, parquet writing",
    )
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    from altsift.models.base import autocast
    from altsift.signals.clip import ClipSignal

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (a.image_size[1], a.image_size[0], 3), dtype=np.uint8)
    images = [Image.fromarray(np.roll(base, i * 7, axis=1)) for i in range(a.n)]
    import pandas as pd

    alt = pd.read_parquet(
        Path(__file__).resolve().parents[1] / "tests" / "data" / "laion_alt_texts_200.parquet"
    )
    texts = [alt["TEXT"].astype(str).tolist()[i % len(alt)] for i in range(a.n)]  # real LAION alt-texts

    with tempfile.TemporaryDirectory() as tmp:
        path = make_model(Path(tmp) / "clip", a.tiny)
        sig = ClipSignal(
            {"model": str(path), "device": a.device, "precision": a.precision, "batch_size": a.batch}
        )
        m = sig.model
        batches = [
            {
                "status": ["ok"] * len(images[i : i + a.batch]),
                "image": images[i : i + a.batch],
                "text": texts[i : i + a.batch],
            }
            for i in range(0, a.n, a.batch)
        ]
        sig(batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            sig(b)
        t_pipe = time.perf_counter() - t0

        px = [m.preprocess(b["image"], m.device) for b in batches]
        tok = [
            m.tokenizer(b["text"], padding=True, truncation=True, max_length=77, return_tensors="pt")
            for b in batches
        ]
        tok = [{k: v.to(m.device) for k, v in t.items()} for t in tok]
        with autocast(m.device, a.precision):
            m.model.get_image_features(pixel_values=px[0])
        if m.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(m.device, a.precision):
            for p, t in zip(px, tok, strict=True):
                m.model.get_image_features(pixel_values=p)
                m.model.get_text_features(**t)
        if m.device == "cuda":
            torch.cuda.synchronize()
        t_bare = time.perf_counter() - t0
        t_e2e = run_e2e(Path(tmp), path, images, texts, a) if a.e2e else None

    print(f"device={m.device} precision={a.precision} n={a.n} batch={a.batch} tiny={a.tiny}")
    print(f"pipeline (signal incl. preprocessing): {a.n / t_pipe:.1f} pairs/s")
    print(f"bare model forward loop:               {a.n / t_bare:.1f} pairs/s")
    print(f"ratio pipeline/bare: {t_bare / t_pipe:.3f} (goal >= 0.9)")
    if t_e2e is not None:
        print(f"end-to-end `altsift score` (shards -> parquet): {a.n / t_e2e:.1f} pairs/s")
        print(f"ratio end-to-end/bare: {t_bare / t_e2e:.3f}")


def run_e2e(tmp: Path, model: Path, images: list, texts: list, a: argparse.Namespace) -> float:
    """Write the pairs as JPEG webdataset shards, then time the scorer on them (model already cached)."""
    import io
    import json
    import tarfile

    from altsift.config import build_config
    from altsift.pipeline.score import Scorer

    shards = []
    per = max(a.batch * 4, 64)
    for s0 in range(0, len(images), per):
        p = tmp / f"{s0 // per:05d}.tar"
        with tarfile.open(p, "w") as tf:
            for i in range(s0, min(s0 + per, len(images))):
                b = io.BytesIO()
                images[i].save(b, "JPEG", quality=90)
                for ext, data in (
                    ("jpg", b.getvalue()),
                    ("txt", texts[i].encode()),
                    ("json", json.dumps({"uid": f"{i:032x}"}).encode()),
                ):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        shards.append(str(p))
    cfg = build_config(
        {
            "signals": ["clip"],
            "clip": {
                "model": str(model),
                "device": a.device,
                "precision": a.precision,
                "batch_size": a.batch,
            },
            "score": {"batch_size": a.batch, "progress": False, "verify_images": False},
        }
    )
    scorer = Scorer(tmp / "run_warm", cfg.signals, cfg)
    scorer.score(shards[:1])  # loads the model, warms up
    scorer.run_dir = tmp / "run"
    t0 = time.perf_counter()
    scorer.score(shards)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
