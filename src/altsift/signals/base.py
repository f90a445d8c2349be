"""The signal contract: a small callable class mapping a batch (dict of columns) to new columns.

A signal loads its model once in ``__init__`` and is then called on batches. The same class runs
in-process (``pipeline.score``) and as a Ray Data ``map_batches`` actor (``pipeline.ray_runner``).

Batch layout (input): ``dict[str, list]`` with at least
  - ``uid``, ``key``, ``shard``, ``text`` (str or None), ``status`` ("ok" or an error code),
  - ``image``: a decoded ``PIL.Image.Image`` in RGB at source resolution, or None when the sample
    has no decodable image,
  - ``json``: the sample's metadata dict (may be empty), ``original_width``, ``original_height``,
  - plus every column already computed for these rows (from the existing score table or from
    signals that ran earlier in the same pass, see ``requires``).
Output: ``dict[str, list | np.ndarray]`` with one entry per output column, each of batch length.
  - 1-D values become parquet columns (None = null).
  - A 2-D ``np.ndarray`` (n, d) is an *array column*: the runner writes it row-aligned to
    ``RUN_DIR/arrays/<column>/<shard>.npy`` (clip-retrieval style) instead of parquet.
Signals must not drop or reorder rows. Rows they cannot score get None.

Declarations (read before any model is loaded, from options alone):
  - ``column_types``: the arrow type of every parquet column the signal can write; tables are written
    with exactly these types, so a run directory opens as one dataset even when a shard's column is all
    null. ``output_schema()`` narrows it to the columns the options ask for.
  - ``resources``: what one running copy needs (CPU threads, GPUs, memory); the Ray runner sizes one actor
    pool per signal from it, so GPU signals get GPUs and CPU signals do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from altsift.errors import ConfigError

Batch = Mapping[str, Sequence[Any]]
Columns = dict[str, Any]


class SignalOptions(BaseModel):
    """Base class for a signal's options; unknown keys are rejected with their name."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    batch_size: int = Field(32, ge=1, description="rows per call of the signal (per model forward)")


class ModelOptions(SignalOptions):
    """Options shared by every signal that runs a model: where it comes from and how it runs."""

    model: str = Field(
        ..., description="hub id, local checkpoint dir or file, or a name under $ALTSIFT_MODELS_DIR"
    )
    backend: str = Field("auto", description="adapter implementation; auto infers it from the checkpoint")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when visible, else cpu")
    precision: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="fp16/bf16 run under autocast")

    def spec(self) -> Any:
        """The :class:`altsift.models.base.ModelSpec` for ``load_model``."""
        from altsift.models.base import ModelSpec

        return ModelSpec(
            model=self.model,
            backend=self.backend,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
        )


@dataclass(frozen=True)
class Resources:
    """What one running copy of a signal needs. ``gpus`` applies only where GPUs exist and device != cpu."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.5


class Signal:
    """Base class. Subclasses set ``name``, ``Options``, ``columns`` and implement ``__call__``."""

    name: ClassVar[str]
    Options: ClassVar[type[SignalOptions]] = SignalOptions
    #: output columns written to parquet (the runner checks completeness by these names)
    columns: ClassVar[tuple[str, ...]] = ()
    #: output array columns (2-D outputs written to .npy); optional: may depend on options
    array_columns: ClassVar[tuple[str, ...]] = ()
    #: other signals whose columns this one reads (the runner schedules them first)
    requires: ClassVar[tuple[str, ...]] = ()
    #: whether the signal reads the decoded ``image`` column (if none does, images are not decoded)
    needs_image: ClassVar[bool] = True
    #: defaults this signal brings for the options of a signal it requires, merged *under* the user's own
    #: options of that signal (e.g. ``sieve`` asks ``caption`` for SIEVE's 8 nucleus samples)
    requirement_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: arrow type of every parquet column this signal can write (see the module docstring)
    column_types: ClassVar[dict[str, pa.DataType]] = {}
    #: what one copy needs; model signals ask for a GPU
    resources: ClassVar[Resources] = Resources()

    def __init__(self, options: SignalOptions | Mapping[str, Any] | None = None) -> None:
        if options is None:
            options = self.Options()
        elif not isinstance(options, SignalOptions):
            options = self.Options.model_validate(dict(options))
        self.options = options

    def output_columns(self) -> tuple[str, ...]:
        """Parquet columns this instance writes (default: ``columns``, else ``column_types``' keys)."""
        return self.columns or tuple(self.column_types)

    def required_signals(self) -> tuple[str, ...]:
        """Signals this instance reads from (override when options change the set)."""
        return self.requires

    def input_fingerprint(self) -> Any:
        """JSON-able identity of inputs outside the shards (e.g. a caption file); a change recomputes."""
        return None

    def output_array_columns(self) -> tuple[str, ...]:
        """Array columns this instance writes (override when options change the set)."""
        return self.array_columns

    def output_schema(self, upstream: Mapping[str, pa.DataType] | None = None) -> dict[str, pa.DataType]:
        """Arrow type of each column in :meth:`output_columns`. ``upstream``: types of columns already
        planned (earlier signals), for signals whose output type follows an input column's type."""
        missing = [c for c in self.output_columns() if c not in self.column_types]
        if missing:
            raise ConfigError(
                f"signal '{self.name}' does not declare the type of column(s) {missing} (column_types)"
            )
        return {c: self.column_types[c] for c in self.output_columns()}

    def required_resources(self) -> Resources:
        """:attr:`resources`, with no GPU when the options pin the signal to the CPU."""
        if getattr(self.options, "device", None) == "cpu" and self.resources.gpus:
            return replace(self.resources, gpus=0.0)
        return self.resources

    def __call__(self, batch: Batch) -> Columns:  # pragma: no cover - abstract
        raise NotImplementedError


def batch_len(batch: Batch) -> int:
    """Number of rows in a batch."""
    for v in batch.values():
        return len(v)
    return 0


def ok_rows(batch: Batch, need_image: bool = False) -> list[int]:
    """Indices of rows whose status is ok (and that have an image, if asked)."""
    status = batch["status"]
    images = batch.get("image")
    return [
        i
        for i in range(len(status))
        if status[i] == "ok" and (not need_image or (images is not None and images[i] is not None))
    ]


def scatter(n: int, idx: Sequence[int], values: Sequence[Any], fill: Any = None) -> list[Any]:
    """Place ``values`` at positions ``idx`` of a length-``n`` list filled with ``fill``."""
    out = [fill] * n
    for i, v in zip(idx, values, strict=True):
        out[i] = v
    return out


def scatter_rows(n: int, idx: Sequence[int], values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Row version of :func:`scatter` for a 2-D array (missing rows are ``fill``)."""
    out = np.full((n, values.shape[1]) if values.ndim == 2 else (n,), fill, dtype=values.dtype)
    if len(idx):
        out[np.asarray(idx)] = values
    return out
