"""Signal ``aesthetic``: a LAION-style aesthetic predictor head over CLIP image embeddings.

The head is a stack of linear layers loaded from a local ``.pth`` / ``.pt`` / ``.safetensors`` state
dict: e.g. LAION ``improved-aesthetic-predictor`` (``sac+logos+ava1-l14-linearMSE.pth``: 768-1024-128-64-16-1,
keys ``layers.{0,2,4,6,7}``, dropout only, **no** activations between layers, input = L2-normalised
ViT-L/14 image embedding) or the original linear ``sa_0_4_vit_l_14_linear.pth`` (keys ``weight``, ``bias``).
Linear layers are taken in the numeric order of their key prefixes. ``activation=relu`` inserts ReLUs
for heads trained with them. The Parrot text-oriented filter keeps ``aesthetic_score > 4.5``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from altsift.models.base import (
    ModelSpec,
    l2_normalize,
    load_model,
    locate,
    model_not_found,
)
from altsift.signals.base import Batch, Columns, ModelOptions, Resources, Signal, batch_len, ok_rows, scatter
from altsift.signals.registry import register_signal


def _key_order(prefix: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", prefix))


def load_head_layers(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W (out, in), b (out,)), ...]`` from a state dict of linear layers."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        sd = {k: np.asarray(v) for k, v in load_file(str(path)).items()}
    else:
        import torch

        raw = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and "state_dict" in raw:
            raw = raw["state_dict"]
        sd = {k: v.float().numpy() for k, v in raw.items() if hasattr(v, "numpy")}
    prefixes = sorted(
        (k[: -len("weight")] for k, v in sd.items() if k.endswith("weight") and np.ndim(v) == 2),
        key=_key_order,
    )
    if not prefixes:
        raise ValueError(f"{path} holds no linear layer weights (keys: {', '.join(list(sd)[:8])})")
    layers = []
    for p in prefixes:
        w = np.asarray(sd[p + "weight"], np.float32)
        b = np.asarray(sd.get(p + "bias", np.zeros(w.shape[0])), np.float32)
        layers.append((w, b))
    for (w0, _), (w1, _) in zip(layers, layers[1:], strict=False):
        if w0.shape[0] != w1.shape[1]:
            raise ValueError(f"{path}: layer shapes do not chain ({w0.shape} then {w1.shape})")
    return layers


def apply_head(
    layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, activation: str = "none"
) -> np.ndarray:
    """Run the head on ``(n, d)`` embeddings; returns ``(n,)`` scores (first output unit)."""
    h = np.asarray(x, np.float32)
    for k, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if activation == "relu" and k < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0]


class AestheticOptions(ModelOptions):
    head: str | None = None  # path to the predictor head state dict (required)
    model: str = "openai/clip-vit-large-patch14"  # CLIP image encoder the head was trained on
    activation: Literal["none", "relu"] = "none"
    normalize: bool = True  # L2-normalise embeddings before the head (LAION predictors expect it)


@register_signal
class AestheticSignal(Signal):
    """``aesthetic_score`` from a linear/MLP head over CLIP image embeddings."""

    name = "aesthetic"
    Options = AestheticOptions
    columns = ("aesthetic_score",)
    column_types = {"aesthetic_score": pa.float64()}
    resources = Resources(cpus=1, gpus=1, memory_gb=2)
    needs_image = True

    def __init__(self, options: AestheticOptions | dict | None = None, encoder: object | None = None) -> None:
        super().__init__(options)
        o = self.options
        head = locate(o.head) if o.head else None
        if head is None or not head.is_file():
            raise model_not_found(
                "aesthetic head",
                ModelSpec(model=o.head or "<aesthetic.head not set>", backend="file"),
                "set --set aesthetic.head=/path/to/sac+logos+ava1-l14-linearMSE.pth (LAION improved-aesthetic-predictor)",
            )
        self.layers = load_head_layers(head)
        self.encoder = encoder if encoder is not None else load_model("image_text", o.spec(), "hf_clip")

    def __call__(self, batch: Batch) -> Columns:
        n = batch_len(batch)
        idx = ok_rows(batch, need_image=True)
        if not idx:
            return {"aesthetic_score": [None] * n}
        emb = np.asarray(self.encoder.encode_images([batch["image"][i] for i in idx]), np.float32)
        if emb.shape[1] != self.layers[0][0].shape[1]:
            raise ValueError(
                f"aesthetic head expects {self.layers[0][0].shape[1]}-d embeddings, the encoder gives {emb.shape[1]}"
            )
        if self.options.normalize:
            emb = l2_normalize(emb)
        scores = apply_head(self.layers, emb, self.options.activation)
        return {"aesthetic_score": scatter(n, idx, [float(s) for s in scores])}
