"""Signal ``parrot``: Co-Emb. Text Rate (CoTR, Lin et al. 2023 Algorithm 1) and a fuzzy variant.

``cotr`` follows Algorithm 1 exactly: ``cap = set(caption.split())``, ``ocr = set(ocr_text.split())``,
``cotr = |cap & ocr| / |cap|`` (plain whitespace tokens, exact, case-sensitive match; 0 for an empty
caption or no text). ``is_parrot = cotr > 0``. ``co_emb_text`` lists the co-embedded words in caption
order. ``cotr_fuzzy`` normalises words and absorbs OCR errors; its rules are in ``docs/parrot.md`` and
:func:`fuzzy_match`. Reads the ``ocr`` signal's ``ocr_text``; needs no image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from pydantic import BaseModel, Field
from rapidfuzz.distance import Levenshtein

from altsift.signals.base import Batch, Columns, Resources, Signal, SignalOptions, batch_len, ok_rows, scatter
from altsift.signals.registry import register_signal


def cotr(caption: str | None, ocr_text: str | None) -> tuple[float, list[str]]:
    """Algorithm 1: ``(|cap_words & ocr_words| / |cap_words|, co-emb words in caption order)``."""
    cap_seq = (caption or "").split()
    cap_words = set(cap_seq)
    if not cap_words:
        return 0.0, []
    co = cap_words & set((ocr_text or "").split())
    ordered = list(dict.fromkeys(w for w in cap_seq if w in co))
    return len(co) / len(cap_words), ordered


def cotr_iou(caption: str | None, ocr_text: str | None) -> float:
    """The "word set IoU" reading of CoTR: ``|cap & ocr| / |cap | ocr|`` (0 when both are empty)."""
    cap, ocr = set((caption or "").split()), set((ocr_text or "").split())
    union = cap | ocr
    return len(cap & ocr) / len(union) if union else 0.0


def normalize_word(word: str) -> str:
    """Lowercase (casefold) and drop every character that is not a letter or digit."""
    return "".join(ch for ch in word.casefold() if ch.isalnum())


@dataclass(frozen=True)
class FuzzyRules:
    """Parameters of the fuzzy matcher (see :func:`fuzzy_match`)."""

    threshold: float = 0.8  # normalised Levenshtein similarity 1 - d / max(len)
    substring_min_len: int = 4  # 0 disables the substring rule
    max_concat: int = 4  # longest run of words joined by the segment rule
    punct_split: bool = True  # rules 1 and 3 also try the parts of an OCR token split at punctuation
    confusables: bool = True  # rule 5: rule 1 on OCR-confusable folds (rn/m, l/i/1, o/0)
    prefix_min_len: int = 5  # rule 6: an OCR token this long that starts a caption word (0 disables)
    prefix_min_share: float = 0.5  # ... and covers at least this share of it


_PUNCT = re.compile(r"[^\w]+|_")
_FOLD_CHARS = str.maketrans({"i": "l", "1": "l", "0": "o"})


def fold_confusables(word: str) -> str:
    """Map a normalised word to a form shared by its common OCR misreads.

    ``rn`` -> ``m`` and ``vv`` -> ``w`` (letter pairs the recogniser reads as one letter and back),
    ``i``/``1`` -> ``l`` (``I``, ``l`` and ``1`` are one glyph in many sans fonts) and ``0`` -> ``o``.
    """
    return word.replace("rn", "m").replace("vv", "w").translate(_FOLD_CHARS)


def _similar(a: str, b: str, threshold: float) -> bool:
    return a == b or Levenshtein.normalized_similarity(a, b) >= threshold


def _segment_hits(seq: list[str], targets: set[str], rules: FuzzyRules) -> set[int]:
    """Indices of ``seq`` in runs of 2..max_concat consecutive words whose concatenation matches a target."""
    hits: set[int] = set()
    if not targets:
        return hits
    max_len = max(len(t) for t in targets)
    for i in range(len(seq)):
        joined = seq[i]
        for j in range(i + 1, min(len(seq), i + rules.max_concat)):
            joined += seq[j]
            if len(joined) > max_len / max(rules.threshold, 1e-6) + 1:
                break
            if any(_similar(joined, t, rules.threshold) for t in targets):
                hits.update(range(i, j + 1))
    return hits


def fuzzy_match(
    caption: str | None, ocr_tokens: Sequence[str], rules: FuzzyRules = FuzzyRules()
) -> tuple[set[str], set[int]]:
    """Match normalised caption words against OCR tokens.

    A caption word ``w`` (normalised, non-empty) is co-embedded when, for some normalised OCR token ``t``:
      1. ``w == t``, or Levenshtein similarity ``>= rules.threshold`` (OCR misspellings);
      2. segment: ``w`` is part of 2..``max_concat`` consecutive caption words whose concatenation
         matches ``t`` by rule 1 (OCR merged words: ``Region-basedsegmentation``), or ``w`` matches the
         concatenation of consecutive OCR tokens (OCR split a word);
      3. substring: ``len(w) >= substring_min_len`` and ``w`` occurs inside a longer ``t`` (a merged token
         whose other parts are not in the caption);
    5. confusables (``rules.confusables``): rule 1 on :func:`fold_confusables` of both words
       (``Modem`` for ``modern``, ``lce`` for ``ice``);
    6. prefix: ``t`` has at least ``prefix_min_len`` characters, starts ``w`` (also after folding) and
       covers at least ``prefix_min_share`` of it (a line read short: ``Archite`` for ``architecture``).
    Rules 1 and 3 also try the parts of an OCR token split at punctuation (``at-CTS`` -> ``at``, ``cts``;
    ``Reform:Poli`` -> ``reform``, ``poli``), so a short caption word glued to other text by a
    punctuation mark still matches exactly (``punct_split``, on by default).
    Returns ``(matched normalised caption words, indices of OCR tokens that matched)``.
    """
    cap_seq = [w for w in (normalize_word(x) for x in (caption or "").split()) if w]
    ocr_norm = [normalize_word(t) for t in ocr_tokens]
    ocr_seq = [(k, t) for k, t in enumerate(ocr_norm) if t]
    if not cap_seq or not ocr_seq:
        return set(), set()
    candidates = list(ocr_seq)
    if rules.punct_split:
        for k, raw in enumerate(ocr_tokens):
            parts = [normalize_word(x) for x in _PUNCT.split(raw)]
            if sum(bool(x) for x in parts) > 1:
                candidates += [(k, x) for x in parts if x]
    matched: set[str] = set()
    tok_hits: set[int] = set()
    fold = fold_confusables if rules.confusables else (lambda x: x)
    folded = [(k, t, fold(t)) for k, t in candidates]
    for w in set(cap_seq):
        fw = fold(w)
        for k, t, ft in folded:
            rule1 = _similar(w, t, rules.threshold) or (
                rules.confusables and _similar(fw, ft, rules.threshold)
            )
            rule3 = (
                rules.substring_min_len > 0
                and len(w) >= rules.substring_min_len
                and len(t) > len(w)
                and w in t
            )
            rule6 = (
                rules.prefix_min_len > 0
                and rules.prefix_min_len <= len(t) < len(w)
                and len(t) >= rules.prefix_min_share * len(w)
                and (w.startswith(t) or fw.startswith(ft))
            )
            if rule1 or rule3 or rule6:
                matched.add(w)
                tok_hits.add(k)
    # rule 2a: caption runs vs merged OCR tokens
    for k, t in ocr_seq:
        for i in _segment_hits(cap_seq, {t}, rules):
            matched.add(cap_seq[i])
            tok_hits.add(k)
    # rule 2b: OCR runs vs caption words (per word, to know which tokens hit)
    ocr_words = [t for _, t in ocr_seq]
    for w in set(cap_seq):
        hits = _segment_hits(ocr_words, {w}, rules)
        if hits:
            matched.add(w)
            tok_hits.update(ocr_seq[i][0] for i in hits)
    return matched, tok_hits


def cotr_fuzzy(caption: str | None, ocr_text: str | None, rules: FuzzyRules = FuzzyRules()) -> float:
    """Matched distinct normalised caption words / distinct normalised caption words (0 if none)."""
    cap = {w for w in (normalize_word(x) for x in (caption or "").split()) if w}
    if not cap:
        return 0.0
    matched, _ = fuzzy_match(caption, (ocr_text or "").split(), rules)
    return len(matched) / len(cap)


def co_emb_boxes(
    strings: Sequence[str], caption: str | None, fuzzy: bool = False, rules: FuzzyRules = FuzzyRules()
) -> list[bool]:
    """Which OCR boxes hold Co-Emb. text: a box counts when any of its words matched the caption."""
    if not fuzzy:
        cap = set((caption or "").split())
        return [bool(cap & set(s.split())) for s in strings]
    owner: list[int] = []
    tokens: list[str] = []
    for b, s in enumerate(strings):
        for tok in s.split():
            owner.append(b)
            tokens.append(tok)
    _, hits = fuzzy_match(caption, tokens, rules)
    out = [False] * len(strings)
    for k in hits:
        out[owner[k]] = True
    return out


class FuzzyRuleOptions(BaseModel):
    """The fuzzy matcher's options (:class:`FuzzyRules`), shared by the ``parrot`` and ``text_removal`` signals."""

    fuzzy_threshold: float = Field(0.8, ge=0.0, le=1.0)
    substring_min_len: int = Field(4, ge=0)
    max_concat: int = Field(4, ge=1)
    punct_split: bool = True  # fuzzy rules 1 and 3 also try OCR tokens split at punctuation
    confusables: bool = True  # fuzzy rule 5: OCR-confusable letters (rn/m, l/i/1, o/0) fold together
    prefix_min_len: int = Field(5, ge=0)  # fuzzy rule 6: an OCR token read short still matches (0 disables)
    prefix_min_share: float = Field(0.5, ge=0.0, le=1.0)

    def rules(self) -> FuzzyRules:
        return FuzzyRules(
            threshold=self.fuzzy_threshold,
            substring_min_len=self.substring_min_len,
            max_concat=self.max_concat,
            punct_split=self.punct_split,
            confusables=self.confusables,
            prefix_min_len=self.prefix_min_len,
            prefix_min_share=self.prefix_min_share,
        )


