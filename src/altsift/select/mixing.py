"""Raw / synthetic caption mixing policies (Nguyen et al. 2023, "Improving Multimodal Datasets with
Image Captioning") as select presets.

Every preset returns ``Selection.columns`` ``caption`` (the text to train on) and ``caption_source``
(``'raw'`` / ``'synthetic'``), pool-length arrays (None on rows not selected), for
``altsift export --caption-column caption``. Thresholds are pool-wide (DataComp ``get_threshold``).
Columns default to raw ``clip_score`` / ``text`` and synthetic ``clip_score_synthetic`` /
``synthetic_caption``. A missing score (NaN) never passes a threshold; a row without a synthetic
caption is never given one.

The policies follow the paper's strategy names as reported by a secondary source (papers.md 4.1);
the exact semantics are UNVERIFIED -- docs/captions.md says which choices are ours. The ``*_in1k``
presets intersect with DataComp's ``image_based`` filter (its caption pre-filter on the raw caption,
then the ImageNet-1k cluster condition); every threshold is computed on the whole pool before the
intersection. The paper filters with ViT-L/14 CLIP scores: the presets check the scores' provenance
and warn (``arch`` states the architecture explicitly).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from altsift.errors import ConfigError
from altsift.select.base import (
    Pool,
    Preset,
    PresetOptions,
    Selection,
    Step,
    StepLog,
    ge,
    get_threshold,
    register_preset,
)
from altsift.select.datacomp import Arch, ImageBasedOptions, image_based_steps
from altsift.select.provenance import check_arch

RAW, SYN = "raw", "synthetic"


class MixOptions(PresetOptions):
    raw_score: str = Field("clip_score", description="CLIP score of (image, raw caption)")
    raw_text: str = Field("text", description="raw caption column")
    synthetic_score: str = Field(
        "clip_score_synthetic", description="CLIP score of (image, synthetic caption)"
    )
    synthetic_text: str = Field("synthetic_caption", description="synthetic caption column")
    arch: Arch = Field(None, description="state the CLIP architecture of the scores (the paper's: l14)")


def _fraction(default: float, what: str):
    return Field(default, gt=0.0, le=1.0, description=what)


def _top_step(name: str, keep: np.ndarray, column: str, t: float, fraction: float | None,
              cumulative: int | None = None) -> Step:  # fmt: skip
    kind = "top_fraction" if fraction is not None else "threshold"
    return Step(name, kind, column=column, op=">=", threshold=t, fraction=fraction, kept_alone=int(keep.sum()),
                kept_cumulative=int(keep.sum()) if cumulative is None else cumulative,
                detail={"threshold": t})  # fmt: skip


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

    def check(self, pool: Pool) -> list[str]:
        o: MixOptions = self.options  # type: ignore[assignment]
        cols = ([o.raw_score] if self.uses_raw else []) + ([o.synthetic_score] if self.uses_synthetic else [])
        out: list[str] = []
        for c in cols:
            if pool.has(c):
                out += check_arch(
                    pool.signals(), c, "l14", o.arch, self.name, "Nguyen et al.'s CLIP filtering"
                )
        return out

    def _load(self, pool: Pool) -> dict[str, np.ndarray]:
        o: MixOptions = self.options  # type: ignore[assignment]
        out: dict[str, np.ndarray] = {}
        if self.uses_raw:
            out["raw_score"] = pool.numeric(_need(pool, o.raw_score))
            out["raw_text"] = pool.texts(_need(pool, o.raw_text))
        if self.uses_synthetic:
            syn = pool.column(_need(pool, o.synthetic_text))
            if pa.types.is_null(syn.type):
                has = np.zeros(len(pool), dtype=bool)
            else:
                nonblank = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(syn)), 0)
                has = np.asarray(pc.fill_null(nonblank, False).to_numpy(zero_copy_only=False), dtype=bool)
            # a synthetic score without a synthetic caption is meaningless: treat as missing
            out["syn_score"] = np.where(has, pool.numeric(_need(pool, o.synthetic_score)), np.nan)
            out["syn_text"] = pool.texts(o.synthetic_text)
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
        steps.append(Step("kept", "preset", kept_alone=int(mask.sum()), kept_cumulative=int(mask.sum()),
                          detail={"raw": int(raw_keep.sum()), "synthetic": int(syn_keep.sum())}))  # fmt: skip
        return Selection(mask=mask, steps=steps, columns={"caption": caption, "caption_source": source})


def _need(pool: Pool, col: str) -> str:
    if not pool.has(col):
        raise ConfigError(f"column '{col}' is not in the score tables. Available: {', '.join(pool.columns)}")
    return col


_ge = ge


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
        c = self._load(pool)
        t = get_threshold(c["raw_score"], o.fraction)
        keep = _ge(c["raw_score"], t)
        steps = [_top_step(f"top {o.fraction:g} of {o.raw_score}", keep, o.raw_score, t, o.fraction)]
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
        c = self._load(pool)
        t = get_threshold(c["syn_score"], o.fraction)
        keep = _ge(c["syn_score"], t) & c["has_syn"]
        steps = [
            _top_step(f"top {o.fraction:g} of {o.synthetic_score}", keep, o.synthetic_score, t, o.fraction)
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
        c = self._load(pool)
        t = get_threshold(c["raw_score"], o.raw_fraction)
        raw_keep = _ge(c["raw_score"], t)
        steps = [
            _top_step(
                f"top {o.raw_fraction:g} of {o.raw_score}: raw", raw_keep, o.raw_score, t, o.raw_fraction
            )
        ]
        rest = ~raw_keep & c["has_syn"]
        if self.filtered:
            rest &= _ge(c["syn_score"], t)
            name = f"rest with {o.synthetic_score} >= the same threshold: synthetic"
        else:
            name = "rest with a synthetic caption: synthetic"
        steps.append(Step(name, "threshold" if self.filtered else "preset",
                          column=o.synthetic_score if self.filtered else o.synthetic_text,
                          op=">=" if self.filtered else None, threshold=t if self.filtered else None,
                          kept_alone=int(rest.sum()), kept_cumulative=int((raw_keep | rest).sum()),
                          detail={"threshold": t}))  # fmt: skip
        return self._select(raw_keep, rest, c, steps)


@register_preset
class MixRawTopSyntheticRestFiltered(MixRawTopSyntheticRest):
    """Paper: "Raw (top 30%) + BLIP2 (70%, filtered)": as ``mix_raw_top_synthetic_rest`` but a replaced
    pair is kept only if its synthetic CLIP score passes the same (raw top-30%) threshold."""

    name: ClassVar[str] = "mix_raw_top_synthetic_rest_filtered"
    filtered = True


class SynSplitOptions(MixOptions):
    synthetic_fraction: float = _fraction(
        0.3,
        "top fraction by synthetic CLIP score that takes its synthetic caption (the mirror of raw_fraction)",
    )


@register_preset
class MixSyntheticTopRawRest(_MixPreset):
    """Mirror of ``mix_raw_top_synthetic_rest`` ("BLIP2 (top x%) + Raw"): synthetic captions for the top
    ``synthetic_fraction`` by synthetic CLIP score, the raw caption for every other row."""

    name: ClassVar[str] = "mix_synthetic_top_raw_rest"
    Options = SynSplitOptions
    filtered: ClassVar[bool] = False

    def apply(self, pool: Pool) -> Selection:
        o: SynSplitOptions = self.options  # type: ignore[assignment]
        c = self._load(pool)
        t = get_threshold(c["syn_score"], o.synthetic_fraction)
        syn_keep = _ge(c["syn_score"], t) & c["has_syn"]
        steps = [_top_step(f"top {o.synthetic_fraction:g} of {o.synthetic_score}: synthetic", syn_keep,
                           o.synthetic_score, t, o.synthetic_fraction)]  # fmt: skip
        rest = ~syn_keep & np.array([isinstance(x, str) for x in c["raw_text"]], dtype=bool)
        if self.filtered:
            rest &= _ge(c["raw_score"], t)
        steps.append(Step(f"rest with {o.raw_score} >= the same threshold: raw" if self.filtered
                          else "rest with a raw caption: raw", "threshold" if self.filtered else "preset",
                          column=o.raw_score if self.filtered else o.raw_text, op=">=" if self.filtered else None,
                          threshold=t if self.filtered else None, kept_alone=int(rest.sum()),
                          kept_cumulative=int((syn_keep | rest).sum()), detail={"threshold": t}))  # fmt: skip
        return self._select(rest, syn_keep, c, steps)


@register_preset
class MixSyntheticTopRawRestFiltered(MixSyntheticTopRawRest):
    """Mirror of ``mix_raw_top_synthetic_rest_filtered`` ("BLIP2 (top x%) + Raw (filtered)"): a row keeps
    its raw caption only if its raw CLIP score passes the same (synthetic top-x%) threshold."""

    name: ClassVar[str] = "mix_synthetic_top_raw_rest_filtered"
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
        c = self._load(pool)
        frac = None if o.threshold is not None else o.fraction
        t = o.threshold if o.threshold is not None else get_threshold(c["raw_score"], o.fraction)
        raw_keep = _ge(c["raw_score"], t)
        repl = ~raw_keep & c["has_syn"]
        if o.filter_synthetic:
            repl &= _ge(c["syn_score"], t)
        steps = [
            _top_step(f"{o.raw_score} >= {t:g}: raw", raw_keep, o.raw_score, t, frac),
            Step("below: synthetic", "preset", column=o.synthetic_text, kept_alone=int(repl.sum()),
                 kept_cumulative=int((raw_keep | repl).sum()), detail={"filter_synthetic": o.filter_synthetic}),
        ]  # fmt: skip
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
        c = self._load(pool)
        raw = np.nan_to_num(c["raw_score"], nan=-np.inf)
        syn = np.nan_to_num(c["syn_score"], nan=-np.inf)
        use_syn = syn > raw
        best = np.where(use_syn, c["syn_score"], c["raw_score"])
        if o.threshold is not None:
            t, what, frac = o.threshold, f"best score >= {o.threshold:g}", None
        elif o.fraction is not None:
            t, what, frac = (
                get_threshold(best, o.fraction),
                f"top {o.fraction:g} of the best score",
                o.fraction,
            )
        else:
            raise ConfigError("mix_best_of needs a fraction or a threshold")
        keep = _ge(best, t)
        steps = [
            Step("synthetic scores higher", "preset", kept_alone=int(use_syn.sum()),
                 kept_cumulative=int(use_syn.sum())),
            _top_step(what, keep, "best score", t, frac),
        ]  # fmt: skip
        return self._select(keep & ~use_syn, keep & use_syn, c, steps)


# --------------------------------------------------------------------------- ∩ IN1k (Nguyen et al.)


class RawTopIn1kOptions(TopOptions, ImageBasedOptions):
    pass


class SynTopIn1kOptions(MixOptions, ImageBasedOptions):
    fraction: float = _fraction(
        0.75, "top fraction of the pool by synthetic CLIP score (the paper's row: 75%)"
    )


def _intersect_in1k(
    pool: Pool, o: ImageBasedOptions, top: Step, keep: np.ndarray
) -> tuple[StepLog, np.ndarray]:
    """The top step (its threshold computed on the whole pool), then DataComp's image_based filter."""
    log = StepLog(len(pool))
    log.mask &= keep
    log.steps.append(top)
    image_based_steps(log, pool, o)
    return log, log.mask


