"""Eval-time image transforms with torchvision semantics, without torchvision (PIL + numpy + torch).

:class:`ImageTransform` reproduces the validation transform that open_clip builds for a CLIP model
(``open_clip/transform.py`` ``image_transform(is_train=False)``), which SIEVE feeds to BLIP
(``webdataset_inference.py``: ``preprocess_val`` of ViT-B-32 at 224 px):

1. ``Resize(size, BICUBIC)`` with an int size: the short side becomes ``size``, the long side
   ``int(size * long / short)`` (torchvision ``_compute_resized_output_size``); PIL does the resampling,
   as torchvision does for PIL images. ``resize="squash"`` resizes to ``size x size`` instead (what
   transformers' BLIP image processor does);
2. ``CenterCrop(size)``: offsets ``int(round((h - size) / 2))`` (Python's round, half to even; zero
   padding first when the image is smaller). transformers' ``CLIPImageProcessor`` floors instead, so the
   two disagree by one pixel when the excess is 3 mod 4 (e.g. 227 -> 224: torchvision starts at row 2,
   transformers at row 1);
3. ``ToTensor`` + ``Normalize(mean, std)``: ``(x / 255 - mean) / std`` in float32, as a per-channel lookup
   table built with the same float32 operations, so the values are bit-identical.

Why not torchvision: no torchvision wheel matches the pinned CPU torch (docs/clip.md); and not
transformers' processors: BLIP's can only squash, CLIP's crops with other offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATIONS: dict[str, int] = {
    "nearest": int(Image.Resampling.NEAREST),
    "bilinear": int(Image.Resampling.BILINEAR),
    "bicubic": int(Image.Resampling.BICUBIC),
    "lanczos": int(Image.Resampling.LANCZOS),
    "box": int(Image.Resampling.BOX),
    "hamming": int(Image.Resampling.HAMMING),
}
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "clip": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}

Resize = Literal["squash", "shortest_side"]


def resized_size(w: int, h: int, size: int, resize: Resize) -> tuple[int, int]:
    """``(width, height)`` after the resize step (torchvision ``Resize(int)`` or a square squash)."""
    if resize == "squash":
        return size, size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def center_crop(a: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """torchvision ``center_crop`` on an HWC array (zero padding when the image is smaller)."""
    h, w = a.shape[:2]
    if ch > h or cw > w:
        top, left = ((ch - h) // 2 if ch > h else 0), ((cw - w) // 2 if cw > w else 0)
        out = np.zeros((max(h, ch), max(w, cw), *a.shape[2:]), dtype=a.dtype)
        out[top : top + h, left : left + w] = a
        a, h, w = out, out.shape[0], out.shape[1]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return a[top : top + ch, left : left + cw]


@dataclass(frozen=True)
class ImageTransform:
    """Resize (+ center crop) + normalise to a square ``size x size`` float32 batch (torchvision semantics)."""

    size: int = 224
    resize: Resize = "shortest_side"
    crop: bool = True
    resample: int = int(Image.Resampling.BICUBIC)
    mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    std: tuple[float, ...] = OPENAI_CLIP_STD

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"image size must be >= 1, got {self.size}")
        if self.resize == "shortest_side" and not self.crop:
            raise ValueError(
                "resize 'shortest_side' without a crop gives images of different shapes, which cannot be "
                "batched: use crop 'center' or resize 'squash'"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {self.mean} / {self.std}")

    @property
    def lut(self) -> np.ndarray:
        """(3, 256) float32: ``(v / 255 - mean[c]) / std[c]`` with torchvision's float32 operations."""
        v = np.arange(256, dtype=np.float32) / np.float32(255)
        m = np.asarray(self.mean, dtype=np.float32)[:, None]
        s = np.asarray(self.std, dtype=np.float32)[:, None]
        return ((v[None, :] - m) / s).astype(np.float32)

    def resize_crop(self, img: Image.Image) -> np.ndarray:
        """One image -> uint8 ``(size, size, 3)``; RGB conversion as PIL's ``convert('RGB')`` (SIEVE's decoder)."""
        if img.mode != "RGB":
            img = img.convert("RGB")
        nw, nh = resized_size(img.width, img.height, self.size, self.resize)
        if (nw, nh) != img.size:
            img = img.resize((nw, nh), resample=self.resample)
        arr = np.asarray(img)
        return center_crop(arr, self.size, self.size) if self.crop else arr

    def __call__(self, images: Sequence[Image.Image], device: Any = "cpu") -> Any:
        """PIL images -> normalised float32 tensor ``(n, 3, size, size)`` on ``device``."""
        return lut_normalize(np.stack([self.resize_crop(im) for im in images]), self.lut, device)


