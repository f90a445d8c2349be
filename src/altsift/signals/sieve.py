"""SIEVE: alignment between the alt-text and synthetic captions of the image (Mahmoud et al., CVPR 2024).

Follows the official code (facebookresearch/SIEVE, ``sentence_similarity_inference.py``):

1. captions come from the ``caption`` signal (``synthetic_captions``: SIEVE samples 8 per image with
   BLIP; see :func:`sieve_caption_defaults`), at most ``num_captions`` (8) of them are used;
2. medium phrases ("an image of", "photo", ...) are removed from the alt-text and from every caption:
   :data:`REMOVE_PHRASES` as case-insensitive substring regexes applied in list order (no word
   boundaries, so "images" becomes "s"; whitespace is left as is);
3. alt-text and captions are embedded with a sentence encoder (``all-MiniLM-L6-v2``), L2-normalised;
4. ``sieve_score`` = max over captions of cos(alt-text, caption), ``sieve_best_caption`` = the (masked)
   argmax caption; if that caption is the empty string after masking, ``sieve_score`` is 0.0 (SIEVE's
   recompute script, ``sentence_similarity_inference.py``);
5. ``sieve_mean`` = mean over captions of the cosine between the **unmasked** alt-text and the unmasked
   captions: SIEVE's ``cap_mean`` comes from its first pass (``webdataset_inference.py``), which embeds
   the texts as they are; the masked second pass writes only the max. ``mean: masked`` averages the
   masked cosines instead, ``mean: none`` skips the column.

Rows that cannot be scored (status not ok, no alt-text, no captions) get null in every column, never 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from altsift.models.base import load_model
from altsift.signals.base import Batch, Columns, ModelOptions, Resources, Signal, batch_len, ok_rows, scatter
from altsift.signals.registry import register_signal

#: SIEVE's phrase list (the one its code uses), in its order.
REMOVE_PHRASES: tuple[str, ...] = (
    "an image of",
    "a photo of",
    "stock photo",
    "photo stock",
    "a photo",
    "an image",
    "image",
    "photo",
)

#: SIEVE's longer list (defined but unused in its code), in its order.
REMOVE_PHRASES_LONG: tuple[str, ...] = (
    "an image of",
    "a photo of",
    "an icon of",
    "an illustration of",
    "a template of",
    "a thumbnail of",
    "a vector of",
    "photo stock",
    "stock photo",
    "a photo",
    "an image",
    "an icon",
    "an illustration",
    "a template",
    "a thumbnail",
    "image",
    "photo",
    "icon",
    "illustration",
    "template",
    "vector",
    "thumbnail",
    "free",
    "print",
    "sale",
    "quot",
    "png",
    "jpeg",
    "jpg",
)

PHRASE_LISTS: dict[str, tuple[str, ...]] = {
    "sieve": REMOVE_PHRASES,
    "sieve_long": REMOVE_PHRASES_LONG,
    "none": (),
}


@lru_cache(maxsize=64)
def compile_phrases(phrases: tuple[str, ...], word_boundaries: bool = False) -> tuple[re.Pattern[str], ...]:
    """Case-insensitive patterns for ``phrases`` (escaped literals; ``\\b`` around them if asked)."""
    wrap = r"\b{}\b" if word_boundaries else "{}"
    return tuple(re.compile(wrap.format(re.escape(p)), re.IGNORECASE) for p in phrases)


def mask_phrases(
    texts: Sequence[str],
    phrases: Sequence[str] = REMOVE_PHRASES,
    word_boundaries: bool = False,
    collapse_whitespace: bool = False,
) -> list[str]:
    """Remove ``phrases`` from every text, one phrase after the other in list order (SIEVE ``remove_phrases``).

    With the defaults this is SIEVE's exact behaviour: substring matches ("images" -> "s"), case-insensitive,
    whitespace untouched. ``word_boundaries`` only removes whole words/phrases; ``collapse_whitespace``
    then joins the remaining words with single spaces (and strips the ends).
    """
    pats = compile_phrases(tuple(phrases), word_boundaries)
    out = []
    for t in texts:
        for p in pats:
            t = p.sub("", t)
        if collapse_whitespace:
            t = " ".join(t.split())
        out.append(t)
    return out


#: where the BLIP-base 14M checkpoint is looked up (a name under $ALTSIFT_MODELS_DIR, or set a path)
SIEVE_CAPTIONER = "blip-base-14M"


def sieve_caption_defaults() -> dict[str, Any]:
    """Options of the ``caption`` signal that reproduce SIEVE's captioning (``webdataset_inference.py``).

    - BLIP ViT-B *pre-trained on 14M images* (``model_base_14M.pth``), not COCO-finetuned. There is no
      official transformers port: convert it to a ``BlipForConditionalGeneration`` directory and point
      ``model`` at it (default: ``$ALTSIFT_MODELS_DIR/blip-base-14M``). ``Salesforce/blip-image-captioning-base``
      is a COCO captioner and would be a deviation.
    - Prompt ``"a picture of "``, stripped from the output.
    - 8 nucleus samples per image: ``top_p`` 0.9, ``repetition_penalty`` 1.1, temperature 1.0 and
      ``top_k`` 50 (HF's default in SIEVE's pinned transformers 4.30, so it applied too).
    - ``min_length`` 5 / ``max_length`` 20 counting the 4 prompt tokens (``[DEC] a picture of``), as HF
      ``generate`` does: at least 1 and at most 16 new tokens; the ``*_new_tokens`` limits are off.
    - Images: open_clip's ViT-B-32 validation transform, which ``webdataset_inference.py`` applies before
      BLIP (``blip_decoder(image_size=224)``): short side to 224 with bicubic resampling, center crop
      224 x 224, OpenAI CLIP mean/std. transformers' BLIP image processor would squash to 384 x 384
      instead; these options make the adapter do SIEVE's transform itself.
    """
    return {
        "model": SIEVE_CAPTIONER,
        "backend": "blip",
        "prompt": "a picture of ",
        "do_sample": True,
        "num_beams": 1,
        "num_return_sequences": 8,
        "top_p": 0.9,
        "top_k": 50,
        "temperature": 1.0,
        "min_length": 5,
        "max_length": 20,
        "min_new_tokens": None,
        "max_new_tokens": None,
        "repetition_penalty": 1.1,
        "image_size": 224,
        "resize": "shortest_side",
        "crop": "center",
        "interpolation": "bicubic",
        "normalize": "clip",
    }


class SieveOptions(ModelOptions):
    """Options of the ``sieve`` signal (defaults = SIEVE's official code)."""

    batch_size: int = Field(128, ge=1, description="sentences per encoder forward pass")
    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2", description="sentence encoder (hub id or dir)"
    )
    caption_column: str = Field(
        "synthetic_captions", description="list[str] column written by `caption` (a str column: one caption)"
    )
    num_captions: int | None = Field(8, ge=1, description="use the first N captions per row (None: all)")
    phrases: Literal["sieve", "sieve_long", "none"] = Field(
        "sieve", description="medium-phrase list: SIEVE's REMOVE_PHRASES, REMOVE_PHRASES_LONG, or no masking"
    )
    extra_phrases: list[str] = Field(default_factory=list, description="phrases removed after the list")
    word_boundaries: bool = Field(False, description="match phrases as whole words (SIEVE: substrings)")
    collapse_whitespace: bool = Field(False, description="squeeze spaces left by masking (SIEVE: no)")
    empty_caption_score: float | None = Field(
        0.0,
        description="score when the best caption is empty after masking (SIEVE: 0.0; None keeps the cosine)",
    )
    best_caption: Literal["masked", "original"] = Field(
        "masked", description="write the masked best caption (as SIEVE does) or the caption as generated"
    )
    mean: Literal["unmasked", "masked", "none"] = Field(
        "unmasked",
        description="sieve_mean over the captions of unmasked texts (SIEVE's cap_mean, first pass), of masked "
        "texts, or not computed",
    )
    dedupe: bool = Field(True, description="embed each distinct string of a batch once")


