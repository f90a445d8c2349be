"""Preset ``sieve``: SIEVE ``generic_filter`` (fuse SIEVE and CLIP scores, keep the top fraction).

Reproduces ``baselines/apply_filter.py:load_uids_generic_filter`` of facebookresearch/SIEVE:
each column is min-max normalised over the **whole pool**, the normalised columns are summed with
weights that must sum to 1, the threshold is ``sort_desc(fused)[int(N * fraction)]`` and rows with
``fused >= threshold`` are kept. With ``weights={sieve_score: 1.0}`` it is SIEVE alone.

Rows missing a score (failed or unscored samples) are never kept and do not count in N: SIEVE's score
tables only hold samples it processed. Min-max normalisation uses the same rows that are ranked (those
with every fused column present), so normalisation and the top-fraction count agree; without missing
values this is exactly SIEVE. Degenerate input differs: a constant column normalises to 0 here (SIEVE
divides by zero and keeps nothing) and ``fraction=1`` keeps every scored row (SIEVE indexes past the end).
SIEVE fuses ViT-L/14 CLIP scores: the preset checks the ``clip_score`` provenance and warns
(``arch`` states the architecture).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from altsift.select.base import (
    Pool,
    Preset,
    PresetOptions,
    Selection,
    Step,
    fuse,
    register_preset,
    top_fraction_mask,
)
from altsift.select.datacomp import Arch
from altsift.select.provenance import DATACOMP_COLUMNS, check_arch

SIEVE_DEFAULT_WEIGHTS = {"sieve_score": 0.5, "clip_score": 0.5}


class SieveFusionOptions(PresetOptions):
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(SIEVE_DEFAULT_WEIGHTS),
        description="column -> weight of its min-max-normalised value; weights sum to 1",
    )
    fraction: float = Field(
        0.2, gt=0.0, le=1.0, description="fraction of the pool to keep (SIEVE README example: 0.2)"
    )
    score_column: str = Field("sieve_fused", description="name of the fused score written next to the subset")
    arch: Arch = Field(None, description="state the CLIP architecture of the CLIP scores (SIEVE's: l14)")

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, w: dict[str, float]) -> dict[str, float]:
        if not w:
            raise ValueError("needs at least one column")
        if abs(sum(w.values()) - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, got {sum(w.values()):g}")
        return w


@register_preset
class SieveFusion(Preset):
    """SIEVE ``generic_filter``: weighted sum of pool-wide min-max-normalised scores, top fraction kept."""

    name = "sieve"
    Options = SieveFusionOptions
    needs = tuple(SIEVE_DEFAULT_WEIGHTS)
    options: SieveFusionOptions

    def needed_columns(self) -> tuple[str, ...]:
        return tuple(self.options.weights)

    def check(self, pool: Pool) -> list[str]:
        o = self.options
        out: list[str] = []
        for col in o.weights:
            if (col.startswith("clip_score") or col in DATACOMP_COLUMNS) and pool.has(col):
                out += check_arch(pool.signals(), col, "l14", o.arch, self.name, "SIEVE's fusion")
        return out

    def apply(self, pool: Pool) -> Selection:
        o = self.options
        for col in o.weights:
            pool.numeric(col)  # clear error naming the available columns
        if len(pool) == 0:
            return Selection(mask=np.zeros(0, dtype=bool), columns={o.score_column: np.zeros(0)})
        fused = fuse(pool, o.weights)
        mask, threshold = top_fraction_mask(fused, o.fraction)
        n = int(mask.sum())
        complete = ~np.isnan(fused)
        detail = {"weights": dict(o.weights), "fraction": o.fraction, "threshold": threshold,
                  "rows_with_all_columns": int(complete.sum())}  # fmt: skip
        for col in o.weights:
            v = pool.numeric(col)[complete]
            detail[f"{col}_min"] = float(v.min()) if v.size else None
            detail[f"{col}_max"] = float(v.max()) if v.size else None
        return Selection(
            mask=mask,
            steps=[Step(f"sieve fused top {o.fraction:g}", "top_fraction", column=o.score_column, op=">=",
                        threshold=threshold, fraction=o.fraction, kept_alone=n, kept_cumulative=n, detail=detail)],
            columns={o.score_column: fused},
        )  # fmt: skip
