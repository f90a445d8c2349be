"""Backend ``mini``: the tiny CLIP (role ``image_text``) and captioner (role ``captioner``) of the mini world.

A checkpoint is a directory with ``altsift_mini.json`` + ``model.safetensors`` (see ``altsift.mini.networks``);
``backend: auto`` picks this backend when the spec's directory holds ``altsift_mini.json``. The shipped
checkpoints live in ``altsift/assets/mini/{web_clip,captioner}`` (``mini:web_clip`` / ``mini:captioner``
are accepted as shorthands). They are trained on the procedural world only: they prove the mechanics of
the pipeline, they know nothing about real photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from altsift.models.base import (
    GenerationOptions,
    ModelSpec,
    autocast,
    locate,
    model_not_found,
    register_backend,
    resolve_device,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "mini"
SHORTHANDS = {"mini:web_clip": ASSETS / "web_clip", "mini:captioner": ASSETS / "captioner"}


def _resolve(spec: ModelSpec) -> Path | None:
    if spec.model in SHORTHANDS:
        return SHORTHANDS[spec.model]
    return locate(spec.model)


def _kind(spec: ModelSpec) -> str | None:
    from altsift.mini.networks import is_checkpoint, read_config

    p = _resolve(spec)
    if p is None or not p.is_dir() or not is_checkpoint(p):
        return None
    try:
        return read_config(p).kind
    except Exception:
        return None


def pil_to_array(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """PIL images -> (n, size, size, 3) uint8 (RGB, bicubic resize when needed)."""
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        out[i] = np.asarray(im)
    return out


class _Base:
    def __init__(self, model, device: str, precision: str, batch_size: int) -> None:
        from altsift.mini.networks import Tokenizer

        self.model = model.to(device).eval()
        self.device = device
        self.precision = precision
        self.batch_size = max(1, batch_size)
        self.cfg = model.cfg
        self.image_size = model.cfg.image_size
        self.tokenizer = Tokenizer(model.cfg.vocab, model.cfg.max_len)

    def _images(self, arr: np.ndarray) -> torch.Tensor:
        from altsift.mini.networks import images_to_tensor

        return images_to_tensor(arr).to(self.device)


class MiniClipEncoder(_Base):
    """``ImageTextEncoder`` over a ``TinyCLIP``; ``encode_arrays`` skips PIL for in-memory uint8 batches."""

    def encode_arrays(self, images: np.ndarray) -> np.ndarray:
        chunks = []
        with autocast(self.device, self.precision):
            for i in range(0, len(images), self.batch_size):
                chunks.append(
                    self.model.encode_image(self._images(images[i : i + self.batch_size])).float().cpu()
                )
        if not chunks:
            return np.zeros((0, self.cfg.embed_dim), dtype=np.float32)
        return torch.cat(chunks).numpy()

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_arrays(pil_to_array(images, self.image_size))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        ids = torch.as_tensor(self.tokenizer.encode([t or "" for t in texts]))
        chunks = []
        with autocast(self.device, self.precision):
            for i in range(0, len(ids), self.batch_size):
                chunks.append(
                    self.model.encode_text(ids[i : i + self.batch_size].to(self.device)).float().cpu()
                )
        if not chunks:
            return np.zeros((0, self.cfg.embed_dim), dtype=np.float32)
        return torch.cat(chunks).numpy()


class MiniCaptioner(_Base):
    """``Captioner`` over a ``TinyCaptioner``: greedy or seeded top-k / nucleus sampling, batched.

    Each image's random numbers come from its own seed, so a sample's captions do not depend on the batch
    it is in. ``max_length`` / ``min_length`` count prompt tokens (HF semantics); the prompt is forced as a
    prefix and is not part of the returned text. Beam search is not implemented (``num_beams`` > 1 decodes
    greedily).
    """

    def caption(
        self, images: Sequence[Image.Image], gen: GenerationOptions, seeds: Sequence[int]
    ) -> list[list[str]]:
        return self.caption_arrays(pil_to_array(images, self.image_size), gen, seeds)

    def caption_arrays(
        self, images: np.ndarray, gen: GenerationOptions, seeds: Sequence[int]
    ) -> list[list[str]]:
        out: list[list[str]] = []
        for i in range(0, len(images), self.batch_size):
            out.extend(self._generate(images[i : i + self.batch_size], gen, seeds[i : i + self.batch_size]))
        return out

    def _lengths(self, gen: GenerationOptions, n_prompt: int) -> tuple[int, int]:
        cap = self.cfg.max_len - 1
        if gen.max_new_tokens is not None:
            max_new = gen.max_new_tokens
        elif gen.max_length is not None:
            max_new = gen.max_length - n_prompt
        else:
            max_new = cap
        if gen.min_new_tokens is not None:
            min_new = gen.min_new_tokens
        elif gen.min_length is not None:
            min_new = gen.min_length - n_prompt
        else:
            min_new = 0
        max_new = max(1, min(max_new, cap))
        return max_new, max(0, min(min_new, max_new))

    def _generate(self, images: np.ndarray, gen: GenerationOptions, seeds: Sequence[int]) -> list[list[str]]:
        tk = self.tokenizer
        r = max(1, gen.num_return_sequences)
        n = len(images)
        prompt = tk.ids(gen.prompt) if gen.prompt else []
        max_new, min_new = self._lengths(gen, len(prompt))
        sample = gen.do_sample
        if sample:  # one generator per image: reproducible per sample, independent of batching
            u = torch.stack(
                [torch.rand(r, max_new, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
            )
            u = u.reshape(n * r, max_new).to(self.device)
        with autocast(self.device, self.precision):
            ctx = self.model.context(self._images(images)).float().repeat_interleave(r, dim=0)
            prefix = torch.tensor([[tk.bos, *prompt]], device=self.device).expand(n * r, -1)
            logits, h = self.model.step(prefix, ctx, ctx.unsqueeze(0).contiguous())
            logits = logits[:, -1].float()
            toks = torch.zeros(n * r, max_new, dtype=torch.long, device=self.device)
            done = torch.zeros(n * r, dtype=torch.bool, device=self.device)
            never = torch.tensor([tk.pad, tk.bos, tk.unk], device=self.device)
            for t in range(max_new):
                logits[:, never] = -float("inf")
                if t < min_new:
                    logits[:, tk.eos] = -float("inf")
                if gen.repetition_penalty != 1.0 and t > 0:
                    prev = toks[:, :t]
                    sel = logits.gather(1, prev)
                    sel = torch.where(sel > 0, sel / gen.repetition_penalty, sel * gen.repetition_penalty)
                    logits = logits.scatter(1, prev, sel)
                nxt = self._sample(logits, gen, u[:, t]) if sample else logits.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, tk.eos), nxt)
                toks[:, t] = nxt
                done |= nxt == tk.eos
                if bool(done.all()):
                    break
                logits, h = self.model.step(nxt.unsqueeze(1), ctx, h)
                logits = logits[:, -1].float()
        rows = toks.cpu().tolist()
        texts = [tk.decode(row) for row in rows]
        return [texts[i * r : (i + 1) * r] for i in range(n)]

    @staticmethod
    def _sample(logits: torch.Tensor, gen: GenerationOptions, u: torch.Tensor) -> torch.Tensor:
        logits = logits / max(gen.temperature, 1e-6)
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        if gen.top_k:
            sorted_logits[:, gen.top_k :] = -float("inf")
        probs = sorted_logits.softmax(-1)
        if gen.top_p is not None and gen.top_p < 1.0:
            cum = probs.cumsum(-1)
            drop = (cum - probs) >= gen.top_p  # keep the smallest prefix whose mass reaches top_p
            probs = probs.masked_fill(drop, 0.0)
        cum = probs.cumsum(-1)
        pick = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(1)).clamp(max=probs.shape[1] - 1)
        return order.gather(1, pick).squeeze(1)


def _load(spec: ModelSpec, role: str, kind: str):
    from altsift.mini.networks import is_checkpoint, load_checkpoint, read_config

    p = _resolve(spec)
    if p is None or not p.is_dir() or not is_checkpoint(p):
        raise model_not_found(
            role, spec, "a mini checkpoint is a directory holding altsift_mini.json and model.safetensors"
        )
    cfg = read_config(p)
    if cfg.kind != kind:
        raise model_not_found(
            role, spec, f"{p} holds a mini '{cfg.kind}' model, the {role} role needs a '{kind}'"
        )
    try:
        model = load_checkpoint(p)
    except Exception as e:  # corrupt or incomplete checkpoint
        raise model_not_found(role, spec, f"{type(e).__name__}: {e}") from e
    return model, resolve_device(spec.device)


@register_backend("image_text", "mini", detect=lambda s: _kind(s) == "clip")
def load_mini_clip(spec: ModelSpec) -> MiniClipEncoder:
    model, device = _load(spec, "image_text", "clip")
    return MiniClipEncoder(model, device, spec.precision, spec.batch_size)


@register_backend("captioner", "mini", detect=lambda s: _kind(s) == "captioner")
def load_mini_captioner(spec: ModelSpec) -> MiniCaptioner:
    model, device = _load(spec, "captioner", "captioner")
    return MiniCaptioner(model, device, spec.precision, spec.batch_size)
