"""Adapter interfaces (image-text encoder, captioner, text encoder, text spotter) and shared helpers.

Every adapter is built from a :class:`ModelSpec`: ``model`` is a hub id, a local directory or a file;
``backend`` picks the implementation (``auto`` infers it from the checkpoint). Adapters take
decoded PIL images / strings and return numpy arrays or Python objects, so signals stay free of
framework code. All model calls are batched; nothing returns to the host per sample.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from altsift.errors import ConfigError, ModelNotFoundError
from altsift.registry import Registry

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "fp16", "bf16"]


class ModelSpec(BaseModel):
    """Where a model comes from and how to run it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    backend: str = "auto"
    device: Device = "auto"
    precision: Precision = "fp32"
    batch_size: int = 32
    #: backend-specific settings from the signal's options (e.g. ``text_clean`` for ``hf_clip``, the image
    #: transform for HF captioners); a backend ignores keys it does not know
    options: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class ImageTextEncoder(Protocol):
    """CLIP-like model: L2-normalised image and text embeddings in a shared space."""

    image_size: int

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class TextEncoder(Protocol):
    """Sentence embedding model: L2-normalised embeddings."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class GenerationOptions:
    """Decoding options shared by captioners (HF ``generate`` semantics)."""

    do_sample: bool = False
    num_beams: int = 1
    top_k: int | None = None
    top_p: float | None = None
    temperature: float = 1.0
    min_length: int | None = None
    max_length: int | None = None
    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    repetition_penalty: float = 1.0
    num_return_sequences: int = 1
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Captioner(Protocol):
    """Image captioner. ``seeds`` gives one seed per image so sampling is reproducible per sample."""

    def caption(
        self, images: Sequence[Image.Image], gen: GenerationOptions, seeds: Sequence[int]
    ) -> list[list[str]]: ...


@dataclass
class TextBox:
    """One spotted text instance: polygon (list of (x, y)), recognised string, confidence."""

    polygon: list[tuple[float, float]]
    text: str
    score: float


@runtime_checkable
class TextSpotter(Protocol):
    """OCR / text spotting model."""

    def spot(self, images: Sequence[Image.Image]) -> list[list[TextBox]]: ...


# --------------------------------------------------------------------------- helpers


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when available, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelNotFoundError("device 'cuda' was requested but no CUDA device is visible")
    return device


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast for fp16/bf16 (fp16 only on CUDA)."""
    import torch

    with torch.inference_mode():
        if precision == "fp32":
            yield
            return
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        if device == "cpu" and dtype == torch.float16:
            dtype = torch.bfloat16  # fp16 autocast is not supported well on CPU
        with torch.autocast(device_type=device, dtype=dtype):
            yield


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def hf_cache_dir() -> str:
    """The Hugging Face hub cache directory that would be searched."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    return os.path.join(home, "hub")


def models_dir() -> Path | None:
    """``$ALTSIFT_MODELS_DIR``: a folder of local checkpoints looked up by name."""
    d = os.environ.get("ALTSIFT_MODELS_DIR")
    return Path(d) if d else None


def locate(spec_model: str) -> Path | None:
    """Return a local path for a spec if it is one (directly or under ``$ALTSIFT_MODELS_DIR``)."""
    p = Path(spec_model).expanduser()
    if p.exists():
        return p
    md = models_dir()
    if md is not None:
        for cand in (md / spec_model, md / spec_model.replace("/", "--")):
            if cand.exists():
                return cand
    return None


def model_not_found(role: str, spec: ModelSpec, detail: str = "") -> ModelNotFoundError:
    """A uniform, actionable error for a model that cannot be loaded."""
    md = models_dir()
    looked = [
        f"local path '{Path(spec.model).expanduser()}' (does not exist)",
        f"$ALTSIFT_MODELS_DIR ({md if md else 'not set'})",
        f"the Hugging Face cache ({hf_cache_dir()})",
    ]
    msg = (
        f"could not load the {role} model '{spec.model}' (backend '{spec.backend}').\n"
        f"  looked in: " + "; ".join(looked) + "\n"
        "  to provide it: (1) on a machine with internet access, download it once, e.g. "
        f"`huggingface-cli download {spec.model}` (then copy ~/.cache/huggingface here), or\n"
        "  (2) point the config at a local checkpoint directory, e.g. "
        f"`--set <signal>.model=/path/to/checkpoint`, or\n"
        "  (3) put checkpoints under a folder and set ALTSIFT_MODELS_DIR (or HF_HOME for the hub cache)."
    )
    if detail:
        msg += f"\n  underlying error: {detail}"
    return ModelNotFoundError(msg)


# Backend registries: one per role, backend name -> loader(spec) -> adapter. Adapter modules register here.
Loader = Callable[[ModelSpec], Any]
_ADAPTER_MODULES = (
    "altsift.models.hf_clip",
    "altsift.models.open_clip_adapter",
    "altsift.models.mini_backend",
    "altsift.models.sentence",
    "altsift.models.captioners",
    "altsift.models.ocr",
)
BACKENDS: dict[str, Registry[Loader]] = {
    role: Registry(f"{role} backend", _ADAPTER_MODULES)
    for role in ("image_text", "captioner", "text", "spotter")
}
_DETECTORS: dict[str, list[Callable[[ModelSpec], str | None]]] = {k: [] for k in BACKENDS}


def register_backend(role: str, backend: str, detect: Callable[[ModelSpec], bool] | None = None):
    """Decorator registering ``loader(spec)`` for ``role``/``backend``.

    ``detect(spec)`` returns True when ``backend='auto'`` should pick this backend.
    """

    def deco(fn: Loader) -> Loader:
        BACKENDS[role].register(fn, backend)
        if detect is not None:
            _DETECTORS[role].append(lambda s, b=backend: b if detect(s) else None)
        return fn

    return deco


def load_model(role: str, spec: ModelSpec, default_backend: str) -> Any:
    """Build the adapter for ``role`` from ``spec`` (``auto`` backend: detectors, else default)."""
    registry = BACKENDS[role]
    registry.load()
    backend = spec.backend
    if backend == "auto":
        backend = next((b for d in _DETECTORS[role] if (b := d(spec))), default_backend)
    try:
        loader = registry.get(backend)
    except ConfigError as e:
        raise ModelNotFoundError(f"model '{spec.model}': {e}") from None
    return loader(spec)