@register_signal
class SieveSignal(Signal):
    """Max cosine between the masked alt-text and the masked synthetic captions (sentence encoder)."""

    name = "sieve"
    Options = SieveOptions
    columns = ("sieve_score", "sieve_mean", "sieve_best_caption")
    column_types = {
        "sieve_score": pa.float64(),
        "sieve_mean": pa.float64(),
        "sieve_best_caption": pa.string(),
    }
    resources = Resources(cpus=1, gpus=0.5, memory_gb=1)
    requires = ("caption",)
    needs_image = False
    #: ``--signals sieve`` captions as SIEVE does unless the user sets ``caption.*`` (their keys win)
    requirement_defaults = {"caption": sieve_caption_defaults()}
    options: SieveOptions

    def __init__(self, options: SieveOptions | dict[str, Any] | None = None, encoder: Any = None) -> None:
        super().__init__(options)
        o = self.options
        self.phrases = PHRASE_LISTS[o.phrases] + tuple(o.extra_phrases)
        if encoder is None:
            encoder = load_model("text", o.spec(), default_backend="sentence_transformers")
        self.encoder = encoder

    def required_signals(self) -> tuple[str, ...]:
        return ("caption",)

    def output_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != "sieve_mean" or self.options.mean != "none")

    def mask(self, texts: Sequence[str]) -> list[str]:
        o = self.options
        return mask_phrases(texts, self.phrases, o.word_boundaries, o.collapse_whitespace)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """One encoder call for all strings (each distinct string once when ``dedupe``)."""
        if not self.options.dedupe:
            return self.encoder.encode(texts)
        uniq: dict[str, int] = {}
        inv = np.fromiter((uniq.setdefault(t, len(uniq)) for t in texts), dtype=np.int64, count=len(texts))
        return self.encoder.encode(list(uniq))[inv]

    def __call__(self, batch: Batch) -> Columns:
        o = self.options
        n = batch_len(batch)
        texts, caps_col = batch["text"], batch.get(o.caption_column)
        if caps_col is None:
            raise KeyError(f"sieve needs the '{o.caption_column}' column (run the caption signal first)")
        rows, alt, caps, owner = [], [], [], []
        for i in ok_rows(batch):
            c = caps_col[i]
            if isinstance(c, str):  # a plain text column: one caption
                c = [c]
            c = (
                []
                if c is None or texts[i] is None
                else [str(x) for x in c if x is not None][: o.num_captions]
            )
            if not c:
                continue
            rows.append(i)
            alt.append(texts[i])
            caps.extend(c)
            owner.extend([len(rows) - 1] * len(c))
        cols = self.output_columns()
        if not rows:
            return {c: [None] * n for c in cols}
        m_alt, m_caps = self.mask(alt), self.mask(caps)
        k, owner_a = len(rows), np.asarray(owner)
        raw = o.mean == "unmasked"
        emb = self._embed(m_alt + m_caps + (alt + caps if raw else []))
        # cos(alt-text of the row, each caption), on masked texts (the score) and, for the mean, unmasked
        sims = np.einsum("ij,ij->i", emb[k : k + len(caps)], emb[:k][owner_a])
        if raw:
            r0 = k + len(caps)
            mean_sims = np.einsum("ij,ij->i", emb[r0 + k :], emb[r0 : r0 + k][owner_a])
        else:
            mean_sims = sims
        starts = np.flatnonzero(np.r_[True, owner_a[1:] != owner_a[:-1]])
        mx = np.maximum.reduceat(sims, starts)
        mean = np.add.reduceat(mean_sims, starts) / np.diff(np.r_[starts, len(sims)])
        scores, best = [], []
        shown = m_caps if o.best_caption == "masked" else caps
        for r, (s, e) in enumerate(zip(starts, np.r_[starts[1:], len(sims)], strict=True)):
            k = s + int(np.argmax(sims[s:e]))  # first maximum, like torch.argmax
            score = float(mx[r])
            if len(m_caps[k]) == 0 and o.empty_caption_score is not None:
                score = float(o.empty_caption_score)
            scores.append(score)
            best.append(shown[k])
        out = {
            "sieve_score": scatter(n, rows, scores),
            "sieve_mean": scatter(n, rows, [float(x) for x in mean]),
            "sieve_best_caption": scatter(n, rows, best),
        }
        return {c: out[c] for c in cols}
