"""CLIP image-text encoder through Hugging Face transformers (``CLIPModel`` and compatible models).

Preprocessing is an exact PIL/numpy re-implementation of transformers' ``CLIPImageProcessor``
(PIL backend, a.k.a. the "slow" processor; the fast one needs torchvision): resize the shortest side
with bicubic PIL resampling to ``size.shortest_edge`` (long side ``int(size * long / short)``), center
crop to ``crop_size`` (zero-padding if the image is smaller), rescale by ``1/255`` and normalise with
the checkpoint's mean/std. The float step is a per-channel lookup table computed with the reference's
dtype sequence (float64 rescale -> float32 -> float32 normalise), so pixel values are bit-identical
(``tests/test_clip_model.py`` checks it). Resizing runs in a thread pool (PIL releases the GIL) and the
next chunk is prepared while the model runs on the current one.

The settings come from the checkpoint's image processor as transformers reads it
(``preprocessor_config.json``, or the ``image_processor`` section of a ``processor_config.json`` written by
``CLIPProcessor.save_pretrained``); a checkpoint with neither is a :class:`ModelNotFoundError`.

Texts are cleaned as OpenAI CLIP's tokenizer does (``text_clean: openai``: ftfy, HTML entities, whitespace,
lower case; :func:`openai_clean`), tokenised with the checkpoint's tokenizer, truncated to the model's
context (``max_position_embeddings``, 77 for OpenAI CLIP, end-of-text kept as the last token) and padded
to the longest text of each forward pass: CLIP's causal mask and end-of-text pooling make padding
irrelevant, so this equals OpenAI's pad-to-77 at a fraction of the cost. The texts of a call are sorted by
length and split into length-homogeneous sub-batches (:func:`length_buckets`); outputs are returned in
input order.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from altsift.errors import ConfigError
from altsift.models.base import ModelSpec, autocast, locate, model_not_found, register_backend, resolve_device

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_MODEL = "openai/clip-vit-base-patch32"


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB conversion as transformers ``convert_to_rgb`` (transparency composited onto white)."""
    if img.mode == "RGB":
        return img
    if "A" in img.getbands() or img.info.get("transparency") is not None:
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, img).convert("RGB")
    return img.convert("RGB")


