"""Signal ``ocr``: text spotting on the source-resolution image (Parrot captions, Lin et al. 2023).

Columns: ``has_text`` (any box), ``ocr_text`` (recognised strings joined by spaces, reading order),
``ocr_polygons`` (list of ``[[x, y], ...]`` in source pixels), ``ocr_strings``, ``ocr_scores``,
``ocr_text_area`` (fraction of the image covered by the union of polygons), ``ocr_num_words``,
``ocr_crowded`` (more than ``crowded_words`` words: the paper notes spotters fail on such scenes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from altsift.models.base import TextBox
from altsift.models.ocr import count_words, make_spotter
from altsift.signals.base import Batch, Columns, Resources, Signal, SignalOptions, batch_len, ok_rows, scatter
from altsift.signals.registry import register_signal


class OCROptions(SignalOptions):
    backend: str = "rapidocr"
    model: str = "PP-OCRv4"
    min_score: float = 0.5
    det_limit_side_len: int = 704
    det_limit_type: Literal["max", "min"] = "max"
    threads: int = 1
    workers: int = 1
    use_cls: bool = False  # rapidocr: 180-degree angle classifier (flipped correct lines on the hard set)
    box_level: Literal["word", "line"] = "word"  # rapidocr: split line boxes into word boxes
    rec_on_source: bool = True  # rapidocr: recognise crops of the source image, not the detector's
    det_thresh: float = 0.2  # rapidocr DBNet: probability-map threshold (RapidOCR: 0.3)
    box_thresh: float = 0.4  # rapidocr DBNet: mean probability a box needs (RapidOCR: 0.5)
    unclip_ratio: float = 1.6  # rapidocr DBNet: box growth
    second_pass: bool = True  # rapidocr: re-detect weak-response regions upscaled (small text)
    second_pass_scale: float = 2.0
    second_pass_low: float = 0.05
    second_pass_max_area: float = 0.5
    min_chars: int = 2  # rapidocr: letters/digits a line needs
    det_min_side: int = Field(576, ge=0)  # rapidocr, det_limit_type=max: short-side floor (0: off)
    det_max_upscale: float = Field(1.5, ge=1.0)  # rapidocr, max: small images upscaled up to this factor
    rec_min_width: int = Field(64, ge=8)  # rapidocr: recogniser input width floor (RapidOCR: 320, height 48)
    rec_pad_slack: float = Field(0.1, ge=0.0)  # rapidocr: padding a recogniser batch may add
    space_retry_pad: float = Field(0.3, ge=0.0)  # rapidocr: re-read space-less long lines from a taller crop
    space_retry_len: int = Field(12, ge=1)  # rapidocr: token length that triggers the re-read
    rec_extend: float = Field(
        0.0, ge=0.0
    )  # rapidocr: grow line boxes along the text by this x height per end
    ort_arena: bool = True  # rapidocr: onnxruntime's CPU memory arena (RapidOCR turns it off)
    psm: int = 3
    crowded_words: int = 100


def text_area(
    polygons: Sequence[Sequence[Sequence[float]]], width: int, height: int, max_side: int = 1024
) -> float:
    """Fraction of a ``width`` x ``height`` image covered by the union of ``polygons``.

    Rasterised with ``cv2.fillPoly`` on a grid whose long side is at most ``max_side`` pixels.
    """
    if not polygons or width <= 0 or height <= 0:
        return 0.0
    s = min(1.0, max_side / max(width, height))
    h, w = max(1, round(height * s)), max(1, round(width * s))
    mask = np.zeros((h, w), np.uint8)
    for p in polygons:  # one call per polygon: a multi-polygon fillPoly uses even-odd filling on overlaps
        cv2.fillPoly(mask, [np.round(np.asarray(p, np.float64) * s).astype(np.int32)], 1)
    return float(mask.mean())


def boxes_to_columns(boxes: list[TextBox], width: int, height: int, crowded_words: int) -> dict[str, object]:
    """One row of ``ocr`` outputs from the boxes of one image."""
    polys = [[[float(x), float(y)] for x, y in b.polygon] for b in boxes]
    n_words = count_words(boxes)
    return {
        "has_text": bool(boxes),
        "ocr_text": " ".join(b.text for b in boxes),
        "ocr_polygons": polys,
        "ocr_strings": [b.text for b in boxes],
        "ocr_scores": [float(b.score) for b in boxes],
        "ocr_text_area": text_area(polys, width, height),
        "ocr_num_words": int(n_words),
        "ocr_crowded": bool(n_words > crowded_words),
    }


@register_signal
class OCRSignal(Signal):
    """Spot text in each image (RapidOCR by default) at source resolution."""

    name = "ocr"
    Options = OCROptions
    columns = (
        "has_text",
        "ocr_text",
        "ocr_polygons",
        "ocr_strings",
        "ocr_scores",
        "ocr_text_area",
        "ocr_num_words",
        "ocr_crowded",
    )
    column_types = {
        "has_text": pa.bool_(),
        "ocr_text": pa.string(),
        "ocr_polygons": pa.list_(pa.list_(pa.list_(pa.float64()))),
        "ocr_strings": pa.list_(pa.string()),
        "ocr_scores": pa.list_(pa.float64()),
        "ocr_text_area": pa.float64(),
        "ocr_num_words": pa.int64(),
        "ocr_crowded": pa.bool_(),
    }
    resources = Resources(cpus=1, memory_gb=1)  # single-threaded ONNX: scale out with many CPU actors
    needs_image = True

    def __init__(self, options: OCROptions | dict | None = None) -> None:
        super().__init__(options)
        o = self.options
        self.spotter = make_spotter(o.backend, o.model, o.model_dump())

    def __call__(self, batch: Batch) -> Columns:
        n = batch_len(batch)
        idx = ok_rows(batch, need_image=True)
        images = [batch["image"][i] for i in idx]
        results = self.spotter.spot(images) if images else []
        rows = [
            boxes_to_columns(boxes, im.width, im.height, self.options.crowded_words)
            for boxes, im in zip(results, images, strict=True)
        ]
        return {c: scatter(n, idx, [r[c] for r in rows]) for c in self.columns}
