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
        char_boxes is not None and chars is not None and len(char_boxes) == len(text) and "".join(chars) == text
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

    ``det_limit_side_len``/``det_limit_type`` control the detector input size: ``max`` caps the long side
    (no upscaling), ``min`` scales the short side up/down to the value (RapidOCR default: min 736).
    ``threads`` is onnxruntime's intra-op threads per engine; one thread per worker scales best.
    ``box_level``: ``word`` (default) splits each detected line into word boxes with the recogniser's
    character positions (:func:`split_line`), so Co-Emb. removal can inpaint single words; ``line``
    keeps RapidOCR's line boxes.
    """

    def __init__(
        self,
        model: str = "PP-OCRv4",
        det_limit_side_len: int = 960,
        det_limit_type: str = "max",
        threads: int = 1,
        workers: int = 1,
        min_score: float = 0.5,
        use_cls: bool = True,
        box_level: str = "word",
    ) -> None:
        from rapidocr_onnxruntime import RapidOCR

        if box_level not in ("word", "line"):
            raise ValueError(f"box_level must be 'word' or 'line', got {box_level!r}")
        self.box_level = box_level

        kwargs: dict[str, Any] = {
            "det_limit_side_len": int(det_limit_side_len),
            "det_limit_type": det_limit_type,
            "intra_op_num_threads": int(threads),
            "inter_op_num_threads": 1,
            "text_score": float(min_score),
            "use_cls": bool(use_cls),
        }
        if model not in BUNDLED_NAMES:
            kwargs.update(_onnx_paths(model))
        self.min_score = float(min_score)
        self._engines = [RapidOCR(**kwargs) for _ in range(max(1, int(workers)))]
        self._pool = ThreadPoolExecutor(len(self._engines)) if len(self._engines) > 1 else None

    def _run(self, engine: Any, image: Image.Image) -> list[tuple[Any, ...]]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        if self.box_level == "line":
            res, _ = engine(bgr)
            return [(r[0], r[1], r[2]) for r in (res or [])]
        # passing any keyword resets box_thresh / unclip_ratio / text_score to these values in RapidOCR
        res, _ = engine(bgr, return_word_box=True, box_thresh=0.5, unclip_ratio=1.6, text_score=self.min_score)
        return [(r[0], r[1], r[2], r[3] if len(r) > 3 else None, r[4] if len(r) > 4 else None) for r in res or []]

    def spot(self, images: Sequence[Image.Image]) -> list[list[TextBox]]:
        if self.box_level == "line":
            return super().spot(images)
        out = []
        for raw in self.predict(images):
            lines = [
                (TextBox([(float(x), float(y)) for x, y in poly], str(text), float(score)), cb, ch)
                for poly, text, score, cb, ch in raw
                if str(text).strip() and float(score) >= self.min_score
            ]
            by_id = {id(b): (cb, ch) for b, cb, ch in lines}
            ordered = reading_order([b for b, _, _ in lines])
            out.append([w for b in ordered for w in split_line(b.polygon, b.text, b.score, *by_id[id(b)])])
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
        keys = ("det_limit_side_len", "det_limit_type", "threads", "workers", "min_score", "use_cls", "box_level")
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
