"""Selection primitives and the preset registry.

Selection runs on the pool table (a pandas DataFrame of score columns, one row per sample) and never
touches images or models. A selection is a boolean mask plus a log of how many rows each step kept,
and optionally extra per-row columns (e.g. ``caption`` / ``caption_source`` from a mixing policy)
written next to the subset for ``altsift export --caption-column``.

Pool-wide semantics: every fraction / normalisation is computed over the whole pool given to select
(all shards), never per shard, following DataComp ``get_threshold`` and SIEVE ``generic_filter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from altsift.errors import ConfigError
from altsift.registry import Registry


@dataclass
class Step:
    """One condition and how many rows it kept (alone, and cumulatively)."""

    name: str
    kept_alone: int
    kept_cumulative: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Selection:
    """The result of selecting on a pool."""

    mask: np.ndarray
    steps: list[Step] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_selected(self) -> int:
        return int(self.mask.sum())


def get_threshold(scores: np.ndarray, fraction: float) -> float:
    """DataComp ``get_threshold``: ``-sort(-scores)[int(N * fraction)]`` over the whole pool.

    Keeping ``scores >= threshold`` then keeps about ``fraction`` of the pool (ties may add rows).
    Rows without a score (NaN: failed or unscored samples) are not part of N and are never kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    s = np.asarray(scores, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("inf")
    order = -np.sort(-s)
    idx = min(int(s.size * fraction), s.size - 1)
    return float(order[idx])


def top_fraction_mask(scores: np.ndarray, fraction: float) -> tuple[np.ndarray, float]:
    """Mask of ``scores >= get_threshold(scores, fraction)`` (NaN never kept) and the threshold."""
    t = get_threshold(scores, fraction)
    s = np.asarray(scores, dtype=np.float64)
    return np.nan_to_num(s, nan=-np.inf) >= t, t


def minmax(values: np.ndarray) -> np.ndarray:
    """Min-max normalise over the whole pool (SIEVE ``generic_filter``); NaN stays NaN."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = np.nanmin(v), np.nanmax(v)
    if not np.isfinite(lo) or hi == lo:
        return np.where(np.isnan(v), np.nan, 0.0)
    return (v - lo) / (hi - lo)


def fuse(df: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of min-max-normalised columns; weights must sum to 1 (SIEVE fusion)."""
    if not weights:
        raise ConfigError("--fuse needs at least one COLUMN=WEIGHT")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"fusion weights must sum to 1, got {total:g} ({weights})")
    out = np.zeros(len(df), dtype=np.float64)
    for col, w in weights.items():
        out += w * minmax(require_column(df, col))
    return out


def require_column(df: pd.DataFrame, col: str) -> np.ndarray:
    """Column as float array, or a clear error naming the available columns."""
    if col not in df.columns:
        raise ConfigError(f"column '{col}' is not in the score tables. Available: {', '.join(df.columns)}")
    s = df[col]
    if s.dtype == object:
        first = next((v for v in s if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
        if first is not None and not isinstance(first, int | float | np.number | bool):
            raise ConfigError(
                f"column '{col}' holds {type(first).__name__} values, not numbers (e.g. one score per caption); "
                "score a single text column into it, or reduce it first"
            )
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)


@dataclass
class Pool:
    """The pool as selection sees it: the score table plus lazy access to row-aligned arrays.

    ``df`` holds one row per sample (all shards, shard-file order). ``array(name)`` returns a
    row-aligned 2-D array: ``RUN_DIR/arrays/<name>/<shard>.npy`` for altsift runs, or the ``name`` key
    of the ``.npz`` beside each parquet for DataComp metadata folders (e.g. ``l14_img``).
    """

    df: pd.DataFrame
    source: Any = None  # path of the run dir / metadata folder
    array_loader: Callable[[str], np.ndarray] | None = None

    def array(self, name: str) -> np.ndarray:
        if self.array_loader is None:
            raise ConfigError(f"this pool has no arrays; '{name}' is needed")
        return self.array_loader(name)


class PresetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Preset:
    """A named selection recipe (DataComp baselines, SIEVE fusion, mixing policies, parrot filter)."""

    name: ClassVar[str]
    Options: ClassVar[type[PresetOptions]] = PresetOptions
    #: columns the preset reads, for a clear early error and for column projection
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: PresetOptions | dict[str, Any] | None = None) -> None:
        if options is None:
            options = self.Options()
        elif not isinstance(options, PresetOptions):
            options = self.Options.model_validate(dict(options))
        self.options = options

    def needed_columns(self) -> tuple[str, ...]:
        return self.needs

    def apply(self, pool: Pool) -> Selection:  # pragma: no cover - abstract
        raise NotImplementedError


PRESETS: Registry[type[Preset]] = Registry(
    "preset",
    (
        "altsift.select.datacomp",
        "altsift.select.mixing",
        "altsift.select.sieve_fusion",
        "altsift.select.parrot",
    ),
)


def register_preset(cls: type[Preset]) -> type[Preset]:
    return PRESETS.register(cls)


def available_presets() -> dict[str, type[Preset]]:
    return PRESETS.available()


def get_preset(name: str) -> type[Preset]:
    return PRESETS.get(name)


Condition = Callable[[pd.DataFrame], np.ndarray]
