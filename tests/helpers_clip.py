"""Tiny randomly initialised CLIP checkpoints for tests (real architecture, no downloads).

``make_tiny_clip(path)`` writes a transformers ``CLIPModel`` + ``CLIPTokenizer`` (byte-level BPE built
from a small vocabulary) + ``CLIPImageProcessor`` config with ``save_pretrained``, i.e. the same layout
as a user's local checkpoint directory or a hub snapshot. Such models prove mechanics, never quality.
"""

from __future__ import annotations

from pathlib import Path

# a few merges so that common words become multi-character tokens (exercises BPE, not just bytes)
_MERGES = ["t h", "th e</w>", "a n", "o n", "i n", "e r", "d o", "do g</w>", "c a", "ca t</w>", "r e", "s t"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def tiny_clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary (bytes, bytes + ``</w>``, merges, then ``<|startoftext|>``/``<|endoftext|>`` last)."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    for m in _MERGES:
        merged = m.replace(" ", "")
        if merged not in tokens:
            tokens.append(merged)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ")) for m in _MERGES]


def make_tiny_clip(
    path: str | Path,
    image_size: int = 32,
    patch_size: int = 8,
    hidden: int = 32,
    projection_dim: int = 16,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Save a tiny random CLIP (model, tokenizer, image processor) under ``path`` and return it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_clip_vocab()
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch_size,
        ),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    proc = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    proc.save_pretrained(path)
    return path
