"""Text spotters (role ``spotter``): RapidOCR (default, offline PP-OCRv4 ONNX), Tesseract, plug-in slot.

Every spotter implements :class:`altsift.models.base.TextSpotter`: ``spot(images) -> list[list[TextBox]]``
with one list of boxes per image, polygons in source-image pixel coordinates, boxes in reading order.

Backends
  - ``rapidocr``: ``rapidocr_onnxruntime`` with its bundled PP-OCRv4 det/rec + mobile cls models
    (``model: PP-OCRv4`` or ``bundled``), or a local folder holding ``*det*.onnx``, ``*rec*.onnx`` and
    optionally ``*cls*.onnx``. The recogniser is the Chinese PP-OCRv4 model: it sometimes drops spaces
    (``Region-basedsegmentation``), see ``docs/parrot.md`` for how CoTR-fuzzy absorbs this.
  - ``tesseract``: the ``tesseract`` binary (``apt-get install tesseract-ocr``) via subprocess, TSV
    output, word-level boxes; ``model`` is the language (``eng``). One process per batch.
  - DeepSolo-class spotters (the paper's model; needs detectron2/AdelaiDet, not bundled): subclass
    :class:`PolygonSpotter`, implement ``predict(images_rgb)`` returning polygons/strings/scores per
    image, and register a loader::

        @register_backend("spotter", "deepsolo")
        def _load(spec: ModelSpec) -> TextSpotter:
            return MyDeepSolo(spec.model, device=spec.device)

    then run with ``--set ocr.backend=deepsolo --set ocr.model=/path/to/checkpoint``.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from altsift.errors import ModelNotFoundError
from altsift.models.base import ModelSpec, TextBox, TextSpotter, locate, model_not_found, register_backend

BUNDLED_NAMES = ("PP-OCRv4", "pp-ocrv4", "bundled", "rapidocr", "default")


def reading_order(boxes: Sequence[TextBox]) -> list[TextBox]:
    """Sort boxes top-to-bottom into lines (centre-y within half a median box height), then left-to-right."""
    if len(boxes) < 2:
        return list(boxes)
    pts = [np.asarray(b.polygon, dtype=np.float64) for b in boxes]
    cy = np.array([p[:, 1].mean() for p in pts])
    h = np.array([max(p[:, 1].max() - p[:, 1].min(), 1.0) for p in pts])
    x0 = np.array([p[:, 0].min() for p in pts])
    tol = 0.5 * float(np.median(h))
    order = np.argsort(cy, kind="stable")
    lines: list[list[int]] = []
    line_y = -np.inf
    for i in order:
        if not lines or cy[i] - line_y > tol:
            lines.append([int(i)])
            line_y = cy[i]
        else:
            lines[-1].append(int(i))
    return [boxes[i] for line in lines for i in sorted(line, key=lambda j: x0[j])]


def count_words(boxes: Sequence[TextBox]) -> int:
    """Whitespace words over all recognised strings."""
    return sum(len(b.text.split()) for b in boxes)


def split_line(
    polygon: Sequence[Sequence[float]],
    text: str,
    score: float,
    char_boxes: Sequence[Sequence[Sequence[float]]] | None = None,
    chars: Sequence[str] | None = None,
) -> list[TextBox]:
    """Split a line box into one box per whitespace word, in reading order.

    The line quad ``p0 p1 p2 p3`` (top-left, top-right, bottom-right, bottom-left, any rotation) is cut
    across its reading axis. Where the recogniser's per-character boxes are given (RapidOCR
    ``return_word_box``, ``chars`` = its characters, spaces included, matching ``text``), a word spans
    the projections of its characters' boxes on the axis; otherwise its share of the character
    positions (character-position geometry: word ``[a, b)`` of ``len(text)`` characters spans
    ``a / len .. b / len`` of the line).
    """
    words = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    poly = np.asarray(polygon, np.float64)
    if len(words) <= 1 or poly.shape != (4, 2):
        return [TextBox([(float(x), float(y)) for x, y in poly], text.strip(), float(score))]
    p0, p1, p2, p3 = poly
    axis = p1 - p0
    length2 = float(axis @ axis) or 1.0
    use_chars = (
        char_boxes is not None
        and chars is not None
        and len(char_boxes) == len(text)
        and "".join(chars) == text
    )
    out = []
    for a, b, word in words:
        if use_chars:
            pts = np.concatenate([np.asarray(char_boxes[k], np.float64).reshape(-1, 2) for k in range(a, b)])
            t = (pts - p0) @ axis / length2
            t0, t1 = float(np.clip(t.min(), 0, 1)), float(np.clip(t.max(), 0, 1))
        else:
            t0, t1 = a / len(text), b / len(text)
        quad = [p0 + t0 * (p1 - p0), p0 + t1 * (p1 - p0), p3 + t1 * (p2 - p3), p3 + t0 * (p2 - p3)]
        out.append(TextBox([(float(x), float(y)) for x, y in quad], word, float(score)))
    return out


def width_batches(widths: Sequence[int], max_batch: int, slack: float) -> list[list[int]]:
    """Group indices of ``widths`` into recogniser batches, narrowest first.

    A batch is padded to its widest member, so a crop joins the current batch only while
    ``len(batch) * widest <= (1 + slack) * sum(widths in batch)`` and the batch holds fewer than
    ``max_batch`` crops; otherwise it starts a new batch.
    """
    batches: list[list[int]] = []
    total = 0
    for i in sorted(range(len(widths)), key=lambda j: widths[j]):
        b = batches[-1] if batches else None
        if (
            b is not None
            and len(b) < max_batch
            and (len(b) + 1) * widths[i] <= (1 + slack) * (total + widths[i])
        ):
            b.append(i)
            total += widths[i]
        else:
            batches.append([i])
            total = widths[i]
    return batches


def pad_quads(quads: np.ndarray, pad: float) -> np.ndarray:
    """Grow text quads ``(n, 4, 2)`` (``p0 p1 p2 p3`` = top-left, top-right, bottom-right, bottom-left)
    across their reading direction by ``pad`` times their height on each side.

    The height is the quad's shorter side; a quad taller than wide (vertical text) grows along ``p0 -> p1``.
    """
    if pad <= 0 or len(quads) == 0:
        return np.asarray(quads, np.float32)
    q = np.asarray(quads, np.float32).copy()
    along_h = q[:, 3] - q[:, 0]  # top -> bottom
    along_w = q[:, 1] - q[:, 0]  # left -> right
    vertical = np.linalg.norm(along_h, axis=1) > np.linalg.norm(along_w, axis=1)
    d = np.where(vertical[:, None], along_w, along_h) * np.float32(pad)
    sign = np.where(vertical[:, None, None], [[-1], [1], [1], [-1]], [[-1], [-1], [1], [1]]).astype(
        np.float32
    )
    return q + sign * d[:, None, :]


def extend_quads(quads: np.ndarray, ext: float) -> np.ndarray:
    """Grow text quads ``(n, 4, 2)`` along their reading direction by ``ext`` times their height at each end.

    DBNet's boxes often stop short of a line's first or last letters (thin, italic or faint glyph ends),
    and the recogniser then reads ``Archite`` for ``Architecture``; a CTC recogniser ignores the extra
    background. Vertical quads (taller than wide) grow along ``p0 -> p3``.
    """
    if ext <= 0 or len(quads) == 0:
        return np.asarray(quads, np.float32)
    q = np.asarray(quads, np.float32).copy()
    along_h = q[:, 3] - q[:, 0]
    along_w = q[:, 1] - q[:, 0]
    lh, lw = np.linalg.norm(along_h, axis=1), np.linalg.norm(along_w, axis=1)
    vertical = lh > lw
    long_vec = np.where(vertical[:, None], along_h, along_w)
    long_len, short_len = np.maximum(lh, lw), np.minimum(lh, lw)
    d = long_vec / np.maximum(long_len, 1e-6)[:, None] * (np.float32(ext) * short_len)[:, None]
    sign = np.where(vertical[:, None, None], [[-1], [-1], [1], [1]], [[-1], [1], [1], [-1]]).astype(
        np.float32
    )
    return q + sign * d[:, None, :]


class PolygonSpotter:
    """Base for spotters: subclasses implement :meth:`predict`; ``spot`` adds filtering and ordering."""

    min_score: float = 0.0

    def predict(self, images: Sequence[Image.Image]) -> list[list[tuple[Any, str, float]]]:
        """Per image: ``(polygon [[x, y], ...], text, score)`` in source pixel coordinates."""
        raise NotImplementedError

    def spot(self, images: Sequence[Image.Image]) -> list[list[TextBox]]:
        out = []
        for raw in self.predict(images):
            boxes = [
                TextBox([(float(x), float(y)) for x, y in poly], str(text).strip(), float(score))
                for poly, text, score in raw
                if str(text).strip() and float(score) >= self.min_score
            ]
            out.append(reading_order(boxes))
        return out


class RapidOCRSpotter(PolygonSpotter):
    """RapidOCR (PP-OCRv4 ONNX). ``workers`` engines run images in parallel threads (ORT frees the GIL).

    altsift drives RapidOCR's stages itself (detector, angle classifier, recogniser):
      - the detector sees the image resized by ``det_limit_side_len``/``det_limit_type``: ``max``
        scales the long side to the value, downscaling large images and upscaling small ones by at most
        ``det_max_upscale`` (1: never upscale), with the short side at least ``det_min_side`` (small
        text in wide images; this floor too upscales by at most ``det_max_upscale``); ``min`` scales the short side to the value (RapidOCR's default is min
        736). RapidOCR 1.4.4 itself ignores a ``max`` cap below 1500 px for images up to 1500 px (it
        raises the limit to 960/1500/2000 by image size), so altsift resizes first;
      - ``rec_on_source`` (default): text lines are cropped from the *source* image for the angle
        classifier and the recogniser, so small text keeps its pixels even when the detector ran on a
        downscaled image (``False``: crop the detector's image, as RapidOCR does);
      - ``min_chars``: a line needs at least this many letters/digits (a lone ``O`` on a coin or a
        texture is the commonest false positive on text-free photos);
      - ``second_pass``: weak detector responses that no box covers are re-detected upscaled
        (:meth:`_second_pass`, small or faint text);
      - ``det_thresh`` / ``box_thresh`` / ``unclip_ratio``: DBNet post-processing (pixel threshold of
        the probability map, mean probability a box needs, box growth; altsift 0.2 / 0.4 / 1.6, RapidOCR:
        0.3 / 0.5 / 1.6).
      - the recogniser runs on crops batched by width (:func:`width_batches`, ``rec_min_width``,
        ``rec_pad_slack``) instead of RapidOCR's batches of 6 padded to the widest crop and 320 px;
      - ``ort_arena``: the ONNX sessions are rebuilt with onnxruntime's CPU memory arena on.
    ``threads`` is onnxruntime's intra-op threads per engine; one thread per worker scales best.
    ``box_level``: ``word`` (default) splits each detected line into word boxes with the recogniser's
    character positions (:func:`split_line`), so Co-Emb. removal can inpaint single words; ``line``
    keeps RapidOCR's line boxes.
    """

    def __init__(
        self,
        model: str = "PP-OCRv4",
        det_limit_side_len: int = 704,
        det_limit_type: str = "max",
        threads: int = 1,
        workers: int = 1,
        min_score: float = 0.5,
        use_cls: bool = False,
        box_level: str = "word",
        rec_on_source: bool = True,
        box_thresh: float = 0.4,
        unclip_ratio: float = 1.6,
        det_thresh: float = 0.2,
        second_pass: bool = True,
        second_pass_scale: float = 2.0,
        second_pass_low: float = 0.05,
        second_pass_max_area: float = 0.5,
        min_chars: int = 2,
        det_min_side: int = 576,
        det_max_upscale: float = 1.5,
        rec_min_width: int = 64,
        rec_pad_slack: float = 0.1,
        ort_arena: bool = True,
        space_retry_pad: float = 0.3,
        space_retry_len: int = 12,
        rec_extend: float = 0.0,
    ) -> None:
        from rapidocr_onnxruntime import RapidOCR

        if box_level not in ("word", "line"):
            raise ValueError(f"box_level must be 'word' or 'line', got {box_level!r}")
        if det_limit_type not in ("max", "min"):
            raise ValueError(f"det_limit_type must be 'max' or 'min', got {det_limit_type!r}")
        self.box_level, self.rec_on_source, self.use_cls = box_level, bool(rec_on_source), bool(use_cls)
        self.det_limit_side_len, self.det_limit_type = int(det_limit_side_len), det_limit_type
        self.second_pass, self.second_pass_scale = bool(second_pass), float(second_pass_scale)
        self.second_pass_low, self.second_pass_max_area = float(second_pass_low), float(second_pass_max_area)
        self.min_chars, self.det_min_side = int(min_chars), int(det_min_side)
        self.det_max_upscale = max(1.0, float(det_max_upscale))
        self.space_retry_pad, self.space_retry_len = max(0.0, float(space_retry_pad)), int(space_retry_len)
        self.rec_extend = max(0.0, float(rec_extend))
        self.rec_min_width, self.rec_pad_slack = max(8, int(rec_min_width)), max(0.0, float(rec_pad_slack))
        kwargs: dict[str, Any] = {
            "det_limit_side_len": 100_000,  # altsift resizes; the engine's own "max" rule must not
            "det_limit_type": "max",
            "intra_op_num_threads": int(threads),
            "inter_op_num_threads": 1,
            "text_score": float(min_score),
            "use_cls": bool(use_cls),
            "det_box_thresh": float(box_thresh),
            "det_unclip_ratio": float(unclip_ratio),
        }
        if model not in BUNDLED_NAMES:
            kwargs.update(_onnx_paths(model))
        self.min_score = float(min_score)
        self._engines = [RapidOCR(**kwargs) for _ in range(max(1, int(workers)))]
        for e in self._engines:
            e.text_det.postprocess_op.box_thresh = float(box_thresh)
            e.text_det.postprocess_op.unclip_ratio = float(unclip_ratio)
            e.text_det.postprocess_op.thresh = float(det_thresh)
            e.text_det.get_preprocess = _no_resize(e.text_det)
            if ort_arena:
                _arena_sessions(e, int(threads))
        self._pool = ThreadPoolExecutor(len(self._engines)) if len(self._engines) > 1 else None

    def det_scale(self, width: int, height: int) -> float:
        """Factor applied to the image before detection (upscaling stops at ``det_max_upscale``)."""
        if self.det_limit_type == "max":
            s = min(self.det_max_upscale, self.det_limit_side_len / max(width, height, 1))
            floor = min(self.det_min_side / max(min(width, height), 1), self.det_max_upscale)
            return max(s, floor)  # small text in wide images; never above det_max_upscale
        return self.det_limit_side_len / max(min(width, height), 1)

    @staticmethod
    def _detect(engine: Any, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DBNet on ``img`` as is: (boxes (n, 4, 2) in ``img`` pixels, probability map at ``img`` size)."""
        import cv2

        det = engine.text_det
        padded, record = engine.maybe_add_letterbox(img, {})
        x = det.get_preprocess(max(padded.shape[:2]))(padded)  # DetInput, installed by __init__
        if x is None:
            return np.zeros((0, 4, 2), np.float32), np.zeros(img.shape[:2], np.float32)
        pred = det.infer(x)[0]
        boxes, _ = det.postprocess_op(pred, padded.shape[:2])
        boxes = det.filter_tag_det_res(boxes, padded.shape[:2]) if len(boxes) else np.zeros((0, 4, 2))
        pad = record.get("padding_1", {"top": 0, "left": 0})
        prob = cv2.resize(pred[0, 0], (padded.shape[1], padded.shape[0]), interpolation=cv2.INTER_LINEAR)
        prob = prob[pad["top"] : pad["top"] + img.shape[0], pad["left"] : pad["left"] + img.shape[1]]
        arr = np.asarray(boxes, np.float32).reshape(-1, 4, 2) - np.float32([pad["left"], pad["top"]])
        return arr, prob

    def _second_pass(
        self, engine: Any, bgr: np.ndarray, s: float, boxes: np.ndarray, prob: np.ndarray
    ) -> list[np.ndarray]:
        """Re-detect, upscaled by ``second_pass_scale``, the regions where the first pass saw weak text.

        Candidates are connected regions of the first pass's probability map above ``second_pass_low``
        that no first-pass box covers (small or faint text DBNet half-sees at the lower resolution).
        Their padded bounding boxes are cropped from the source image and detected at ``s *
        second_pass_scale``, largest first, until ``second_pass_max_area`` of the first pass's
        detector pixels are spent. Returns boxes in source pixels.
        """
        import cv2

        cand = (prob > self.second_pass_low).astype(np.uint8)
        covered = np.zeros_like(cand)
        for b in boxes:
            cv2.fillPoly(covered, [np.round(b).astype(np.int32)], 1)
        covered = cv2.dilate(covered, np.ones((5, 5), np.uint8))
        cand[covered > 0] = 0
        cand = cv2.dilate(cand, np.ones((7, 21), np.uint8))  # join fragments of one line
        n, _, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        h, w = bgr.shape[:2]
        s2 = s * self.second_pass_scale
        budget = self.second_pass_max_area * prob.shape[0] * prob.shape[1]
        regions = sorted((tuple(int(v) for v in st) for st in stats[1:n] if st[4] >= 12), key=lambda r: -r[4])
        found: list[np.ndarray] = []
        for x, y, rw, rh, _ in regions:
            m = 2 * min(rh, rw) + 16  # margin: room for the rest of a half-seen line
            x0, y0 = max(0, int((x - m) / s)), max(0, int((y - m) / s))
            x1, y1 = min(w, int((x + rw + m) / s) + 1), min(h, int((y + rh + m) / s) + 1)
            cost = (x1 - x0) * (y1 - y0) * s2 * s2
            if cost > budget or x1 - x0 < 4 or y1 - y0 < 4:
                continue
            budget -= cost
            crop = cv2.resize(bgr[y0:y1, x0:x1], None, fx=s2, fy=s2, interpolation=cv2.INTER_LINEAR)
            sub, _ = self._detect(engine, crop)
            found += [b / np.float32(s2) + np.float32([x0, y0]) for b in sub]
        return found

    def _recognize(self, engine: Any, crops: list[np.ndarray], words: bool) -> list[tuple[Any, ...]]:
        """The recogniser on ``crops``, batched by width with little padding.

        RapidOCR pads every crop of a batch of 6 to the widest one and to at least 320 px (height 48);
        the recogniser's cost is linear in batch x width, so a short word padded to a long line's width
        costs several times its own. Here crops are sorted by width (at least ``rec_min_width``) and a
        batch grows only while its padded width stays within ``1 + rec_pad_slack`` of its crops' own.
        """
        rec = engine.text_rec
        img_h = int(rec.rec_image_shape[1])
        widths = [
            max(self.rec_min_width, int(np.ceil(img_h * c.shape[1] / max(c.shape[0], 1)))) for c in crops
        ]
        batches = width_batches(widths, int(rec.rec_batch_num), self.rec_pad_slack)
        out: list[Any] = [("", 0.0)] * len(crops)
        for b in batches:
            max_ratio = max(widths[i] for i in b) / img_h
            x = np.stack([rec.resize_norm_img(crops[i], max_ratio) for i in b]).astype(np.float32)
            ratios = [crops[i].shape[1] / max(crops[i].shape[0], 1) for i in b]
            res = rec.postprocess_op(rec.session(x)[0], words, wh_ratio_list=ratios, max_wh_ratio=max_ratio)
            for i, r in zip(b, res, strict=True):
                out[i] = r
        return out

    def _retry_spaces(
        self, engine: Any, src: np.ndarray, arr: np.ndarray, crops: list, rec: list, words: bool
    ) -> tuple[np.ndarray, list, list]:
        """Re-read lines holding a token of ``space_retry_len``+ characters from a taller crop.

        The PP-OCRv4 recogniser drops spaces when the crop hugs the text (``WinterInVermont``); a crop
        grown by ``space_retry_pad`` x its height on both sides across the text often restores them.
        The new read is kept only when it has the same characters apart from whitespace and more
        spaces, so this step can only insert spaces.
        """
        todo = [
            i
            for i, r in enumerate(rec)
            if max((len(t) for t in str(r[0]).split()), default=0) >= self.space_retry_len
        ]
        if not todo:
            return arr, crops, rec
        sh, sw = src.shape[:2]
        grown = pad_quads(arr[todo], self.space_retry_pad)
        grown[..., 0] = grown[..., 0].clip(0, sw)
        grown[..., 1] = grown[..., 1].clip(0, sh)
        new_crops = engine.get_crop_img_list(src, list(grown))
        new_rec = self._recognize(engine, new_crops, words)
        arr, crops, rec = arr.copy(), list(crops), list(rec)
        for k, i in enumerate(todo):
            old, new = str(rec[i][0]), str(new_rec[k][0])
            if "".join(new.split()) == "".join(old.split()) and new.count(" ") > old.count(" "):
                arr[i], crops[i], rec[i] = grown[k], new_crops[k], new_rec[k]
        return arr, crops, rec

    def _run(self, engine: Any, image: Image.Image) -> list[tuple[Any, ...]]:
        import cv2

        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # ~5x faster than a reversed-axis copy
        h, w = bgr.shape[:2]
        s = self.det_scale(w, h)
        small = bgr
        if s != 1.0:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        arr, prob = self._detect(engine, small)
        boxes = list(arr / np.float32([sx, sy]))  # source pixels
        if self.second_pass:
            boxes += self._second_pass(engine, bgr, s, arr, prob)
        if not boxes:
            return []
        arr = np.asarray(boxes, np.float32)
        if self.rec_on_source:
            src = bgr
        else:
            arr = arr * np.float32([sx, sy])
            src = small
        sh, sw = src.shape[:2]
        arr = extend_quads(arr, self.rec_extend)
        arr[..., 0] = arr[..., 0].clip(0, sw)
        arr[..., 1] = arr[..., 1].clip(0, sh)
        keep = [i for i, b in enumerate(arr) if min(np.ptp(b[:, 0]), np.ptp(b[:, 1])) >= 2]
        arr = arr[keep]
        if len(arr) == 0:
            return []
        crops = engine.get_crop_img_list(src, list(arr))
        if self.use_cls:
            crops, _, _ = engine.text_cls(crops)
        words = self.box_level == "word"
        rec = self._recognize(engine, crops, words)
        if self.space_retry_pad > 0:
            arr, crops, rec = self._retry_spaces(engine, src, arr, crops, rec, words)
        if words:
            rec = engine.cal_rec_boxes(crops, list(arr), rec)
        scale = np.float32([1.0, 1.0]) if self.rec_on_source else np.float32([1 / sx, 1 / sy])
        out = []
        for box, r in zip(arr, rec, strict=True):
            text, score = r[0], float(r[1])
            if score < self.min_score or not str(text).strip():
                continue
            cb = (np.asarray(r[2], np.float32) * scale).tolist() if words and len(r) > 2 and r[2] else None
            out.append(((box * scale).tolist(), text, score, cb, r[3] if words and len(r) > 3 else None))
        return out

    def spot(self, images: Sequence[Image.Image]) -> list[list[TextBox]]:
        out = []
        for raw in self.predict(images):
            lines = [
                (TextBox([(float(x), float(y)) for x, y in poly], str(text), float(score)), cb, ch)
                for poly, text, score, cb, ch in raw
                if sum(c.isalnum() for c in str(text)) >= max(self.min_chars, 1)
                and float(score) >= self.min_score
            ]
            by_id = {id(b): (cb, ch) for b, cb, ch in lines}
            ordered = reading_order([b for b, _, _ in lines])
            if self.box_level == "line":
                out.append([TextBox(b.polygon, b.text.strip(), b.score) for b in ordered])
            else:
                out.append(
                    [w for b in ordered for w in split_line(b.polygon, b.text, b.score, *by_id[id(b)])]
                )
        return out

    def predict(self, images: Sequence[Image.Image]) -> list[list[tuple[Any, str, float]]]:
        if self._pool is None:
            return [self._run(self._engines[0], im) for im in images]
        n = len(self._engines)
        chunks = [list(range(w, len(images), n)) for w in range(n)]

        def work(w: int) -> list[tuple[int, list]]:
            return [(i, self._run(self._engines[w], images[i])) for i in chunks[w]]

        out: list[list] = [[] for _ in images]
        for part in self._pool.map(work, range(n)):
            for i, r in part:
                out[i] = r
        return out


def _arena_sessions(engine: Any, threads: int) -> None:
    """Rebuild the engine's ONNX sessions with onnxruntime's CPU memory arena on (RapidOCR turns it off).

    The detector and recogniser see a new input shape at nearly every call; without the arena each
    call allocates its buffers afresh (about 13% of the OCR time on the hard set). Same graphs, same
    outputs; memory stays with the session between calls.
    """
    import onnxruntime as ort

    for holder in (engine.text_det.infer, engine.text_rec.session, engine.text_cls.infer):
        old = holder.session
        path = getattr(old, "_model_path", None)
        if not path:
            continue
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        opts.enable_cpu_mem_arena = True
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads, opts.inter_op_num_threads = max(1, threads), 1
        holder.session = ort.InferenceSession(path, sess_options=opts, providers=old.get_providers())


class DetInput:
    """RapidOCR's detector pre-processing (``DetPreProcess``) without its resize rule, in float32.

    Same output as ``DetPreProcess(limit=max side, "max")`` to < 1e-6: sides rounded to multiples of 32,
    ``(x / 255 - mean) / std``, NCHW float32. RapidOCR normalises in float64 over the whole image (about
    15 ms at 704 x 480 on one core); OpenCV's ``blobFromImage`` does it in about 1.5 ms.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean255 = tuple(float(m) * 255.0 for m in mean)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)

    def __call__(self, img: np.ndarray) -> np.ndarray | None:
        import cv2

        h, w = img.shape[:2]
        rh, rw = int(round(h / 32) * 32), int(round(w / 32) * 32)
        if rh <= 0 or rw <= 0:
            return None
        if (rh, rw) != (h, w):
            img = cv2.resize(img, (rw, rh))
        blob = cv2.dnn.blobFromImage(img, 1.0 / 255.0, mean=self.mean255)
        blob /= self.std
        return blob


def _no_resize(det: Any) -> Any:
    """RapidOCR's detector pre-processing without its own resize rule (altsift resized already)."""
    pre = DetInput(det.mean, det.std)

    def get_preprocess(max_wh: int) -> Any:
        return pre

    return get_preprocess


def _onnx_paths(model: str) -> dict[str, str]:
    """Find det/rec/cls ONNX files in a local folder (``$ALTSIFT_MODELS_DIR`` is searched too)."""
    spec = ModelSpec(model=model, backend="rapidocr")
    p = locate(model)
    if p is None or not p.is_dir():
        raise model_not_found("spotter", spec, "expected 'PP-OCRv4' (bundled) or a folder of ONNX models")
    found: dict[str, str] = {}
    for key in ("det", "rec", "cls"):
        hits = sorted(p.glob(f"*{key}*.onnx"))
        if hits:
            found[f"{key}_model_path"] = str(hits[0])
    if "det_model_path" not in found or "rec_model_path" not in found:
        raise model_not_found("spotter", spec, f"no *det*.onnx / *rec*.onnx in {p}")
    return found


class TesseractSpotter(PolygonSpotter):
    """Tesseract via its binary: word boxes (axis-aligned rectangles) from ``tsv`` output."""

    def __init__(
        self, lang: str = "eng", psm: int = 3, min_score: float = 0.5, binary: str = "tesseract"
    ) -> None:
        exe = shutil.which(binary)
        if exe is None:
            raise ModelNotFoundError(
                f"the Tesseract binary '{binary}' was not found on PATH. Install it (Debian/Ubuntu: "
                "`apt-get install tesseract-ocr`, macOS: `brew install tesseract`) or use the default "
                "backend `rapidocr` (--set ocr.backend=rapidocr)."
            )
        self.exe, self.lang, self.psm, self.min_score = exe, lang, int(psm), float(min_score)

    def predict(self, images: Sequence[Image.Image]) -> list[list[tuple[Any, str, float]]]:
        if not images:
            return []
        with tempfile.TemporaryDirectory(prefix="altsift_tess_") as d:
            paths = []
            for i, im in enumerate(images):
                path = Path(d) / f"{i:06d}.png"
                im.convert("RGB").save(path)
                paths.append(str(path))
            listing = Path(d) / "list.txt"
            listing.write_text("\n".join(paths) + "\n")
            cmd = [self.exe, str(listing), "stdout", "-l", self.lang, "--psm", str(self.psm), "tsv"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                msg = proc.stderr.strip()[-500:]
                if "Failed loading language" in msg or "traineddata" in msg:
                    raise ModelNotFoundError(
                        f"Tesseract has no '{self.lang}' language data ({msg}). Install it, e.g. "
                        f"`apt-get install tesseract-ocr-{self.lang}`."
                    )
                raise RuntimeError(f"tesseract failed (rc={proc.returncode}): {msg}")
        return parse_tesseract_tsv(proc.stdout, len(images))


def parse_tesseract_tsv(tsv: str, n_images: int) -> list[list[tuple[Any, str, float]]]:
    """Word rows (level 5) of Tesseract TSV per page; conf is mapped to [0, 1]."""
    out: list[list[tuple[Any, str, float]]] = [[] for _ in range(n_images)]
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") != "5" or not (row.get("text") or "").strip():
            continue
        page = int(row["page_num"]) - 1
        conf = float(row["conf"])
        if conf < 0 or not 0 <= page < n_images:
            continue
        x, y, w, h = (float(row[k]) for k in ("left", "top", "width", "height"))
        out[page].append(([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], row["text"], conf / 100.0))
    return out


def make_spotter(backend: str, model: str, options: dict[str, Any]) -> TextSpotter:
    """Build a spotter; built-in backends get ``options``, plug-in backends go through ``load_model``."""
    if backend in ("rapidocr", "auto"):
        keys = (
            "det_limit_side_len", "det_limit_type", "threads", "workers", "min_score", "use_cls", "box_level",
            "rec_on_source", "box_thresh", "unclip_ratio", "det_thresh", "second_pass", "second_pass_scale",
            "second_pass_low", "second_pass_max_area", "min_chars", "det_min_side", "det_max_upscale",
            "rec_min_width", "rec_pad_slack", "ort_arena",
            "space_retry_pad", "space_retry_len", "rec_extend",
        )  # fmt: skip
        return RapidOCRSpotter(model=model, **{k: v for k, v in options.items() if k in keys})
    if backend == "tesseract":
        lang = "eng" if model in BUNDLED_NAMES else model
        keys = ("psm", "min_score")
        return TesseractSpotter(lang=lang, **{k: v for k, v in options.items() if k in keys})
    from altsift.models.base import load_model

    return load_model("spotter", ModelSpec(model=model, backend=backend), "rapidocr")


@register_backend("spotter", "rapidocr")
def _load_rapidocr(spec: ModelSpec) -> TextSpotter:
    return RapidOCRSpotter(model=spec.model)


@register_backend("spotter", "tesseract")
def _load_tesseract(spec: ModelSpec) -> TextSpotter:
    return TesseractSpotter(lang="eng" if spec.model in BUNDLED_NAMES else spec.model)
