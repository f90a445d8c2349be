"""Captioner adapters (role ``captioner``): HF BLIP, BLIP-2 and GIT, plus a lazy open_clip CoCa stub.

Backends (``ModelSpec.backend``): ``blip`` (``BlipForConditionalGeneration``), ``blip2``
(``Blip2ForConditionalGeneration``), ``git`` (``GitForCausalLM``) and ``open_clip_coca``. With
``backend: auto`` the checkpoint's ``config.json`` ``model_type`` decides (``blip``, ``blip-2``, ``git``);
for a hub id that is not cached the name decides (``blip2`` / ``blip`` / ``git`` / ``coca``).

Per-sample reproducible sampling. HF ``generate`` samples every row from one global generator, so a
caption would depend on which other images share its batch. Here sampling runs inside
:class:`SeededSampler`, the last logits processor: it applies temperature / top-k / top-p itself (HF's own
warpers) and draws each row's token by inverse-CDF from a counter-based hash of (sample seed, sequence
index, decoding step). It returns a one-hot distribution, so HF's own multinomial draw (run with every HF
warper disabled) can only pick that token. Everything stays batched on the device; the cost is one
sort-free cumsum + searchsorted per step (see benchmarks/caption_throughput.py).
Greedy and beam search need no seeds; rows never interact (one shared prompt, so no padding).

Image input: the checkpoint's image processor, unless the ``caption`` signal's image options
(``ModelSpec.options['image']``: size, resize, crop, interpolation, normalisation) ask for another transform;
then :class:`altsift.models.image_transform.ImageTransform` prepares the pixels (SIEVE's: open_clip's
ViT-B-32 eval transform at 224 px), with interpolated position embeddings when the size differs from the
vision tower's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from altsift.errors import ConfigError
from altsift.models.base import (
    GenerationOptions,
    ModelSpec,
    autocast,
    locate,
    model_not_found,
    register_backend,
    resolve_device,
)
from altsift.models.image_transform import build_transform

log = logging.getLogger(__name__)
ROLE = "captioner"
_MODEL_TYPES = {"blip": "blip", "blip-2": "blip2", "blip_2": "blip2", "git": "git", "coca": "open_clip_coca"}
_MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- backend detection


@lru_cache(maxsize=64)
def _detect_backend(model: str) -> str | None:
    """Backend implied by a checkpoint: its config.json ``model_type``, else the hub id's name."""
    path = locate(model)
    if path is not None and (path / "config.json").is_file():
        try:
            mt = json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, ValueError):
            mt = None
        return _MODEL_TYPES.get(str(mt)) if mt else None
    name = model.lower().rsplit("/", 1)[-1]
    if "coca" in model.lower():
        return "open_clip_coca"
    if "blip2" in name or "blip-2" in name:
        return "blip2"
    if "blip" in name:
        return "blip"
    if name.startswith("git-") or name.startswith("git_"):
        return "git"
    return None


