"""``clip`` signal: CLIP image-text cosine similarity (DataComp ``clip_b32_similarity_score`` semantics).

``clip_score`` = cosine of the L2-normalised image and text embeddings (not multiplied by 100).
Options add per-shard embedding arrays (``clip_image_emb`` / ``clip_text_emb``, written by the runner
to ``RUN_DIR/arrays/<col>/<shard>.npy``) and scores of other text columns against the same image,
e.g. ``extra_texts: {synthetic_caption: clip_score_synthetic}`` (a column holding a list of strings
gives a list of scores).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from altsift.models.base import load_model
from altsift.models.hf_clip import DEFAULT_MODEL
from altsift.signals.base import (
    Batch,
    Columns,
    ModelOptions,
    Resources,
    Signal,
    batch_len,
    ok_rows,
    scatter,
    scatter_rows,
)
from altsift.signals.registry import register_signal


class ClipOptions(ModelOptions):
    model: str = Field(DEFAULT_MODEL, description="hub id, local checkpoint dir or file")
    backend: str = Field("auto", description="hf_clip | open_clip | mini | auto")
    save_embeddings: bool = Field(False, description="also return clip_image_emb / clip_text_emb arrays")
    extra_texts: dict[str, str] = Field(
        default_factory=dict, description="other text columns to score against the image: {column: output}"
    )
    extra_texts_from: list[str] | None = Field(
        None, description="signals producing the extra_texts columns (default: ['caption'] when set)"
    )
    text_clean: Literal["openai", "none"] = Field(
        "openai",
        description="hf_clip: clean texts as OpenAI CLIP's / open_clip's tokenizer does (ftfy, HTML entities, "
        "whitespace, lower case) before the checkpoint's tokenizer; none: the tokenizer alone",
    )

    def spec(self) -> Any:
        spec = super().spec()
        spec.options = {"text_clean": self.text_clean}
        return spec


@register_signal
class ClipSignal(Signal):
    """CLIP score of each (image, text) pair, plus optional embeddings and extra-text scores."""

    name = "clip"
    Options = ClipOptions
    columns = ("clip_score",)
    column_types = {"clip_score": pa.float64()}
    resources = Resources(cpus=1, gpus=1, memory_gb=2)
    array_columns = ("clip_image_emb", "clip_text_emb")
    needs_image = True
    options: ClipOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.model = load_model("image_text", self.options.spec(), default_backend="hf_clip")

    def output_columns(self) -> tuple[str, ...]:
        return ("clip_score", *self.options.extra_texts.values())

    def output_schema(self, upstream: Mapping[str, pa.DataType] | None = None) -> dict[str, pa.DataType]:
        """``clip_score`` float; an extra text column gives float, or list<float> when it holds lists."""
        up = upstream or {}
        out = {"clip_score": pa.float64()}
        for col, dest in self.options.extra_texts.items():
            t = up.get(col)
            is_list = t is not None and (pa.types.is_list(t) or pa.types.is_large_list(t))
            out[dest] = pa.list_(pa.float64()) if is_list else pa.float64()
        return out

    def output_array_columns(self) -> tuple[str, ...]:
        return self.array_columns if self.options.save_embeddings else ()

    def required_signals(self) -> tuple[str, ...]:
        if not self.options.extra_texts:
            return ()
        src = self.options.extra_texts_from
        return tuple(src) if src is not None else ("caption",)

    def __call__(self, batch: Batch) -> Columns:
        n = batch_len(batch)
        rows = ok_rows(batch, need_image=True)
        texts = batch["text"]
        trows = [j for j, i in enumerate(rows) if isinstance(texts[i], str)]
        images = [batch["image"][i] for i in rows]
        # the alt-texts and every extra text go through the text tower in one call: one length-bucketing window
        all_texts = [texts[rows[j]] for j in trows]
        extras = []
        for col, dest in self.options.extra_texts.items():
            flat, owner = _flatten(batch.get(col), rows)
            extras.append((col, dest, len(all_texts), flat, owner))
            all_texts.extend(flat)
        img = emb = None
        if rows and all_texts and hasattr(self.model, "encode_pairs"):
            img, emb = self.model.encode_pairs(images, all_texts)  # image resizing overlaps the text tower
        elif rows:
            img = self.model.encode_images(images)
            emb = self.model.encode_texts(all_texts) if all_texts else None
        out: Columns = {}
        scores: list[Any] = [None] * len(rows)
        txt = emb[: len(trows)] if emb is not None and trows else None
        if txt is not None:
            sims = np.einsum("nd,nd->n", img[trows], txt)
            for j, s in zip(trows, sims, strict=True):
                scores[j] = float(s)
        out["clip_score"] = scatter(n, rows, scores)
        for col, dest, start, flat, owner in extras:
            e = emb[start : start + len(flat)] if flat else None
            out[dest] = scatter(n, rows, _assemble(batch.get(col), rows, img, e, owner))
        if self.options.save_embeddings:
            d = img.shape[1] if img is not None else int(getattr(self.model, "embed_dim", 0))
            img_full = scatter_rows(n, rows, img if img is not None else np.zeros((0, d), np.float32))
            tfull = np.full((len(rows), d), np.nan, dtype=np.float32)
            if txt is not None:
                tfull[trows] = txt
            out["clip_image_emb"] = img_full
            out["clip_text_emb"] = scatter_rows(n, rows, tfull)
        return out


def _flatten(values: Any, rows: list[int]) -> tuple[list[str], list[int]]:
    """The strings of an extra text column for ``rows`` (str or list of str per row) and their row index."""
    flat: list[str] = []
    owner: list[int] = []
    if values is None:
        return flat, owner
    for j, i in enumerate(rows):
        v = values[i]
        items = [v] if isinstance(v, str) else list(v) if isinstance(v, list | tuple) else []
        for t in items:
            if isinstance(t, str):
                flat.append(t)
                owner.append(j)
    return flat, owner


def _assemble(
    values: Any, rows: list[int], img: np.ndarray | None, emb: np.ndarray | None, owner: list[int]
) -> list[Any]:
    """Cosine of each row's image with its text(s): str -> float, list of str -> list of floats."""
    res: list[Any] = [None] * len(rows)
    if values is None or img is None or emb is None:
        return res
    sims = np.einsum("nd,nd->n", img[owner], emb)
    for j, i in enumerate(rows):
        v = values[i]
        if isinstance(v, str) or (isinstance(v, list | tuple) and v):
            res[j] = [] if not isinstance(v, str) else None
    for o, s in zip(owner, sims, strict=True):
        if isinstance(values[rows[o]], str):
            res[o] = float(s)
        else:
            res[o].append(float(s))
    return res
