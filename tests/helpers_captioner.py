"""Tiny randomly initialised captioners of the real architectures, saved like a user's checkpoint.

``make_tiny_blip(path)`` / ``make_tiny_git(path)`` / ``make_tiny_blip2(path)`` write a transformers
checkpoint (model + BERT word-piece tokenizer + image processor) to ``path`` and return it. The models
are random: they prove mechanics (loading, batching, seeding, prompt handling), never caption quality.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "a",
    "picture",
    "of",
    "photo",
    "the",
    "dog",
    "cat",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "on",
    "in",
    "with",
    "and",
    "man",
    "woman",
    "car",
    "tree",
    "house",
    "sky",
    "beach",
    "water",
    "grass",
    "ball",
    "city",
    "street",
    "road",
    "food",
    "table",
    "chair",
    "white",
    "black",
    "two",
    "three",
    "playing",
    "sitting",
    "standing",
    "near",
    "under",
    "over",
    "young",
    "old",
    "field",
    "snow",
    "night",
    "light",
    "window",
    "door",
    "book",
    "phone",
    "shirt",
    "hat",
    "bird",
    "horse",
    "boat",
    "train",
    "plane",
    "flower",
    "garden",
    "mountain",
    "river",
    "park",
    "people",
    "group",
    "close",
    "view",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
PAD, UNK, CLS, SEP, MASK, DEC = range(6)
VOCAB = SPECIALS + WORDS
IMAGE_SIZE = 32


def _tokenizer(path: Path):
    from transformers import BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    tok = BertTokenizer(str(vocab), do_lower_case=True)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    return tok


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def make_tiny_blip(
    path: str | Path,
    seed: int = 0,
    image_size: int = IMAGE_SIZE,
    patch_size: int = 8,
    processor_size: int | None = None,
) -> Path:
    """Tiny ``BlipForConditionalGeneration`` (ViT ``image_size`` px, 2-layer text decoder).

    ``processor_size``: the saved ``BlipImageProcessor``'s square size (default: ``image_size``; BLIP
    checkpoints on the hub ship 384).
    """
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    path = Path(path)
    tok = _tokenizer(path)
    _seed(seed)
    cfg = BlipConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch_size,
        ),
        text_config=dict(
            vocab_size=len(VOCAB),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
            encoder_hidden_size=32,
            bos_token_id=DEC,
            eos_token_id=SEP,
            pad_token_id=PAD,
            sep_token_id=SEP,
        ),
        projection_dim=32,
    )
    model = BlipForConditionalGeneration(cfg).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    side = processor_size or image_size
    BlipImageProcessor(size={"height": side, "width": side}).save_pretrained(path)
    return path


def make_tiny_git(path: str | Path, seed: int = 0) -> Path:
    """Tiny ``GitForCausalLM`` (CLIP-ViT 32 px image encoder, 2-layer text decoder)."""
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM

    path = Path(path)
    tok = _tokenizer(path)
    _seed(seed)
    cfg = GitConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=8,
        ),
        vocab_size=len(VOCAB),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
        bos_token_id=CLS,
        eos_token_id=SEP,
        pad_token_id=PAD,
    )
    model = GitForCausalLM(cfg).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(path)
    return path


def make_tiny_blip2(path: str | Path, seed: int = 0) -> Path:
    """Tiny ``Blip2ForConditionalGeneration`` with an OPT decoder (4 query tokens)."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessor

    path = Path(path)
    tok = _tokenizer(path)
    image_token = tok.add_special_tokens(
        {"additional_special_tokens": ["<image>"]}
    ) and tok.convert_tokens_to_ids("<image>")
    _seed(seed)
    cfg = Blip2Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=8,
        ),
        qformer_config=dict(
            vocab_size=len(VOCAB) + 1,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            encoder_hidden_size=32,
            max_position_embeddings=64,
        ),
        text_config=dict(
            model_type="opt",
            vocab_size=len(VOCAB) + 1,
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=128,
            word_embed_proj_dim=32,
            bos_token_id=CLS,
            eos_token_id=SEP,
            pad_token_id=PAD,
        ),
        num_query_tokens=4,
        image_token_index=image_token,
    )
    model = Blip2ForConditionalGeneration(cfg).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(path)
    return path


def tiny_images(n: int, seed: int = 0):
    """``n`` small random RGB PIL images of varied sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(
            rng.integers(0, 255, (int(rng.integers(20, 60)), int(rng.integers(20, 60)), 3), dtype=np.uint8)
        )
        for _ in range(n)
    ]