@register_preset
class MixRawTopIn1k(_MixPreset):
    """Paper: "Raw top 30% ∩ IN1k": raw CLIP-score top ``fraction`` ∩ DataComp's image_based (IN1k) filter."""

    name: ClassVar[str] = "mix_raw_top_in1k"
    Options = RawTopIn1kOptions
    uses_synthetic = False

    def needed_columns(self) -> tuple[str, ...]:
        o: RawTopIn1kOptions = self.options  # type: ignore[assignment]
        return (*super().needed_columns(), o.text_column, o.lang_column)

    def apply(self, pool: Pool) -> Selection:
        o: RawTopIn1kOptions = self.options  # type: ignore[assignment]
        c = self._load(pool)
        t = get_threshold(c["raw_score"], o.fraction)  # pool-wide, before the intersection
        keep = _ge(c["raw_score"], t)
        log, mask = _intersect_in1k(pool, o, _top_step(f"top {o.fraction:g} of {o.raw_score}", keep, o.raw_score,
                                                       t, o.fraction), keep)  # fmt: skip
        return self._select(mask, np.zeros_like(mask), c, log.steps)


@register_preset
class MixSyntheticTopIn1k(_MixPreset):
    """Paper: "BLIP2 top 75% ∩ IN1k": synthetic-caption CLIP-score top ``fraction`` ∩ DataComp's image_based
    (IN1k) filter, with the synthetic captions."""

    name: ClassVar[str] = "mix_synthetic_top_in1k"
    Options = SynTopIn1kOptions
    uses_raw = False

    def needed_columns(self) -> tuple[str, ...]:
        o: SynTopIn1kOptions = self.options  # type: ignore[assignment]
        return (*super().needed_columns(), o.text_column, o.lang_column)

    def apply(self, pool: Pool) -> Selection:
        o: SynTopIn1kOptions = self.options  # type: ignore[assignment]
        c = self._load(pool)
        t = get_threshold(c["syn_score"], o.fraction)  # pool-wide over rows with a synthetic caption
        keep = _ge(c["syn_score"], t) & c["has_syn"]
        top = _top_step(f"top {o.fraction:g} of {o.synthetic_score}", keep, o.synthetic_score, t, o.fraction)
        log, mask = _intersect_in1k(pool, o, top, keep)
        return self._select(np.zeros_like(mask), mask, c, log.steps)
