"""Padded tokens per text in the CLIP text tower, by batching strategy, on real LAION alt-texts.

The text tower's cost grows with the padded batch (rows x longest text) plus a fixed cost per forward
pass. Strategies, for texts arriving in calls of ``--call`` rows (``score.batch_size``) and forward
passes of at most ``--batch`` rows (``clip.batch_size``):

- ``unsorted``: each batch of pairs padded to its longest text (a plain loop, HF ``padding=True``);
- ``sorted_fixed``: sorted by length within each call, fixed chunks of ``--batch`` (altsift before);
- ``buckets``: sorted within each call, length-homogeneous sub-batches (``hf_clip.length_buckets``, altsift
  now), with the CPU / CUDA forward cost;
- ``pool_sorted``: the whole pool sorted, fixed chunks (needs every text up front);
- ``per_pair``: one text per forward, no padding (Data-Juicer's ``image_text_similarity_filter``).

    python benchmarks/clip_text_padding.py                          # tiny byte-level tokenizer (tests)
    python benchmarks/clip_text_padding.py --bpe bpe_simple_vocab_16e6.txt.gz --texts laion_5k.parquet

``--bpe``: OpenAI CLIP's merges file (shipped in the open_clip_torch wheel: ``pip download
open_clip_torch==3.3.0 --no-deps`` and unzip ``open_clip/bpe_simple_vocab_16e6.txt.gz``), for real CLIP
token lengths. ``--texts``: a parquet with a TEXT / text column (default: tests/data, 200 LAION alt-texts).
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def clip_bpe_tokenizer(path: str):
    """An HF ``CLIPTokenizer`` with OpenAI's vocabulary, built from the merges file as open_clip does."""
    from transformers import CLIPTokenizer

    from helpers_clip import _bytes_to_unicode

    with gzip.open(path) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges, model_max_length=77)


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    from helpers_clip import tiny_clip_vocab

    vocab, merges = tiny_clip_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def read_texts(path: Path) -> list[str]:
    df = pd.read_parquet(path)
    col = next(c for c in df.columns if c.lower() == "text")
    return df[col].astype(str).tolist()


def padded(lengths: np.ndarray, call: int, batch: int, strategy: str, forward_cost: float) -> tuple[int, int]:
    """(padded tokens, forward passes) for all texts."""
    from altsift.models.hf_clip import length_buckets

    tokens = passes = 0
    if strategy == "per_pair":
        return int(lengths.sum()), len(lengths)
    if strategy == "pool_sorted":
        call = len(lengths)
    for s in range(0, len(lengths), call):
        part = lengths[s : s + call]
        if strategy != "unsorted":
            part = np.sort(part)
        if strategy == "buckets":
            cuts = length_buckets(part, batch, forward_cost)
        else:
            cuts = [(a, min(a + batch, len(part))) for a in range(0, len(part), batch)]
        for a, b in cuts:
            tokens += (b - a) * int(part[a:b].max())
            passes += 1
    return tokens, passes


def measure_forward_cost(threads: int, reps: int = 7) -> None:
    """Fixed cost of a text-tower forward in tokens: time (rows x 16) batches of the B/32 text tower, fit a line."""
    import tempfile

    import torch
    from transformers import CLIPModel

    from clip_throughput import make_model

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = CLIPModel.from_pretrained(make_model(Path(tmp) / "clip", tiny=False)).eval()
    eos = model.config.text_config.eos_token_id
    pts = []
    with torch.inference_mode():
        for rows in (1, 2, 4, 8, 16):
            x = torch.randint(0, 300, (rows, 16))
            x[:, -1] = eos
            model.get_text_features(input_ids=x)
            best = min(_timed(lambda x=x: model.get_text_features(input_ids=x)) for _ in range(reps))
            pts.append((rows * 16, best))
            print(f"  {rows:>3} x 16 tokens: {best * 1e3:.1f} ms")
    slope, fixed = np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)
    print(
        f"per token {slope * 1e3:.3f} ms, per forward {fixed * 1e3:.1f} ms = {fixed / slope:.0f} tokens "
        f"(torch threads {torch.get_num_threads()})"
    )


def _timed(fn) -> float:
    import time

    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=Path, default=ROOT / "tests" / "data" / "laion_alt_texts_200.parquet")
    ap.add_argument("--bpe", help="OpenAI CLIP merges file (bpe_simple_vocab_16e6.txt.gz)")
    ap.add_argument("--call", type=int, nargs="+", default=[32, 64, 256], help="rows per signal call")
    ap.add_argument("--batch", type=int, default=32, help="rows per forward pass")
    ap.add_argument(
        "--forward-cost",
        action="store_true",
        help="measure the fixed cost of one text-tower forward (B/32 shapes) in tokens instead",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads for --forward-cost (0: default)")
    a = ap.parse_args()
    if a.forward_cost:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        measure_forward_cost(a.threads)
        return

    from altsift.models.hf_clip import FORWARD_COST_TOKENS, openai_clean

    texts = [openai_clean(t) for t in read_texts(a.texts)]
    tok = clip_bpe_tokenizer(a.bpe) if a.bpe else tiny_tokenizer()
    lengths = np.array([len(x) for x in tok(texts, truncation=True, max_length=77)["input_ids"]])
    print(
        f"{len(texts)} texts from {a.texts.name}; tokenizer: {'OpenAI CLIP BPE' if a.bpe else 'tiny byte-level'}; "
        f"tokens per text incl. start/end: mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
        f"truncated at 77: {(lengths == 77).mean():.1%}"
    )
    print(f"{'call':>5} {'strategy':<22} {'padded tokens/text':>19} {'forwards/1000 texts':>20}")
    for call in a.call:
        rows = [
            ("unsorted", 0),
            ("sorted_fixed", 0),
            ("buckets cpu", FORWARD_COST_TOKENS["cpu"]),
            ("buckets cuda", FORWARD_COST_TOKENS["cuda"]),
            ("pool_sorted", 0),
            ("per_pair", 0),
        ]
        for name, cost in rows:
            t, p = padded(lengths, call, a.batch, name.split()[0], cost)
            print(f"{call:>5} {name:<22} {t / len(lengths):>19.1f} {1000 * p / len(lengths):>20.1f}")


if __name__ == "__main__":
    main()
