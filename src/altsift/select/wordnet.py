"""Offline ``wordnet.synsets(word)[0].offset()`` with NLTK semantics, from a compact WordNet 3.0 table.

DataComp's text-based baseline (``does_contain_text_entity``) keeps a caption when one of its
whitespace tokens has a *first* WordNet synset whose offset is an ImageNet-21k (or 1k) synset. NLTK's
``synsets(word)`` lower-cases the word, then for each POS in (noun, verb, adj, adv) runs ``morphy``
(exception lists, then suffix rules applied repeatedly) and lists the index's synsets of every form
found; the first synset is therefore the first listed synset of the first form of the first POS
that has one. The table ``assets/wordnet/wordnet30_first_synsets.tsv.gz`` (built from the WordNet 3.0
database by ``scripts/build_wordnet_table.py``; WordNet licence alongside) holds exactly the data this
needs: every lemma's first synset offset per POS and the exception lists. No NLTK download needed.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

POS_ORDER = ("n", "v", "a", "r")  # nltk POS_LIST = [NOUN, VERB, ADJ, ADV]
SUBSTITUTIONS = {  # nltk WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS
    "n": [("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
          ("men", "man"), ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}  # fmt: skip


class WordNet:
    """First-synset lookup. ``first_offset(word)`` equals ``nltk wordnet.synsets(word)[0].offset()``."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.first: dict[str, dict[str, int]] = {p: {} for p in POS_ORDER}
        self.exc: dict[str, dict[str, list[str]]] = {p: {} for p in POS_ORDER}
        for line in lines:
            kind, pos, key, val = line.rstrip("\n").split("\t")
            if kind == "s":
                self.first[pos][key] = int(val)
            else:
                self.exc[pos][key] = val.split()

    @classmethod
    @lru_cache(maxsize=1)
    def default(cls) -> WordNet:
        """The bundled WordNet 3.0 table (loaded once, ~1 s)."""
        ref = resources.files("altsift") / "assets" / "wordnet" / "wordnet30_first_synsets.tsv.gz"
        with ref.open("rb") as f, gzip.open(f, "rt", encoding="utf-8") as g:
            return cls(g)

    def morphy(self, form: str, pos: str) -> list[str]:
        """NLTK ``_morphy(form, pos, check_exceptions=True)``: base forms of ``form`` present for ``pos``."""
        lemmas, subs = self.first[pos], SUBSTITUTIONS[pos]

        def apply_rules(forms: list[str]) -> list[str]:
            return [f[: -len(old)] + new for f in forms for old, new in subs if f.endswith(old)]

        def filter_forms(forms: list[str]) -> list[str]:
            return list(dict.fromkeys(f for f in forms if f in lemmas))

        if form in self.exc[pos]:
            return filter_forms([form, *self.exc[pos][form]])
        forms = apply_rules([form])
        results = filter_forms([form, *forms])
        if results:
            return results
        while forms:
            forms = apply_rules(forms)
            results = filter_forms(forms)
            if results:
                return results
        return []

    def first_offset(self, word: str) -> int | None:
        """Offset of ``synsets(word)[0]`` (any POS, as DataComp compares offsets only), None if none."""
        w = word.lower()
        for pos in POS_ORDER:
            forms = self.morphy(w, pos)
            if forms:
                return self.first[pos][forms[0]]
        return None

    def contains_entity(self, text: str, offsets: set[int]) -> bool:
        """DataComp ``does_contain_text_entity``: any whitespace token whose first synset is in ``offsets``."""
        return any(self._first_cached(tok) in offsets for tok in text.split())

    @lru_cache(maxsize=200_000)  # noqa: B019 - one long-lived default instance
    def _first_cached(self, word: str) -> int | None:
        return self.first_offset(word)


def parse_wnids(lines: Iterable[str]) -> set[int]:
    """ImageNet wnid lines (``n01440764``) -> WordNet noun offsets (DataComp: ``int(x[1:])``)."""
    return {int(x.strip()[1:]) for x in lines if x.strip()}