class CLIPPreprocessor:
    """Exact, torchvision-free equivalent of ``CLIPImageProcessor`` (PIL backend).

    ``size``: shortest edge (int) or ``(height, width)`` for a plain resize; ``crop``: ``(h, w)`` or None.
    ``__call__`` returns a float32 tensor ``(n, 3, h, w)``; :meth:`to_uint8` gives the resized/cropped
    uint8 batch ``(n, h, w, 3)`` so the float conversion can run on the model's device.
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = 224,
        crop: tuple[int, int] | None = (224, 224),
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        resample: int = Image.Resampling.BICUBIC,
        rescale_factor: float | None = 1 / 255,
        normalize: bool = True,
        threads: int = 0,
    ) -> None:
        self.size, self.crop, self.resample = size, crop, int(resample)
        self.threads = threads or min(8, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        v = np.arange(256, dtype=np.float64)
        if rescale_factor is not None:
            v = v * rescale_factor  # reference: astype(float64) * scale, then astype(float32)
        lut = np.repeat(v.astype(np.float32)[None], 3, axis=0)
        if normalize:
            m = np.asarray(mean, dtype=np.float32)[:, None]
            s = np.asarray(std, dtype=np.float32)[:, None]
            lut = (lut - m) / s
        self.lut = lut.astype(np.float32)  # (3, 256)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], image_size: int, threads: int = 0) -> CLIPPreprocessor:
        """Build from a ``preprocessor_config.json`` dict (missing keys: CLIP defaults at ``image_size``)."""
        size: int | tuple[int, int] | None = image_size
        s = cfg.get("size", {"shortest_edge": image_size})
        if cfg.get("do_resize", True) is False:
            size = None
        elif isinstance(s, int):
            size = s
        elif s.get("shortest_edge"):
            size = int(s["shortest_edge"])
        elif s.get("height") and s.get("width"):
            size = (int(s["height"]), int(s["width"]))
        c = cfg.get("crop_size", {"height": image_size, "width": image_size})
        if isinstance(c, int):
            c = {"height": c, "width": c}
        crop = (int(c["height"]), int(c["width"])) if cfg.get("do_center_crop", True) else None
        return cls(
            size=size,
            crop=crop,
            mean=cfg.get("image_mean", OPENAI_CLIP_MEAN),
            std=cfg.get("image_std", OPENAI_CLIP_STD),
            resample=cfg.get("resample", Image.Resampling.BICUBIC),
            rescale_factor=cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else None,
            normalize=cfg.get("do_normalize", True),
            threads=threads,
        )

    def resize_crop(self, img: Image.Image) -> np.ndarray:
        """One image -> uint8 ``(h, w, 3)`` after RGB conversion, resize and center crop."""
        img = _to_rgb(img)
        if self.size is not None:
            w, h = img.size
            if isinstance(self.size, tuple):
                nh, nw = self.size
            else:
                short, long = (w, h) if w <= h else (h, w)
                ns, nl = self.size, int(self.size * long / short)
                nw, nh = (ns, nl) if w <= h else (nl, ns)
            if (nw, nh) != (w, h):
                img = img.resize((nw, nh), resample=self.resample)
        arr = np.asarray(img)
        return arr if self.crop is None else _center_crop(arr, *self.crop)

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="clip-prep")
        return self._pool

    def to_uint8(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Resize/crop a batch in parallel threads -> uint8 ``(n, h, w, 3)`` (all crops share a shape)."""
        arrs = (
            list(self.pool.map(self.resize_crop, images))
            if len(images) > 1
            else [self.resize_crop(images[0])]
        )
        return np.stack(arrs)

    def normalize_uint8(self, batch: Any, device: str = "cpu") -> Any:
        """uint8 ``(n, h, w, 3)`` (numpy or tensor) -> normalised float32 tensor ``(n, 3, h, w)`` on ``device``."""
        from altsift.models.image_transform import lut_normalize

        return lut_normalize(batch, self.lut, device)

    def __call__(self, images: Sequence[Image.Image], device: str = "cpu") -> Any:
        return self.normalize_uint8(self.to_uint8(images), device)

    def submit(self, images: Sequence[Image.Image], device: str = "cpu") -> Future:
        """Start the preprocessing in the background (to overlap it with the model).

        For the CPU the future holds the normalised float tensor (the table lookup runs in the background
        thread too); for another device the uint8 batch, normalised there by :meth:`finish`.
        """
        if str(device) == "cpu":
            return _BG.submit(lambda: self.normalize_uint8(self.to_uint8(images), "cpu"))
        return _BG.submit(self.to_uint8, images)

    def finish(self, prepared: Any, device: str = "cpu") -> Any:
        """What :meth:`submit` prepared -> the model's pixel tensor on ``device``."""
        import torch

        return prepared if isinstance(prepared, torch.Tensor) else self.normalize_uint8(prepared, device)


_BG = ThreadPoolExecutor(1, thread_name_prefix="clip-prep-bg")


