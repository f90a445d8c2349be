"""Dataset statistics for reports: Parrot's Table 1 and Nguyen et al.'s caption statistics.

**Parrot** (Lin et al., "Parrot Captions Teach CLIP to Spot Text", Table 1 and §4.2): over the images
the ``ocr`` signal ran on (``has_text`` not null), the share with embedded text, the mean CoTR over all
images and over images with text (exact ``cotr`` and fuzzy ``cotr_fuzzy``), the CoTR distribution, and
how many captions are fully (CoTR = 1) or partly (0 < CoTR < 1) spotted. The paper's "CoTR over all
images" (LAION-2B: 15.42%) is the mean CoTR. :func:`parrot_stats` reads only ``has_text``, ``cotr``
and ``cotr_fuzzy``, one table at a time.

**Captions** (Nguyen et al., "Improving Multimodal Datasets with Image Captioning", who explain caption
utility by the diversity and alignment of the captions used): :func:`caption_stats` counts distinct word
trigrams and distinct nouns over a sample of captions, the mean CLIP score of the captions used and the
raw / synthetic share. Tokens are lower-cased runs of letters and digits (``\\w+``); a trigram is three
consecutive tokens of one caption. Nouns are approximated offline with the bundled WordNet 3.0 table
(no tagger, no download): a token is a noun when WordNet's morphology (NLTK ``morphy``) finds a noun
lemma for it, the token is not also an adjective lemma, and it is not a stop word; distinct noun
lemmas are counted (``dogs`` and ``dog`` are one noun). This over-counts words that are nouns and verbs
("run") and under-counts nouns that are also adjectives ("gold"); it is a fixed rule, so subsets are
compared fairly with it, but its counts are not a POS tagger's. Distinct counts grow with the number
of captions, so two subsets are compared on samples of the same size (:data:`TEXT_SAMPLE`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from altsift.errors import ConfigError
from altsift.io.pool import checked_pool_files as pool_files

# --------------------------------------------------------------------------------------------- parrot
COTR_BINS: tuple[tuple[str, float, float], ...] = (
    ("0", 0.0, 0.0),
    ("(0, 0.2]", 0.0, 0.2),
    ("(0.2, 0.4]", 0.2, 0.4),
    ("(0.4, 0.6]", 0.4, 0.6),
    ("(0.6, 0.8]", 0.6, 0.8),
    ("(0.8, 1)", 0.8, 1.0),
    ("1", 1.0, 1.0),
)
PARROT_COLUMNS = ("has_text", "cotr", "cotr_fuzzy")


def cotr_bin_index(v: np.ndarray) -> np.ndarray:
    """Index into :data:`COTR_BINS` for each CoTR value in [0, 1]."""
    v = np.asarray(v, dtype=np.float64)
    idx = np.clip(np.ceil(v / 0.2).astype(np.int64), 0, 5)  # (0, .2] -> 1 ... (.8, 1) -> 5
    idx[v <= 0] = 0
    idx[v >= 1] = 6
    return idx


class _CotrAcc:
    """Running sums for one CoTR column, over all images and over images with text."""

    def __init__(self) -> None:
        self.n = {"all": 0, "text": 0}
        self.sum = {"all": 0.0, "text": 0.0}
        self.hist = {"all": np.zeros(len(COTR_BINS), np.int64), "text": np.zeros(len(COTR_BINS), np.int64)}

    def add(self, cotr: np.ndarray, has_text: np.ndarray) -> None:
        ok = ~np.isnan(cotr)
        for part, m in (("all", ok), ("text", ok & has_text)):
            v = cotr[m]
            self.n[part] += int(v.size)
            self.sum[part] += float(v.sum())
            self.hist[part] += np.bincount(cotr_bin_index(v), minlength=len(COTR_BINS))

    def result(self, column: str) -> dict[str, Any]:
        def share(a: float, b: int) -> float | None:
            return a / b if b else None

        h_all, h_text = self.hist["all"], self.hist["text"]
        co_all, co_text = int(h_all[1:].sum()), int(h_text[1:].sum())
        fully, partly = int(h_text[6]), int(h_text[1:6].sum())
        return {
            "column": column,
            "images": self.n["all"],
            "images_with_text": self.n["text"],
            "mean_all": share(self.sum["all"], self.n["all"]),
            "mean_text": share(self.sum["text"], self.n["text"]),
            "co_emb": co_all,
            "share_co_emb_all": share(co_all, self.n["all"]),
            "share_co_emb_text": share(co_text, self.n["text"]),
            "fully_spotted": fully,
            "partly_spotted": partly,
            "share_fully_text": share(fully, self.n["text"]),
            "share_partly_text": share(partly, self.n["text"]),
            "hist_all": [int(x) for x in h_all],
            "hist_text": [int(x) for x in h_text],
        }


def _float_col(t: pa.Table, name: str) -> np.ndarray:
    col = t.column(name)
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def parrot_stats(source: str | Path) -> dict[str, Any] | None:
    """Parrot's Table 1 statistics for a run (None when no table has ``has_text``); see the module doc."""
    files, _ = pool_files(source)
    names = [set(pq.read_schema(f).names) for f in files]
    if not any("has_text" in n for n in names):
        return None
    pool_rows = 0
    images = with_text = 0
    accs = {c: _CotrAcc() for c in ("cotr", "cotr_fuzzy")}
    present = {c: False for c in accs}
    for f, have in zip(files, names, strict=True):
        cols = [c for c in PARROT_COLUMNS if c in have]
        t = pq.read_table(f, columns=cols)
        pool_rows += t.num_rows
        if "has_text" not in have:
            continue
        ht = _float_col(t, "has_text")
        ran = ~np.isnan(ht)
        has = ht == 1.0
        images += int(ran.sum())
        with_text += int(has.sum())
        for c, acc in accs.items():
            if c in have:
                present[c] = True
                v = _float_col(t, c)
                acc.add(np.where(ran, v, np.nan), has)
    return {
        "pool_rows": pool_rows,
        "images": images,
        "with_text": with_text,
        "share_with_text": with_text / images if images else None,
        "bins": [b[0] for b in COTR_BINS],
        "exact": accs["cotr"].result("cotr") if present["cotr"] else None,
        "fuzzy": accs["cotr_fuzzy"].result("cotr_fuzzy") if present["cotr_fuzzy"] else None,
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def parrot_stats_lines(st: dict[str, Any]) -> list[str]:
    """Plain-text table of :func:`parrot_stats` (the paper's Table 1 rows, then the distribution)."""
    L = [
        f"images scored by ocr        {st['images']:>12,}   (pool rows {st['pool_rows']:,})",
        f"images with embedded text   {st['with_text']:>12,}   {_pct(st['share_with_text'])}",
    ]
    for label, r in (("CoTR", st["exact"]), ("fuzzy CoTR", st["fuzzy"])):
        if r is None:
            continue
        L += [
            f"{label + ' over all images':<27} {_pct(r['mean_all']):>12}",
            f"{label + ' over images w/ text':<27} {_pct(r['mean_text']):>12}",
            f"{'images with co-emb. text':<27} {r['co_emb']:>12,}   {_pct(r['share_co_emb_all'])} of all, "
            f"{_pct(r['share_co_emb_text'])} of images with text ({label})",
            f"{'  fully spotted (=1)':<27} {r['fully_spotted']:>12,}   {_pct(r['share_fully_text'])} of images with text",
            f"{'  partly spotted (0-1)':<27} {r['partly_spotted']:>12,}   {_pct(r['share_partly_text'])} of images with text",
        ]
    for label, r in (("CoTR", st["exact"]), ("fuzzy CoTR", st["fuzzy"])):
        if r is None:
            continue
        L += ["", f"{label} distribution   {'all images':>12} {'with text':>12}"]
        for b, a, t in zip(st["bins"], r["hist_all"], r["hist_text"], strict=True):
            L.append(f"  {b:<18} {a:>12,} {t:>12,}")
    return L


# --------------------------------------------------------------------------------------------- captions
TEXT_SAMPLE = 100_000
_TOKEN = re.compile(r"[^\W_]+")
# Closed-class words WordNet also lists as nouns ("a" vitamin A, "in" inch, "it" information technology).
_STOP = """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each either few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me might
    more most my myself neither no nor not now of off on once one only or other our ours ourselves out
    over own per same she should so some such than that the their theirs them themselves then there these
    they this those through to too two three four five six seven eight nine ten under until up upon us
    very via was we were what when where which while who whom whose why will with within without would
    yet you your yours yourself yourselves"""
STOP_WORDS = frozenset(_STOP.split())


def tokens(caption: str) -> list[str]:
    """Lower-cased runs of letters and digits."""
    return _TOKEN.findall(caption.lower())


@lru_cache(maxsize=1)
def _wordnet():  # noqa: ANN202 - loaded once, ~1 s
    from altsift.select.wordnet import WordNet

    return WordNet.default()


@lru_cache(maxsize=500_000)
def noun_lemma(token: str) -> str | None:
    """The noun lemma of a token under the rule in the module docstring, else None."""
    if token in STOP_WORDS or len(token) < 2 or not token.isalpha():
        return None
    wn = _wordnet()
    if token in wn.first["a"]:
        return None
    forms = wn.morphy(token, "n")
    return forms[0] if forms else None


def text_diversity(captions: Iterable[str | None]) -> dict[str, int]:
    """Distinct word trigrams and distinct noun lemmas of ``captions`` (None / empty captions skipped)."""
    tri: set[int] = set()  # 64-bit hashes of the trigrams: a collision among 10^6 is ~10^-7 likely
    nouns: set[str | None] = set()
    n = 0
    for c in captions:
        if not isinstance(c, str) or not c.strip():
            continue
        n += 1
        tok = tokens(c)
        tri.update(map(hash, zip(tok, tok[1:], tok[2:], strict=False)))
        nouns.update(map(noun_lemma, tok))
    nouns.discard(None)
    return {"captions": n, "unique_trigrams": len(tri), "unique_nouns": len(nouns)}


def sample_positions(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` sorted positions of ``range(n)`` drawn without replacement (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def raw_score_column(columns: Iterable[str], preferred: str | None = None) -> str | None:
    """The CLIP score column of raw captions: ``preferred`` if present, else the usual names."""
    cols = set(columns)
    for c in (preferred, "clip_score", "clip_l14_similarity_score", "clip_b32_similarity_score"):
        if c and c in cols:
            return c
    return None


def check_subset_columns(path: Path) -> list[str]:
    """Columns of a subset's side ``.parquet`` (``caption``, ``caption_source``, ...)."""
    try:
        return pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as e:
        raise ConfigError(f"{path}: cannot read the subset's caption columns ({e})") from None


def caption_rows_note() -> str:
    """How the caption statistics are computed (shown under the table in reports)."""
    return (
        "Distinct word trigrams and distinct nouns are counted on the same number of captions per row "
        "(a seeded random sample when a subset is larger), so rows compare fairly. Nouns: tokens that "
        "WordNet 3.0 knows as nouns and not as adjectives, stop words excluded, counted by lemma (an "
        "offline approximation of a POS tagger). The mean CLIP score is over all rows of the subset, "
        "each with the score of the caption it uses."
    )
