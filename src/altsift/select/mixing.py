"""Raw / synthetic caption mixing policies (Nguyen et al. 2023, "Improving Multimodal Datasets with
Image Captioning") as select presets.

Every preset returns ``Selection.columns`` ``caption`` (the text to train on) and ``caption_source``
(``'raw'`` / ``'synthetic'``), pool-length arrays (None on rows not selected), for
``altsift export --caption-column caption``. Thresholds are pool-wide (DataComp ``get_threshold``).
Columns default to raw ``clip_score`` / ``text`` and synthetic ``clip_score_synthetic`` /
``synthetic_caption``. A missing score (NaN) never passes a threshold; a row without a synthetic
caption is never given one.

The policies follow the paper's strategy names as reported by a secondary source (papers.md 4.1);
the exact semantics are UNVERIFIED -- docs/captions.md says which choices are ours.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from altsift.errors import ConfigError
from altsift.select.base import (
    Pool,
    Preset,
    PresetOptions,
    Selection,
    Step,
    get_threshold,
    register_preset,
    require_column,
)

RAW, SYN = "raw", "synthetic"


class MixOptions(PresetOptions):
    raw_score: str = Field("clip_score", description="CLIP score of (image, raw caption)")
    raw_text: str = Field("text", description="raw caption column")
    synthetic_score: str = Field(
        "clip_score_synthetic", description="CLIP score of (image, synthetic caption)"
    )
    synthetic_text: str = Field("synthetic_caption", description="synthetic caption column")


def _fraction(default: float, what: str):
    return Field(default, gt=0.0, le=1.0, description=what)


class _MixPreset(Preset):
    """Shared column access and output building."""

    Options: ClassVar[type[PresetOptions]] = MixOptions
    uses_raw: ClassVar[bool] = True
    uses_synthetic: ClassVar[bool] = True

    def needed_columns(self) -> tuple[str, ...]:
        o: MixOptions = self.options  # type: ignore[assignment]
        cols: list[str] = []
        if self.uses_raw:
            cols += [o.raw_score, o.raw_text]
        if self.uses_synthetic:
            cols += [o.synthetic_score, o.synthetic_text]
        return tuple(cols)

    def _load(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        o: MixOptions = self.options  # type: ignore[assignment]
        out: dict[str, np.ndarray] = {}
        if self.uses_raw:
            out["raw_score"] = require_column(df, o.raw_score)
            out["raw_text"] = _texts(df, o.raw_text)
        if self.uses_synthetic:
            syn_text = _texts(df, o.synthetic_text)
            has = np.array([isinstance(t, str) and t.strip() != "" for t in syn_text], dtype=bool)
            # a synthetic score without a synthetic caption is meaningless: treat as missing
            out["syn_score"] = np.where(has, require_column(df, o.synthetic_score), np.nan)
            out["syn_text"] = syn_text
            out["has_syn"] = has
        return out

    @staticmethod
    def _select(
        raw_keep: np.ndarray, syn_keep: np.ndarray, c: dict[str, np.ndarray], steps: list[Step]
    ) -> Selection:
        """Rows kept with their raw caption (``raw_keep``) or their synthetic caption (``syn_keep``)."""
        if (raw_keep & syn_keep).any():
            raise AssertionError("a row cannot take both captions")  # pragma: no cover - internal invariant
        n = len(raw_keep)
        caption = np.full(n, None, dtype=object)
        source = np.full(n, None, dtype=object)
        if raw_keep.any():
            caption[raw_keep] = c["raw_text"][raw_keep]
            source[raw_keep] = RAW
        if syn_keep.any():
            caption[syn_keep] = c["syn_text"][syn_keep]
            source[syn_keep] = SYN
        mask = raw_keep | syn_keep
        steps.append(
            Step(
                "kept",
                int(mask.sum()),
                int(mask.sum()),
                {"raw": int(raw_keep.sum()), "synthetic": int(syn_keep.sum())},
            )
        )
        return Selection(mask=mask, steps=steps, columns={"caption": caption, "caption_source": source})


def _texts(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        raise ConfigError(
            f"column '{col}' is not in the score tables. Available: {', '.join(map(str, df.columns))}"
        )
    return df[col].to_numpy(dtype=object)


def _ge(scores: np.ndarray, t: float) -> np.ndarray:
    return np.nan_to_num(scores, nan=-np.inf) >= t


# --------------------------------------------------------------------------- presets


class TopOptions(MixOptions):
    fraction: float = _fraction(0.3, "keep this top fraction of the pool (pool-wide threshold)")


@register_preset
class MixRawTop(_MixPreset):
    """Paper: "Raw (top x%)": the top ``fraction`` by raw CLIP score, raw captions (default 30%)."""

    name: ClassVar[str] = "mix_raw_top"
    Options = TopOptions
    uses_synthetic = False

    def apply(self, pool: Pool) -> Selection:
        o: TopOptions = self.options  # type: ignore[assignment]
        c = self._load(pool.df)
        t = get_threshold(c["raw_score"], o.fraction)
        keep = _ge(c["raw_score"], t)
        steps = [
            Step(f"top {o.fraction:g} of {o.raw_score}", int(keep.sum()), int(keep.sum()), {"threshold": t})
        ]
        return self._select(keep, np.zeros_like(keep), c, steps)


class SynTopOptions(MixOptions):
    fraction: float = _fraction(0.5, "keep this top fraction of the pool by synthetic CLIP score")


@register_preset
class MixSyntheticTop(_MixPreset):
    """Paper: "BLIP2 (top x%)": the top ``fraction`` by synthetic-caption CLIP score, synthetic captions.

    Default 50% (the "BLIP2 top 50%" row of the secondary source's table).
    """

    name: ClassVar[str] = "mix_synthetic_top"
    Options = SynTopOptions
    uses_raw = False

    def apply(self, pool: Pool) -> Selection:
        o: SynTopOptions = self.options  # type: ignore[assignment]
        c = self._load(pool.df)
        t = get_threshold(c["syn_score"], o.fraction)
        keep = _ge(c["syn_score"], t) & c["has_syn"]
        steps = [
            Step(
                f"top {o.fraction:g} of {o.synthetic_score}",
                int(keep.sum()),
                int(keep.sum()),
                {"threshold": t},
            )
        ]
        return self._select(np.zeros_like(keep), keep, c, steps)


class SplitOptions(MixOptions):
    raw_fraction: float = _fraction(0.3, "top fraction by raw CLIP score that keeps its raw caption")


@register_preset
class MixRawTopSyntheticRest(_MixPreset):
    """Paper: "Raw (top 30%) + BLIP2 (70%)": raw captions for the top 30% by raw CLIP score, the
    synthetic caption for every other row (rows without a synthetic caption are dropped)."""

    name: ClassVar[str] = "mix_raw_top_synthetic_rest"
    Options = SplitOptions
    filtered: ClassVar[bool] = False

    def apply(self, pool: Pool) -> Selection:
        o: SplitOptions = self.options  # type: ignore[assignment]
        c = self._load(pool.df)
        t = get_threshold(c["raw_score"], o.raw_fraction)
        raw_keep = _ge(c["raw_score"], t)
        steps = [
            Step(
                f"top {o.raw_fraction:g} of {o.raw_score}: raw",
                int(raw_keep.sum()),
                int(raw_keep.sum()),
                {"threshold": t},
            )
        ]
        rest = ~raw_keep & c["has_syn"]
        if self.filtered:
            rest &= _ge(c["syn_score"], t)
            name = f"rest with {o.synthetic_score} >= the same threshold: synthetic"
        else:
            name = "rest with a synthetic caption: synthetic"
        steps.append(Step(name, int(rest.sum()), int((raw_keep | rest).sum()), {"threshold": t}))
        return self._select(raw_keep, rest, c, steps)


@register_preset
class MixRawTopSyntheticRestFiltered(MixRawTopSyntheticRest):
    """Paper: "Raw (top 30%) + BLIP2 (70%, filtered)": as ``mix_raw_top_synthetic_rest`` but a replaced
    pair is kept only if its synthetic CLIP score passes the same (raw top-30%) threshold."""

    name: ClassVar[str] = "mix_raw_top_synthetic_rest_filtered"
    filtered = True


class ReplaceOptions(MixOptions):
    threshold: float | None = Field(None, description="absolute raw CLIP-score threshold t")
    fraction: float = _fraction(0.3, "when threshold is unset: t = the pool-wide top-fraction threshold")
    filter_synthetic: bool = Field(False, description="keep a replaced pair only if its synthetic score >= t")


@register_preset
class MixReplaceBelow(_MixPreset):
    """Replace the raw caption by the synthetic one where raw CLIP score < ``t``; keep everything else.

    ``t`` is absolute (``threshold``) or the pool-wide top-``fraction`` threshold. With
    ``filter_synthetic`` a replaced pair must also score >= t with its synthetic caption.
    """

    name: ClassVar[str] = "mix_replace_below"
    Options = ReplaceOptions

    def apply(self, pool: Pool) -> Selection:
        o: ReplaceOptions = self.options  # type: ignore[assignment]
        c = self._load(pool.df)
        t = o.threshold if o.threshold is not None else get_threshold(c["raw_score"], o.fraction)
        raw_keep = _ge(c["raw_score"], t)
        repl = ~raw_keep & c["has_syn"]
        if o.filter_synthetic:
            repl &= _ge(c["syn_score"], t)
        steps = [
            Step(f"{o.raw_score} >= {t:g}: raw", int(raw_keep.sum()), int(raw_keep.sum()), {"threshold": t}),
            Step(
                "below: synthetic",
                int(repl.sum()),
                int((raw_keep | repl).sum()),
                {"filter_synthetic": o.filter_synthetic},
            ),
        ]
        return self._select(raw_keep, repl, c, steps)


class BestOfOptions(MixOptions):
    fraction: float | None = _fraction(
        0.3, "keep this top fraction by the better score (unless threshold is set)"
    )
    threshold: float | None = Field(
        None, description="absolute threshold on the better score (overrides fraction)"
    )


@register_preset
class MixBestOf(_MixPreset):
    """Per sample keep whichever caption scores higher (ties: raw), then a pool-wide threshold on that
    best score: ``threshold`` if set, else the top ``fraction``."""

    name: ClassVar[str] = "mix_best_of"
    Options = BestOfOptions

    def apply(self, pool: Pool) -> Selection:
        o: BestOfOptions = self.options  # type: ignore[assignment]
        c = self._load(pool.df)
        raw = np.nan_to_num(c["raw_score"], nan=-np.inf)
        syn = np.nan_to_num(c["syn_score"], nan=-np.inf)
        use_syn = syn > raw
        best = np.where(use_syn, c["syn_score"], c["raw_score"])
        if o.threshold is not None:
            t, what = o.threshold, f"best score >= {o.threshold:g}"
        elif o.fraction is not None:
            t, what = get_threshold(best, o.fraction), f"top {o.fraction:g} of the best score"
        else:
            raise ConfigError("mix_best_of needs a fraction or a threshold")
        keep = _ge(best, t)
        steps = [
            Step("synthetic scores higher", int(use_syn.sum()), int(use_syn.sum())),
            Step(what, int(keep.sum()), int(keep.sum()), {"threshold": t}),
        ]
        return self._select(keep & ~use_syn, keep & use_syn, c, steps)