def seed_for(uid: str, global_seed: int) -> int:
    """Default per-sample seed: 63 bits of blake2b(``global_seed:uid``)."""
    h = hashlib.blake2b(f"{global_seed}:{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


def row_key(seed: int, seq: int) -> int:
    """32-bit stream key of return-sequence ``seq`` of a sample with ``seed``."""
    h = hashlib.blake2b(f"{seed}:{seq}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "little")


# --------------------------------------------------------------------------- seeded sampling


def _mul32(x: Any, c: int) -> Any:
    """``(x * c) mod 2**32`` for int64 tensors holding uint32 values, without int64 overflow."""
    lo = (x * (c & 0xFFFF)) & _MASK32
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _MASK32


def hash32(x: Any) -> Any:
    """Wellons' ``lowbias32`` integer hash, vectorised over an int64 tensor of uint32 values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class SeededSampler:
    """Logits processor drawing each row's next token from its own counter-based random stream.

    ``keys`` (one 32-bit key per generate row, rows in HF's ``repeat_interleave`` order) must be set
    before each ``generate`` call. The draw for a row depends only on its key, the decoding step and
    its own (warped) distribution, never on the other rows.
    """

    def __init__(
        self, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
    ) -> None:
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.warpers: list[Any] = []
        if temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(temperature))
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k=top_k))
        if top_p is not None and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=top_p))
        self.keys: Any = None

    def uniforms(self, step: int, device: Any) -> Any:
        """One U[0, 1) float64 per row for decoding step ``step``."""
        import torch

        k = self.keys.to(device)
        x = hash32(k ^ hash32(torch.full_like(k, (step * 0x9E3779B9) & _MASK32)))
        x = hash32(x ^ k)
        return (x.to(torch.float64) + 0.5) / 2.0**32

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.keys is None or self.keys.shape[0] != scores.shape[0]:
            raise RuntimeError("SeededSampler.keys must hold one key per generate row")
        scores = scores.float()
        for w in self.warpers:
            scores = w(input_ids, scores)
        probs = torch.softmax(scores, dim=-1).double()
        cdf = probs.cumsum(-1)
        u = self.uniforms(int(input_ids.shape[1]), scores.device) * cdf[:, -1]
        tok = torch.searchsorted(cdf, u[:, None], right=True).clamp_(max=scores.shape[-1] - 1)
        # guard against a float edge picking a zero-probability tail token
        bad = probs.gather(1, tok) <= 0
        tok = torch.where(bad, probs.argmax(-1, keepdim=True), tok)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tok, 0.0)


# --------------------------------------------------------------------------- HF adapters


class HFCaptioner:
    """BLIP / BLIP-2 / GIT captioner from a transformers checkpoint (local dir or hub id)."""

    def __init__(self, spec: ModelSpec, kind: str) -> None:
        import transformers as tf

        self.spec, self.kind = spec, kind
        self.device = resolve_device(spec.device)
        cls = {
            "blip": tf.BlipForConditionalGeneration,
            "blip2": tf.Blip2ForConditionalGeneration,
            "git": tf.GitForCausalLM,
        }[kind]
        path = locate(spec.model)
        if path is None and spec.model.startswith(("/", ".", "~")):
            raise model_not_found(ROLE, spec, "no such directory")
        src = str(path) if path is not None else spec.model
        try:
            self.model = cls.from_pretrained(src).to(self.device).eval()
            self.tokenizer = tf.AutoTokenizer.from_pretrained(src)
            self.image_processor = tf.AutoImageProcessor.from_pretrained(src)
        except (OSError, ValueError) as e:
            raise model_not_found(ROLE, spec, f"{type(e).__name__}: {e}") from None
        try:
            self.transform = build_transform(spec.options.get("image"), self.image_processor)
        except ValueError as e:
            raise ConfigError(f"caption image options: {e}") from None
        self.image_size = self.transform.size if self.transform else _image_size(self.image_processor)
        # the vision tower's trained input size; another size needs interpolated position embeddings,
        # as BLIP's own loader does (BLIP/models/vit.py interpolate_pos_embed) when SIEVE builds it at 224
        vcfg = getattr(self.model.config, "vision_config", None)
        trained = int(getattr(vcfg, "image_size", 0) or 0)
        self.interpolate = bool(self.transform and trained and self.transform.size != trained)
        if self.interpolate:
            log.info(
                "captioner %s: %d px input, vision tower trained at %d px: position embeddings are "
                "interpolated",
                spec.model,
                self.transform.size,
                trained,
            )

    # -- prompt handling: the decoder input ids every row starts from (same for all rows)
    def _prompt_ids(self, prompt: str | None) -> list[int]:
        tok, cfg = self.tokenizer, self.model.config
        if self.kind == "blip":
            # BLIP generate replaces the first id by BOS and drops the last ([SEP]) itself
            ids = (
                tok(prompt).input_ids
                if prompt
                else [cfg.text_config.bos_token_id, cfg.text_config.eos_token_id]
            )
            return list(ids)
        if self.kind == "git":
            return [tok.cls_token_id] + (tok(prompt, add_special_tokens=False).input_ids if prompt else [])
        # blip2: query-token placeholders, then the LM's BOS (+ prompt)
        image = [cfg.image_token_index] * cfg.num_query_tokens
        text = tok(prompt).input_ids if prompt else [cfg.text_config.bos_token_id]
        return image + list(text)

    def _generate_kwargs(self, gen: GenerationOptions) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "num_beams": gen.num_beams,
            "num_return_sequences": gen.num_return_sequences,
            "repetition_penalty": gen.repetition_penalty,
        }
        for k in ("min_length", "max_length", "max_new_tokens", "min_new_tokens"):
            if getattr(gen, k) is not None:
                kw[k] = getattr(gen, k)
        if gen.do_sample:
            # HF's warpers off: SeededSampler does temperature / top-k / top-p and the draw
            kw.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        else:
            kw["do_sample"] = False
        if self.kind == "blip2" or self.kind == "git":
            tok = self.tokenizer
            kw.setdefault("pad_token_id", tok.pad_token_id)
            if self.kind == "git":
                kw.setdefault("eos_token_id", tok.sep_token_id)
        kw.update(gen.extra)
        return kw

    #: the ``caption`` signal's image options (size, resize, crop, interpolation, normalisation) apply
    supports_image_options = True

    def pixel_values(self, images: Sequence[Image.Image]) -> Any:
        """The model input: the configured :class:`ImageTransform`, else the checkpoint's image processor."""
        if self.transform is not None:
            px = self.transform(images, self.device)
        else:
            px = self.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")[
                "pixel_values"
            ]
        return px.to(self.device, dtype=self.model.dtype)

    def caption(
        self, images: Sequence[Image.Image], gen: GenerationOptions, seeds: Sequence[int]
    ) -> list[list[str]]:
        """``num_return_sequences`` captions per image; sampling is seeded per image by ``seeds``."""
        _validate(gen)
        if len(seeds) != len(images):
            raise ValueError(f"need one seed per image, got {len(seeds)} seeds for {len(images)} images")
        out: list[list[str]] = []
        bs = max(1, self.spec.batch_size)
        for s in range(0, len(images), bs):
            out.extend(self._caption_batch(images[s : s + bs], gen, seeds[s : s + bs]))
        return out

    def _caption_batch(
        self, images: Sequence[Image.Image], gen: GenerationOptions, seeds: Sequence[int]
    ) -> list[list[str]]:
        import torch
        from transformers import LogitsProcessorList

        if not images:
            return []
        n, b = gen.num_return_sequences, len(images)
        pixel_values = self.pixel_values(images)
        prompt = self._prompt_ids(gen.prompt)
        input_ids = torch.tensor([prompt] * b, dtype=torch.long, device=self.device)
        kw = self._generate_kwargs(gen)
        if gen.do_sample:
            sampler = SeededSampler(gen.temperature, gen.top_k, gen.top_p)
            sampler.keys = torch.tensor(
                [row_key(int(sd), j) for sd in seeds for j in range(n)], dtype=torch.long, device=self.device
            )
            kw["logits_processor"] = LogitsProcessorList([sampler])
        if self.interpolate:
            kw["interpolate_pos_encoding"] = True
        with autocast(self.device, self.spec.precision):
            seqs = self.model.generate(pixel_values=pixel_values, input_ids=input_ids, **kw)
        # BLIP feeds the prompt without its trailing [SEP]; every backend echoes the prompt first
        n_prompt = len(prompt) - 1 if self.kind == "blip" else len(prompt)
        texts = self.tokenizer.batch_decode(seqs[:, n_prompt:].cpu(), skip_special_tokens=True)
        texts = [_strip_prompt(t, gen.prompt) for t in texts]
        return [texts[i * n : (i + 1) * n] for i in range(b)]


def _image_size(proc: Any) -> int:
    size = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or {}
    if isinstance(size, dict):
        return int(size.get("height") or size.get("shortest_edge") or 0)
    return int(getattr(size, "height", None) or getattr(size, "shortest_edge", None) or 0)


def _strip_prompt(text: str, prompt: str | None) -> str:
    """Remove an echoed prompt (case-insensitive, whole-word prefix) and surrounding whitespace."""
    text = text.strip()
    if prompt:
        p = prompt.strip().lower()
        if p and text.lower().startswith(p) and (len(text) == len(p) or not text[len(p)].isalnum()):
            text = text[len(p) :].strip()
    return text


def _validate(gen: GenerationOptions) -> None:
    if gen.num_return_sequences < 1:
        raise ValueError("num_return_sequences must be >= 1")
    if gen.do_sample and gen.num_beams > 1:
        raise ValueError(
            "beam search with sampling (beam-sample) is not supported: set num_beams=1 or do_sample=false"
        )
    if not gen.do_sample and gen.num_return_sequences > gen.num_beams:
        raise ValueError(
            f"num_return_sequences={gen.num_return_sequences} needs do_sample=true or num_beams >= "
            f"{gen.num_return_sequences} (greedy decoding returns one caption per image)"
        )


# --------------------------------------------------------------------------- open_clip CoCa


class CocaCaptioner:
    """open_clip CoCa (``model`` = ``<arch>/<pretrained>``, e.g. ``coca_ViT-L-14/mscoco_finetuned_laion2B-s13B-b90k``).

    open_clip imports torchvision, which has no CPU wheel matching torch 2.13 (docs/captions.md), so this
    backend fails with a clear error where torchvision is missing. CoCa's own sampler uses the global
    torch RNG: sampled captions are seeded per batch (first seed), not per sample.
    """

    def __init__(self, spec: ModelSpec) -> None:
        try:
            import open_clip
        except Exception as e:  # ImportError, or torchvision failing inside open_clip
            raise model_not_found(
                ROLE,
                spec,
                f"the open_clip CoCa backend needs `open_clip_torch` and a working `torchvision` matching your "
                f"torch build ({type(e).__name__}: {e}). Install both, or use an HF captioner "
                "(backend blip / blip2 / git).",
            ) from None
        arch, _, pretrained = spec.model.partition("/")
        self.spec, self.device = spec, resolve_device(spec.device)
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained or None
            )
        except Exception as e:
            raise model_not_found(ROLE, spec, f"{type(e).__name__}: {e}") from None
        self.model = self.model.to(self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self._decode = open_clip.decode

    def caption(
        self, images: Sequence[Image.Image], gen: GenerationOptions, seeds: Sequence[int]
    ) -> list[list[str]]:
        import torch

        _validate(gen)
        if gen.num_return_sequences != 1:
            raise ValueError("the open_clip CoCa backend returns one caption per image")
        out: list[list[str]] = []
        bs = max(1, self.spec.batch_size)
        for s in range(0, len(images), bs):
            chunk = images[s : s + bs]
            if seeds[s : s + bs]:
                torch.manual_seed(int(seeds[s]))
            x = torch.stack([self.preprocess(im.convert("RGB")) for im in chunk]).to(self.device)
            kind = "top_p" if gen.do_sample and gen.top_p else "top_k" if gen.do_sample else "beam_search"
            with autocast(self.device, self.spec.precision):
                tokens = self.model.generate(
                    x,
                    generation_type=kind,
                    seq_len=gen.max_new_tokens or gen.max_length or 30,
                    temperature=gen.temperature,
                    top_p=gen.top_p or 0.1,
                    top_k=gen.top_k or 1,
                    repetition_penalty=gen.repetition_penalty,
                    num_beams=max(gen.num_beams, 1),
                    min_seq_len=gen.min_new_tokens or gen.min_length or 5,
                )
            for t in tokens:
                txt = self._decode(t).split("<end_of_text>")[0].replace("<start_of_text>", "")
                out.append([_strip_prompt(txt, gen.prompt)])
        return out


# --------------------------------------------------------------------------- registration


def _detector(backend: str):
    return lambda spec: _detect_backend(spec.model) == backend


@register_backend(ROLE, "blip", detect=_detector("blip"))
def load_blip(spec: ModelSpec) -> HFCaptioner:
    return HFCaptioner(spec, "blip")


@register_backend(ROLE, "blip2", detect=_detector("blip2"))
def load_blip2(spec: ModelSpec) -> HFCaptioner:
    return HFCaptioner(spec, "blip2")


@register_backend(ROLE, "git", detect=_detector("git"))
def load_git(spec: ModelSpec) -> HFCaptioner:
    return HFCaptioner(spec, "git")


@register_backend(ROLE, "open_clip_coca", detect=_detector("open_clip_coca"))
def load_coca(spec: ModelSpec) -> CocaCaptioner:
    return CocaCaptioner(spec)


def checkpoint_kind(path: str | Path) -> str | None:
    """Backend name for a checkpoint path or hub id (``None`` if unknown)."""
    return _detect_backend(str(path))


__all__ = [
    "HFCaptioner",
    "CocaCaptioner",
    "SeededSampler",
    "seed_for",
    "row_key",
    "checkpoint_kind",
    "hash32",
]
