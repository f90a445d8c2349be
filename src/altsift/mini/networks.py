"""Tiny CLIP and captioner for the mini world, plus the checkpoint format the ``mini`` backend loads.

A checkpoint directory holds ``altsift_mini.json`` (architecture config, vocabulary, provenance) and
``model.safetensors`` (weights stored as fp16 to stay small, restored to fp32 on load).

- ``TinyCLIP``: CNN image tower (5x5 stride-2 stem, 4 conv blocks, global pool) and a 2-layer pre-norm
  transformer text tower with masked mean pooling, both projected to ``embed_dim``; learnable temperature.
- ``TinyCaptioner``: the same CNN trunk pooled to a 2x3 grid (keeps left/right order) -> context vector,
  which is the GRU's initial state and is concatenated to every input embedding.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from altsift.mini.world import IMAGE_SIZE, split_words, vocabulary

CONFIG_NAME = "altsift_mini.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "altsift_mini/1"
MEAN, STD = 0.5, 0.25


@dataclass
class MiniConfig:
    """Architecture of a mini model (``kind`` = ``clip`` or ``captioner``)."""

    kind: str = "clip"
    image_size: int = IMAGE_SIZE
    width: int = 32
    embed_dim: int = 128
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_ff: int = 256
    max_len: int = 16
    gru_hidden: int = 256
    #: std of the text tower's initial position embeddings. The token embeddings start at std 1 (PyTorch's
    #: default), so at 0.02 (the shipped checkpoints) word order is almost invisible after the first
    #: LayerNorm and the text tower stays a bag of words; 1.0 puts order on the same scale (docs/mini.md)
    pos_init_std: float = 0.02
    vocab: list[str] = field(default_factory=vocabulary)


class Tokenizer:
    """Word-level tokenizer over the mini vocabulary (unknown words -> ``<unk>``, digits split)."""

    def __init__(self, vocab: list[str], max_len: int) -> None:
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len
        self.pad, self.bos, self.eos, self.unk = (self.index[t] for t in ("<pad>", "<bos>", "<eos>", "<unk>"))

    def ids(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk) for w in split_words(text or "")]

    def encode(self, texts: list[str], bos_eos: bool = False) -> np.ndarray:
        """(n, max_len) int64 array, ``<pad>``-filled; truncates; optional ``<bos> ... <eos>``."""
        out = np.full((len(texts), self.max_len), self.pad, dtype=np.int64)
        for i, t in enumerate(texts):
            ids = self.ids(t)
            if bos_eos:
                ids = [self.bos, *ids[: self.max_len - 2], self.eos]
            out[i, : len(ids[: self.max_len])] = ids[: self.max_len]
        return out

    def decode(self, ids: list[int]) -> str:
        words = []
        for i in ids:
            if i == self.eos:
                break
            if i in (self.pad, self.bos):
                continue
            words.append(self.vocab[i])
        return " ".join(words)


def images_to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> normalised float (n, 3, H, W)."""
    x = torch.as_tensor(images)
    return (x.permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD


def _block(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ImageTrunk(nn.Module):
    """5x5 stride-2 stem, then conv 2w -> pool -> conv 4w -> pool -> conv 4w; returns a feature map."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _block(3, w, 5, 2),
            _block(w, 2 * w),
            nn.MaxPool2d(2),
            _block(2 * w, 4 * w),
            nn.MaxPool2d(2),
            _block(4 * w, 4 * w),
        )
        self.out_channels = 4 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TextTower(nn.Module):
    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(len(cfg.vocab), cfg.text_width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.text_width) * cfg.pos_init_std)
        layer = nn.TransformerEncoderLayer(
            cfg.text_width, cfg.text_heads, cfg.text_ff, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Linear(cfg.text_width, cfg.embed_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0
        empty = ~mask.any(1)
        mask = mask.clone()
        mask[empty, 0] = True  # an empty text attends to one pad slot instead of nothing
        h = self.encoder(self.tok(ids) + self.pos[: ids.shape[1]], src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).float()
        pooled = (self.norm(h) * m).sum(1) / m.sum(1)
        return self.proj(pooled)


class TinyCLIP(nn.Module):
    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = ImageTrunk(cfg.width)
        self.img_proj = nn.Linear(self.trunk.out_channels, cfg.embed_dim)
        self.text = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.img_proj(self.trunk(x).mean((2, 3))), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(ids), dim=-1)

    def loss(self, x: torch.Tensor, ids: torch.Tensor, neg_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE over the batch. ``neg_ids`` (hard negative captions, NegCLIP) are extra text
        columns of the image->text softmax only; the text->image direction is unchanged."""
        n = len(x)
        img = self.encode_image(x)
        all_ids = ids if neg_ids is None or len(neg_ids) == 0 else torch.cat([ids, neg_ids])
        txt = self.encode_text(all_ids)
        logits = self.logit_scale.clamp(max=math.log(100)).exp() * img @ txt.t()
        target = torch.arange(n)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :n].t(), target)) / 2


class TinyCaptioner(nn.Module):
    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = ImageTrunk(cfg.width)
        self.ctx = nn.Linear(self.trunk.out_channels * 6, cfg.gru_hidden)
        self.emb = nn.Embedding(len(cfg.vocab), cfg.text_width, padding_idx=0)
        self.gru = nn.GRU(cfg.text_width + cfg.gru_hidden, cfg.gru_hidden, batch_first=True)
        self.out = nn.Linear(cfg.gru_hidden, len(cfg.vocab))

    def context(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.ctx(F.adaptive_avg_pool2d(self.trunk(x), (2, 3)).flatten(1)))

    def step(
        self, tokens: torch.Tensor, ctx: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One or more decoding steps: tokens (n, t) -> logits (n, t, V), new hidden state."""
        inp = torch.cat([self.emb(tokens), ctx.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)
        out, h = self.gru(inp, h)
        return self.out(out), h

    def loss(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy; ``ids`` = ``<bos> words <eos> <pad>...``."""
        ctx = self.context(x)
        logits, _ = self.step(ids[:, :-1], ctx, ctx.unsqueeze(0).contiguous())
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=0)


def build_model(cfg: MiniConfig) -> TinyCLIP | TinyCaptioner:
    if cfg.kind == "clip":
        return TinyCLIP(cfg)
    if cfg.kind == "captioner":
        return TinyCaptioner(cfg)
    raise ValueError(f"unknown mini model kind '{cfg.kind}' (expected 'clip' or 'captioner')")


def save_checkpoint(
    model: TinyCLIP | TinyCaptioner, path: str | Path, info: dict[str, Any] | None = None
) -> Path:
    """Write ``altsift_mini.json`` + fp16 ``model.safetensors`` into directory ``path``."""
    from safetensors.torch import save_file

    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(d / WEIGHTS_NAME))
    meta = {"format": FORMAT, **asdict(model.cfg), "info": info or {}}
    (d / CONFIG_NAME).write_text(json.dumps(meta, indent=1))
    return d


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


def read_config(path: str | Path) -> MiniConfig:
    meta = json.loads((Path(path) / CONFIG_NAME).read_text())
    fields = set(MiniConfig.__dataclass_fields__)
    return MiniConfig(**{k: v for k, v in meta.items() if k in fields})


def load_checkpoint(path: str | Path) -> TinyCLIP | TinyCaptioner:
    """Load a checkpoint directory into an fp32 model in eval mode."""
    from safetensors.torch import load_file

    cfg = read_config(path)
    model = build_model(cfg)
    state = load_file(str(Path(path) / WEIGHTS_NAME))
    ref = model.state_dict()
    model.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()})
    return model.eval()