def _center_crop(a: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """Reference ``center_crop`` on HWC uint8 (zero-pads when the image is smaller than the crop)."""
    h, w = a.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0:
        return a[top : top + ch, left : left + cw]
    nh, nw = max(ch, h), max(cw, w)
    out = np.zeros((nh, nw, a.shape[2]), dtype=a.dtype)
    tp, lp = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
    out[tp : tp + h, lp : lp + w] = a
    top, left = top + tp, left + lp
    return out[max(0, top) : min(nh, top + ch), max(0, left) : min(nw, left + cw)]


def basic_clean(text: str) -> str:
    """open_clip ``basic_clean``: ftfy's ``fix_text``, HTML entities unescaped twice, ends stripped."""
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def openai_clean(text: str) -> str:
    """The text OpenAI CLIP's tokenizer encodes (open_clip ``SimpleTokenizer``, ``clean='lower'``).

    ftfy + ``html.unescape`` twice + whitespace runs to one space + lower case. transformers'
    ``CLIPTokenizer`` only does NFC, whitespace and lower case, so without this "&amp;" is encoded as
    "&", "amp", ";" and mojibake ("cafÃ©") stays as it is, and such texts get other scores than OpenAI's
    tokenizer (and DataComp's ``clip_*_similarity_score`` metadata) give them.
    """
    return " ".join(basic_clean(text).split()).lower()


TEXT_CLEAN: dict[str, Any] = {"openai": openai_clean, "none": lambda t: t}


def _embeds(out: Any) -> Any:
    """transformers 5.x returns an output object from ``get_*_features``; 4.x a tensor."""
    return out if not hasattr(out, "pooler_output") else out.pooler_output


class HFCLIP:
    """``ImageTextEncoder`` for transformers CLIP-style checkpoints (hub id or local directory)."""

    def __init__(self, spec: ModelSpec, threads: int = 0) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.spec = spec
        self.device = resolve_device(spec.device)
        src = locate(spec.model)
        name = str(src) if src is not None else spec.model
        try:
            self.model = _from_pretrained(AutoModel, name).eval().to(self.device)
            self.tokenizer = _from_pretrained(AutoTokenizer, name)
        except (OSError, ValueError) as e:
            raise model_not_found("image_text", spec, f"{type(e).__name__}: {e}") from None
        if not (hasattr(self.model, "get_image_features") and hasattr(self.model, "get_text_features")):
            raise model_not_found(
                "image_text", spec, f"{type(self.model).__name__} is not an image-text model"
            )
        cfg = self.model.config
        self.image_size = int(cfg.vision_config.image_size)
        self.context_length = int(getattr(cfg.text_config, "max_position_embeddings", 77))
        self.embed_dim = int(getattr(cfg, "projection_dim", 0) or 0)
        self.preprocess = CLIPPreprocessor.from_config(
            _preprocessor_config(name, spec), self.image_size, threads
        )
        self.text_clean = spec.options.get("text_clean", "openai")
        if self.text_clean not in TEXT_CLEAN:
            raise ConfigError(f"text_clean must be one of {sorted(TEXT_CLEAN)}, got {self.text_clean!r}")
        self.batch_size = spec.batch_size
        self.precision = spec.precision
        self.model.requires_grad_(False)  # no global grad switch: calls run under inference_mode

    # ------------------------------------------------------------------ images
    def encode_pixels(self, pixel_values: Any) -> Any:
        """Normalised float pixel tensor (on device) -> L2-normalised embedding tensor (float32, device)."""
        import torch.nn.functional as F

        with autocast(self.device, self.precision):
            emb = _embeds(self.model.get_image_features(pixel_values=pixel_values))
        return F.normalize(emb.float(), dim=-1)

    def encode_images(self, images: Sequence[Image.Image], first: Future | None = None) -> np.ndarray:
        """PIL images -> L2-normalised float32 ``(n, d)``; preprocessing of chunk k+1 overlaps chunk k.

        ``first``: the already submitted preprocessing of the first chunk (see :meth:`encode_pairs`).
        """
        if not images:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        bs = self.batch_size
        chunks = [images[i : i + bs] for i in range(0, len(images), bs)]
        outs = []
        nxt = first if first is not None else self.preprocess.submit(chunks[0], self.device)
        for k in range(len(chunks)):
            prepared = nxt.result()
            if k + 1 < len(chunks):
                nxt = self.preprocess.submit(chunks[k + 1], self.device)
            px = self.preprocess.finish(prepared, self.device)
            outs.append(self.encode_pixels(px))
        import torch

        return torch.cat(outs).cpu().numpy()

    # ------------------------------------------------------------------ texts
    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids truncated to the context length (special tokens included, end-of-text kept).

        With ``text_clean: openai`` each text is cleaned first as open_clip's tokenizer does (:func:`openai_clean`).
        """
        clean = TEXT_CLEAN[self.text_clean]
        enc = self.tokenizer(
            [clean(t) for t in texts],
            truncation=True,
            max_length=self.context_length,
            padding=False,
            add_special_tokens=True,
        )
        return enc["input_ids"]

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Strings -> L2-normalised float32 ``(n, d)``, in input order.

        All texts of the call are tokenised, sorted by token length and encoded in length-homogeneous
        sub-batches (:func:`length_buckets`): each forward pass pads only to its own longest text.
        """
        return (
            self._encode_ids(self.tokenize(texts))
            if len(texts)
            else np.zeros((0, self.embed_dim), dtype=np.float32)
        )

    def _encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        out = None
        self.last_padded_tokens = 0
        for a, b in length_buckets(
            lengths[order], self.batch_size, FORWARD_COST_TOKENS.get(self.device, 512)
        ):
            sel = order[a:b]
            width = int(lengths[sel[-1]])
            x = np.full((b - a, width), pad, dtype=np.int64)
            mask = np.zeros((b - a, width), dtype=np.int64)
            for r, j in enumerate(sel):
                x[r, : lengths[j]] = ids[j]
                mask[r, : lengths[j]] = 1
            self.last_padded_tokens += x.size
            enc = {
                "input_ids": torch.from_numpy(x).to(self.device, non_blocking=True),
                "attention_mask": torch.from_numpy(mask).to(self.device, non_blocking=True),
            }
            with autocast(self.device, self.precision):
                emb = F.normalize(_embeds(self.model.get_text_features(**enc)).float(), dim=-1)
            if out is None:
                out = torch.empty((len(ids), emb.shape[1]), dtype=torch.float32, device=emb.device)
            out[torch.as_tensor(sel, device=emb.device)] = emb  # scatter back to input order
        return out.cpu().numpy()

    # ------------------------------------------------------------------ pairs
    def encode_pairs(
        self, images: Sequence[Image.Image], texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both embeddings of a call; the first image chunk is resized in threads while the text tower runs."""
        if not images:
            return self.encode_images(images), self.encode_texts(texts)
        first = self.preprocess.submit(images[: self.batch_size], self.device)
        txt = self.encode_texts(texts)
        return self.encode_images(images, first), txt


#: fixed cost of one forward pass of the text tower, in padded tokens (the length bucketing's trade-off
#: between padding and the number of forward passes). CPU: `benchmarks/clip_text_padding.py --forward-cost`
#: on the B/32 text tower measured 22 tokens with 1 torch thread (per-token time halves with 2 threads,
#: the per-call overhead does not: ~45); CUDA: an estimate (kernel launches dominate small batches), not
#: measured here.
FORWARD_COST_TOKENS = {"cpu": 32, "cuda": 4096}


def length_buckets(lengths: np.ndarray, max_rows: int, forward_cost: float) -> list[tuple[int, int]]:
    """Split ascending ``lengths`` into consecutive sub-batches ``[a, b)`` of at most ``max_rows`` rows.

    Minimises ``sum(rows * longest) + forward_cost * n_batches`` (padded tokens plus a fixed cost per
    forward pass) by dynamic programming over the sorted lengths: short texts share a forward pass
    instead of being padded to the few long ones. ``forward_cost`` 0 encodes equal lengths together;
    a very large one gives fixed chunks of ``max_rows``.
    """
    n = len(lengths)
    if n == 0:
        return []
    best = np.zeros(n + 1)
    back = np.zeros(n + 1, dtype=np.int64)
    lv = np.asarray(lengths, dtype=np.float64)
    for i in range(1, n + 1):
        j = np.arange(max(0, i - max_rows), i)
        cost = best[j] + (i - j) * lv[i - 1] + forward_cost
        k = int(np.argmin(cost))
        best[i], back[i] = cost[k], j[k]
    cuts, i = [], n
    while i > 0:
        cuts.append((int(back[i]), i))
        i = int(back[i])
    return cuts[::-1]


def _from_pretrained(cls: Any, name: str) -> Any:
    """Load from a local dir / the HF cache first; go online only when that fails and hub access is allowed."""
    try:
        return cls.from_pretrained(name, local_files_only=True)
    except OSError:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or Path(name).exists():
            raise
        return cls.from_pretrained(name)


#: where transformers keeps a checkpoint's image preprocessing (the second nests it under "image_processor")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def _preprocessor_config(name: str, spec: ModelSpec | None = None) -> dict[str, Any]:
    """The checkpoint's image processor settings as a dict, read by transformers itself.

    ``AutoImageProcessor`` finds them in ``preprocessor_config.json`` or, for checkpoints saved by a
    current ``CLIPProcessor.save_pretrained``, nested in ``processor_config.json``. A checkpoint with
    neither raises :class:`ModelNotFoundError` naming both files: guessing CLIP defaults would
    preprocess a checkpoint with other resize / crop / normalisation settings wrongly.
    """
    from transformers import AutoImageProcessor

    try:
        proc = _from_pretrained(AutoImageProcessor, name)
    except (OSError, ValueError, KeyError) as e:
        raise model_not_found(
            "image_text",
            spec or ModelSpec(model=name),
            f"no image processor config: looked for {' and '.join(PROCESSOR_FILES)} (image_processor "
            f"section) in '{name}' ({type(e).__name__}: {str(e)[:300]})",
        ) from None
    cfg = proc.to_dict()
    if not cfg.get("image_mean") or not cfg.get("image_std"):
        raise ConfigError(f"the image processor of '{name}' has no image_mean / image_std")
    return cfg


def _is_hf_dir(spec: ModelSpec) -> bool:
    p = locate(spec.model)
    return p is not None and p.is_dir() and (p / "config.json").exists()


@register_backend("image_text", "hf_clip", detect=_is_hf_dir)
def load_hf_clip(spec: ModelSpec) -> HFCLIP:
    """Backend loader: ``backend: hf_clip`` (default for hub ids and local transformers directories)."""
    return HFCLIP(spec)