def lut_normalize(u8: Any, lut: np.ndarray, device: Any = "cpu") -> Any:
    """uint8 ``(n, h, w, 3)`` -> float32 tensor ``(n, 3, h, w)``: ``lut[c][value]`` per channel.

    On the CPU numpy indexes the table with the uint8 values directly (no int64 copy of the batch; ~2-3x
    faster than a torch gather here); elsewhere the uint8 batch goes to the device (4x less to copy than
    float32) and is looked up there.
    """
    import torch

    if str(device) == "cpu":
        a = np.asarray(u8)
        out = np.empty((a.shape[0], 3, a.shape[1], a.shape[2]), dtype=np.float32)
        for c in range(3):
            out[:, c] = lut[c][a[..., c]]
        return torch.from_numpy(out)
    x = torch.as_tensor(u8).to(device, non_blocking=True).permute(0, 3, 1, 2).long()
    t = torch.as_tensor(lut, device=device)
    return torch.stack([t[c][x[:, c]] for c in range(3)], dim=1)


def processor_settings(proc: Any) -> dict[str, Any]:
    """What a transformers image processor does, in :class:`ImageTransform` terms.

    BLIP / BLIP-2 processors squash to ``size`` (height x width); CLIP-style processors (GIT) resize the
    shortest edge and center crop ``crop_size``.
    """

    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    size = getattr(proc, "size", None) or {}
    crop_size = getattr(proc, "crop_size", None) or {}
    do_crop = bool(getattr(proc, "do_center_crop", False)) and bool(crop_size)
    shortest = get(size, "shortest_edge")
    if isinstance(size, int):
        shortest = size
    resize: Resize = "shortest_side" if shortest else "squash"
    side = int(get(crop_size, "height") if do_crop else (shortest or get(size, "height") or 0) or 0)
    resample = getattr(proc, "resample", Image.Resampling.BICUBIC)
    return {
        "size": side,
        "resize": resize,
        "crop": do_crop,
        "resample": int(getattr(resample, "value", resample)),
        "mean": tuple(float(x) for x in (getattr(proc, "image_mean", None) or OPENAI_CLIP_MEAN)),
        "std": tuple(float(x) for x in (getattr(proc, "image_std", None) or OPENAI_CLIP_STD)),
    }


def build_transform(options: dict[str, Any] | None, proc: Any) -> ImageTransform | None:
    """An :class:`ImageTransform` from caption image options, or None when all say ``processor``.

    ``options`` keys: ``image_size`` (int or None), ``resize`` / ``crop`` / ``interpolation`` /
    ``normalize`` (a value or ``"processor"``), ``image_mean`` / ``image_std`` (with ``normalize: custom``).
    Settings left at ``processor`` come from the checkpoint's image processor ``proc``.
    """
    o = dict(options or {})
    keys = ("resize", "crop", "interpolation", "normalize")
    if o.get("image_size") is None and all(o.get(k, "processor") == "processor" for k in keys):
        return None
    base = processor_settings(proc)
    size = int(o["image_size"]) if o.get("image_size") is not None else base["size"]
    resize = base["resize"] if o.get("resize", "processor") == "processor" else o["resize"]
    crop = base["crop"] if o.get("crop", "processor") == "processor" else o["crop"] == "center"
    interp = o.get("interpolation", "processor")
    resample = base["resample"] if interp == "processor" else INTERPOLATIONS[interp]
    norm = o.get("normalize", "processor")
    if norm == "processor":
        mean, std = base["mean"], base["std"]
    elif norm == "custom":
        mean, std = tuple(o.get("image_mean") or ()), tuple(o.get("image_std") or ())
    else:
        mean, std = NORMALIZATIONS[norm]
    return ImageTransform(size=size, resize=resize, crop=crop, resample=resample, mean=mean, std=std)
