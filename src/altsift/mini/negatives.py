"""Text-side hard negatives for the mini CLIP's training (NegCLIP, Yuksekgonul et al. 2023).

Plain contrastive training on random batches rarely needs word order or attribute-object binding to pick
the right caption, so CLIPs learn "bags of words" (Yuksekgonul et al., "When and why vision-language models
behave like bags-of-words, and what to do about it?", ICLR 2023). NegCLIP adds, for each training caption, a
perturbed caption to the batch as an extra text column of the image->text softmax.

The rules here read only the caption's own words (no ground truth, no image): colour words are those of
``world.COLOURS``, shape words those of ``world.SHAPES``. One negative per caption, drawn by first picking a
rule uniformly among those that apply, then an outcome uniformly within it:

- ``swap_colours``: exchange two different colour words ("a red circle and a blue star" -> "a blue circle
  and a red star");
- ``swap_shapes``: exchange two different shape words;
- ``replace_colour``: one colour word -> another colour;
- ``replace_shape``: one shape word -> another shape.

A caption with no colour or shape word ("buy zuze", "dsc 6 6 4 6 image") gets no negative.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from altsift.mini.world import COLOURS, SHAPES

RULES = ("swap_colours", "swap_shapes", "replace_colour", "replace_shape")
_COLOURS = tuple(COLOURS)


def _swaps(words: list[str], vocab: tuple[str, ...]) -> list[list[str]]:
    pos = [i for i, w in enumerate(words) if w in vocab]
    out = []
    for i, j in combinations(pos, 2):
        if words[i] != words[j]:
            new = list(words)
            new[i], new[j] = words[j], words[i]
            out.append(new)
    return out


def _replacements(words: list[str], vocab: tuple[str, ...]) -> list[list[str]]:
    out = []
    for i, w in enumerate(words):
        if w in vocab:
            for v in vocab:
                if v != w:
                    new = list(words)
                    new[i] = v
                    out.append(new)
    return out


def negative_candidates(text: str) -> dict[str, list[str]]:
    """Every hard negative of ``text`` per rule (rules that do not apply are absent)."""
    words = text.split()
    found = {
        "swap_colours": _swaps(words, _COLOURS),
        "swap_shapes": _swaps(words, SHAPES),
        "replace_colour": _replacements(words, _COLOURS),
        "replace_shape": _replacements(words, SHAPES),
    }
    return {rule: [" ".join(w) for w in cands] for rule, cands in found.items() if cands}


class NegativeSampler:
    """Draws one hard negative per caption (or none), deterministically from ``seed``."""

    def __init__(self, texts: list[str], seed: int = 0) -> None:
        self.texts = texts
        self.rng = np.random.default_rng(seed)
        self._cache: dict[str, list[list[str]]] = {}

    def _rules(self, text: str) -> list[list[str]]:
        if text not in self._cache:
            self._cache[text] = list(negative_candidates(text).values())
        return self._cache[text]

    def sample(self, indices: np.ndarray) -> list[str]:
        """One negative for each caption ``texts[i]`` that has any (so up to ``len(indices)`` texts)."""
        out = []
        for i in indices:
            rules = self._rules(self.texts[int(i)])
            if rules:
                cands = rules[self.rng.integers(len(rules))]
                out.append(cands[self.rng.integers(len(cands))])
        return out