class ParrotOptions(SignalOptions, FuzzyRuleOptions):
    iou: bool = False  # also write ``cotr_iou`` (|cap & ocr| / |cap | ocr|)


@register_signal
class ParrotSignal(Signal):
    """CoTR, fuzzy CoTR, co-embedded text and the parrot flag from the ``ocr`` columns."""

    name = "parrot"
    Options = ParrotOptions
    columns = ("cotr", "cotr_fuzzy", "co_emb_text", "is_parrot")
    column_types = {
        "cotr": pa.float64(),
        "cotr_fuzzy": pa.float64(),
        "co_emb_text": pa.string(),
        "is_parrot": pa.bool_(),
        "cotr_iou": pa.float64(),
    }
    resources = Resources(cpus=1, memory_gb=0.3)
    requires = ("ocr",)
    needs_image = False

    def output_columns(self) -> tuple[str, ...]:
        return self.columns + (("cotr_iou",) if self.options.iou else ())

    def __call__(self, batch: Batch) -> Columns:
        n = batch_len(batch)
        idx = [i for i in ok_rows(batch) if batch["ocr_text"][i] is not None]
        rules = self.options.rules()
        exact = [cotr(batch["text"][i], batch["ocr_text"][i]) for i in idx]
        out: Columns = {
            "cotr": scatter(n, idx, [c for c, _ in exact]),
            "cotr_fuzzy": scatter(
                n, idx, [cotr_fuzzy(batch["text"][i], batch["ocr_text"][i], rules) for i in idx]
            ),
            "co_emb_text": scatter(n, idx, [" ".join(w) for _, w in exact]),
            "is_parrot": scatter(n, idx, [c > 0 for c, _ in exact]),
        }
        if self.options.iou:
            out["cotr_iou"] = scatter(n, idx, [cotr_iou(batch["text"][i], batch["ocr_text"][i]) for i in idx])
        return out
