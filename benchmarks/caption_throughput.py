"""Captions/s of the ``caption`` signal against bare HF ``generate`` on the same model and batch.

The model is randomly initialised (speed only): ``--size base`` is BLIP-base shaped (ViT-B/16 at 384 px,
12-layer BERT decoder, ~224M parameters), ``--size tiny`` a 32 px toy for a smoke run. Both paths decode
exactly ``--new-tokens`` tokens (min = max), so the difference is altsift's overhead: image preprocessing,
per-sample seeded sampling (``SeededSampler``) and decoding to strings.

    python benchmarks/caption_throughput.py --size tiny --images 8            # smoke (seconds)
    python benchmarks/caption_throughput.py --size base --images 16 --batch-size 8 --sequences 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SIZES = {
    "tiny": dict(image=32, patch=8, v_hidden=32, v_layers=1, t_hidden=32, t_layers=2, heads=2, vocab=512),
    "base": dict(
        image=384, patch=16, v_hidden=768, v_layers=12, t_hidden=768, t_layers=12, heads=12, vocab=30524
    ),
}


def build_blip(path: Path, size: str) -> Path:
    """Save a random BLIP checkpoint (model, word-piece tokenizer, image processor) to ``path``."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    s = SIZES[size]
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    words = ["a", "picture", "of"] + [f"w{i}" for i in range(s["vocab"] - len(specials) - 3)]
    (path / "vocab.txt").write_text("\n".join(specials + words) + "\n")
    tok = BertTokenizer(str(path / "vocab.txt"))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    torch.manual_seed(0)
    cfg = BlipConfig(
        vision_config=dict(
            hidden_size=s["v_hidden"], intermediate_size=4 * s["v_hidden"], num_hidden_layers=s["v_layers"],
            num_attention_heads=s["heads"], image_size=s["image"], patch_size=s["patch"],
        ),
        text_config=dict(
            vocab_size=s["vocab"], hidden_size=s["t_hidden"], intermediate_size=4 * s["t_hidden"],
            num_hidden_layers=s["t_layers"], num_attention_heads=s["heads"], encoder_hidden_size=s["v_hidden"],
            bos_token_id=5, eos_token_id=3, pad_token_id=0, sep_token_id=3,
        ),
    )  # fmt: skip
    BlipForConditionalGeneration(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    BlipImageProcessor(size={"height": s["image"], "width": s["image"]}).save_pretrained(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="base")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sequences", type=int, default=1, help="num_return_sequences (sampling)")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from altsift.models.base import autocast
    from altsift.signals.caption import CaptionSignal

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) for _ in range(args.images)
    ]
    uids = [f"{i:032x}" for i in range(args.images)]
    batch = {"uid": uids, "key": uids, "status": ["ok"] * args.images, "image": images}
    with tempfile.TemporaryDirectory() as d:
        ckpt = build_blip(Path(d) / "blip", args.size)
        sig = CaptionSignal(
            dict(
                model=str(ckpt), device=args.device, precision=args.precision, batch_size=args.batch_size,
                do_sample=True, top_k=None, top_p=args.top_p, num_return_sequences=args.sequences,
                min_new_tokens=args.new_tokens, max_new_tokens=args.new_tokens, prompt="a picture of",
            )
        )  # fmt: skip
        cap = sig.captioner
        dev = cap.device
        pix = [
            cap.image_processor(images=images[s : s + args.batch_size], return_tensors="pt")[
                "pixel_values"
            ].to(dev)
            for s in range(0, args.images, args.batch_size)
        ]
        ids = torch.tensor([cap._prompt_ids("a picture of")], device=dev)

        def bare() -> None:
            for p in pix:
                with autocast(dev, args.precision):
                    cap.model.generate(
                        pixel_values=p, input_ids=ids.repeat(p.shape[0], 1), do_sample=True, top_k=0,
                        top_p=args.top_p, num_return_sequences=args.sequences,
                        min_new_tokens=args.new_tokens, max_new_tokens=args.new_tokens,
                    )  # fmt: skip
            if dev == "cuda":
                torch.cuda.synchronize()

        def signal() -> None:
            sig(batch)
            if dev == "cuda":
                torch.cuda.synchronize()

        n_caps = args.images * args.sequences
        res: dict[str, float] = {}
        for name, fn in (("bare_generate", bare), ("signal", signal)):
            fn()  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            res[f"{name}_captions_per_s"] = n_caps / float(np.median(times))
        res["signal_over_bare"] = res["signal_captions_per_s"] / res["bare_generate_captions_per_s"]
        print(
            json.dumps(
                {"args": vars(args), "device": dev, "threads": torch.get_num_threads(), **res}, indent=2
            )
        )


if __name__ == "__main__":
    main()
