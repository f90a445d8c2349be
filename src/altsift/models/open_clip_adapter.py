"""CLIP through ``open_clip`` (lazy: only imported when a spec asks for it).

Spec forms: ``open_clip:ARCH/PRETRAINED`` (e.g. ``open_clip:ViT-B-32/laion2b_s34b_b79k``),
``open_clip:hf-hub:ORG/NAME``, ``open_clip:ARCH:/path/to/checkpoint.pt`` or a local ``.pt``/``.bin``
file with ``backend: open_clip`` and ``ARCH`` given as ``open_clip:ARCH:PATH``.

Finding (open_clip_torch 3.3.0, timm 1.0.31, torch 2.13.0+cpu): ``import open_clip`` fails without
torchvision (``open_clip/utils.py`` imports ``torchvision.ops.misc``; its transforms use
``torchvision.transforms``), and no torchvision wheel on PyPI works with CPU torch 2.13 (the pinned
0.28.0 wheel is a CUDA build that fails with ``operator torchvision::nms does not exist``). So this
backend only works where a matching torchvision is installed (e.g. a CUDA torch install); elsewhere
it raises a :class:`ModelNotFoundError` that says so. Convert open_clip weights to the transformers
layout, or use ``backend: hf_clip`` with a hub id such as ``openai/clip-vit-base-patch32``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from altsift.models.base import ModelSpec, autocast, model_not_found, register_backend, resolve_device

PREFIX = "open_clip:"


def parse_spec(model: str) -> tuple[str, str | None]:
    """``open_clip:ARCH/PRETRAINED`` | ``open_clip:ARCH:PATH`` | ``open_clip:hf-hub:ID`` -> (arch, pretrained)."""
    m = model[len(PREFIX) :] if model.startswith(PREFIX) else model
    if m.startswith("hf-hub:"):
        return m, None
    if ":" in m:
        arch, path = m.split(":", 1)
        return arch, path
    if "/" in m:
        arch, pre = m.split("/", 1)
        return arch, pre
    return m, None


class OpenCLIP:
    """``ImageTextEncoder`` backed by open_clip (its own preprocessing and tokenizer)."""

    def __init__(self, spec: ModelSpec) -> None:
        try:
            import open_clip
            import torch
        except Exception as e:  # ModuleNotFoundError, or torchvision import/operator errors
            raise model_not_found(
                "image_text",
                spec,
                f"open_clip cannot be imported ({type(e).__name__}: {e}). open_clip needs a working torchvision, "
                "which does not exist for CPU torch 2.13 on PyPI; install a matching torch+torchvision pair, "
                "or use backend 'hf_clip' with a transformers checkpoint (see docs/clip.md)",
            ) from None
        self.device = resolve_device(spec.device)
        self.precision = spec.precision
        self.batch_size = spec.batch_size
        arch, pretrained = parse_spec(spec.model)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        except Exception as e:
            raise model_not_found("image_text", spec, f"{type(e).__name__}: {e}") from None
        self.model = model.eval().to(self.device)
        self.preprocess_one = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        self.embed_dim = int(getattr(model.visual, "output_dim", 0) or 0)
        self._torch = torch

    def _encode(self, fn: Any, x: Any) -> Any:
        with autocast(self.device, self.precision):
            e = fn(x.to(self.device))
        return self._torch.nn.functional.normalize(e.float(), dim=-1)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        outs = [np.zeros((0, self.embed_dim), np.float32)]
        for i in range(0, len(images), self.batch_size):
            x = self._torch.stack([self.preprocess_one(im) for im in images[i : i + self.batch_size]])
            outs.append(self._encode(self.model.encode_image, x).cpu().numpy())
        return np.concatenate(outs)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        outs = [np.zeros((0, self.embed_dim), np.float32)]
        for i in range(0, len(texts), self.batch_size):
            x = self.tokenizer(list(texts[i : i + self.batch_size]))
            outs.append(self._encode(self.model.encode_text, x).cpu().numpy())
        return np.concatenate(outs)


@register_backend("image_text", "open_clip", detect=lambda s: s.model.startswith(PREFIX))
def load_open_clip(spec: ModelSpec) -> OpenCLIP:
    """Backend loader for ``backend: open_clip`` or a model spec starting with ``open_clip:``."""
    return OpenCLIP(spec)
