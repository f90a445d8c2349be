"""Signal ``text_removal``: RSA / RSC (Lin et al. 2023): CLIP score change when spotted text is inpainted.

For each image with a caption, with S = CLIP cosine(image, caption) and the same caption throughout:
  - ``clip_score_raw`` = S(raw image)
  - ``clip_score_all_removed`` = S(Telea inpainting inside every OCR polygon: All-Emb. text)
  - ``clip_score_co_removed`` = S(inpainting inside the polygons holding Co-Emb. text: words also in
    the caption, exact Algorithm-1 tokens by default, ``co_match=fuzzy`` for the fuzzy rules)
  - ``rsa`` = raw - all_removed, ``rsc`` = raw - co_removed
  - random baselines (``random_source``): ``shifted`` (default) moves each of the row's own removed
    polygons to a random place in the same image (same shapes and area, placed to overlap the row's
    text as little as possible), seeded by ``seed`` and the row's uid only, so a row's value does not
    depend on which rows share its batch; ``batch`` (the old behaviour) borrows the polygons of another
    row of the same batch, mapped by relative coordinates. Columns ``clip_score_rand_all_removed``,
    ``clip_score_rand_co_removed``, ``rsa_rand``, ``rsc_rand`` (None when the row has no such text).
Not applicable is null (``not_applicable: null``, default): a row without spotted text gets null in
``clip_score_all_removed`` and ``rsa``, a row without Co-Emb. text null in ``clip_score_co_removed`` and
``rsc``, so ``rsa >= 0`` never selects text-free images. ``not_applicable: zero`` restores the old
output (the variant is the raw image: score = raw, rsa/rsc = 0). All variants of a batch go through one
encoder call.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import pyarrow as pa
from PIL import Image

from altsift.models.base import load_model
from altsift.signals.base import Batch, Columns, ModelOptions, Resources, Signal, batch_len, ok_rows, scatter
from altsift.signals.parrot import FuzzyRuleOptions, co_emb_boxes
from altsift.signals.registry import register_signal

Polygons = Sequence[Sequence[Sequence[float]]]


def polygon_mask(polygons: Polygons, width: int, height: int, dilation: int = 0) -> np.ndarray:
    """uint8 mask (255 inside ``polygons``), dilated by a ``(2*dilation+1)``-square kernel."""
    mask = np.zeros((height, width), np.uint8)
    if polygons:
        for p in polygons:  # one call per polygon: a multi-polygon fillPoly uses even-odd filling
            cv2.fillPoly(mask, [np.round(np.asarray(p, np.float64)).astype(np.int32)], 255)
        if dilation > 0:
            mask = cv2.dilate(mask, np.ones((2 * dilation + 1, 2 * dilation + 1), np.uint8))
    return mask


def inpaint(image: Image.Image, polygons: Polygons, radius: float = 3.0, dilation: int = 2) -> Image.Image:
    """Telea fast-marching inpainting (``cv2.INPAINT_TELEA``) inside ``polygons``; others untouched."""
    if not polygons:
        return image
    rgb = np.asarray(image.convert("RGB"))
    mask = polygon_mask(polygons, rgb.shape[1], rgb.shape[0], dilation)
    if not mask.any():
        return image
    out = cv2.inpaint(np.ascontiguousarray(rgb), mask, float(radius), cv2.INPAINT_TELEA)
    return Image.fromarray(out)


def rescale_polygons(
    polygons: Polygons, src: tuple[int, int], dst: tuple[int, int]
) -> list[list[list[float]]]:
    """Map polygons from a ``src`` (w, h) image to a ``dst`` (w, h) image by relative coordinates."""
    sx, sy = dst[0] / max(src[0], 1), dst[1] / max(src[1], 1)
    return [[[x * sx, y * sy] for x, y in p] for p in polygons]


def row_rng(seed: int, uid: object) -> np.random.Generator:
    """A generator that depends on ``seed`` and the row's uid only (not on the batch)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(uid).encode())])


def shifted_polygons(
    polygons: Polygons, size: tuple[int, int], rng: np.random.Generator, tries: int = 8, dilation: int = 0
) -> list[list[list[float]]]:
    """Each polygon translated to a random place inside a ``size`` (w, h) image (same shape and area).

    Of ``tries`` uniform candidate offsets per polygon, the one overlapping the input polygons' union
    (dilated by ``dilation``) least is kept, so the random region mostly covers non-text pixels.
    """
    w, h = size
    text = polygon_mask(polygons, w, h, dilation) > 0
    out = []
    for p in polygons:
        a = np.asarray(p, np.float64)
        lo = np.floor(a.min(axis=0))
        local = a - lo  # the polygon in its own bounding box
        bw, bh = (int(v) + 1 for v in np.ceil(local.max(axis=0)))
        shape = polygon_mask([local.tolist()], bw, bh) > 0
        best, best_overlap = a, np.inf
        for _ in range(max(1, tries)):
            x = int(rng.integers(0, max(w - bw, 0) + 1))
            y = int(rng.integers(0, max(h - bh, 0) + 1))
            win = text[y : y + bh, x : x + bw]
            overlap = int(win[shape[: win.shape[0], : win.shape[1]]].sum())
            if overlap < best_overlap:
                best, best_overlap = local + [x, y], overlap
            if overlap == 0:
                break
        out.append(best.tolist())
    return out


def as_polygons(value: object) -> list[list[list[float]]]:
    """Polygons from a batch cell (lists, or numpy object arrays when read back from parquet)."""
    if value is None:
        return []
    return [[[float(x), float(y)] for x, y in poly] for poly in value]


class TextRemovalOptions(ModelOptions, FuzzyRuleOptions):
    """Inpainting options; the fuzzy matcher's rules (for ``co_match=fuzzy``) are the parrot signal's."""

    model: str = "openai/clip-vit-base-patch32"
    radius: float = 3.0
    dilation: int = 2
    co_match: Literal["exact", "fuzzy"] = "exact"
    random_baselines: bool = True
    random_source: Literal["shifted", "batch"] = "shifted"
    shift_tries: int = (
        8  # candidate placements per polygon for random_source=shifted (least text overlap wins)
    )
    seed: int = 42
    not_applicable: Literal["null", "zero"] = "null"
    max_side: int | None = None  # downscale (image and polygons) before inpainting; None = source size
    score_rows_without_text: bool = True


@register_signal
class TextRemovalSignal(Signal):
    """RSA / RSC and their random-polygon baselines with a CLIP image-text encoder."""

    name = "text_removal"
    Options = TextRemovalOptions
    requires = ("ocr",)
    needs_image = True
    columns = (
        "clip_score_raw",
        "clip_score_all_removed",
        "clip_score_co_removed",
        "rsa",
        "rsc",
        "clip_score_rand_all_removed",
        "clip_score_rand_co_removed",
        "rsa_rand",
        "rsc_rand",
    )
    column_types = {c: pa.float64() for c in columns}
    resources = Resources(cpus=1, gpus=1, memory_gb=2)

    def __init__(
        self, options: TextRemovalOptions | dict | None = None, encoder: object | None = None
    ) -> None:
        super().__init__(options)
        o = self.options
        self.encoder = encoder if encoder is not None else load_model("image_text", o.spec(), "hf_clip")

    def output_columns(self) -> tuple[str, ...]:
        return self.columns if self.options.random_baselines else self.columns[:5]

    def __call__(self, batch: Batch) -> Columns:
        o = self.options
        n = batch_len(batch)
        idx = [
            i
            for i in ok_rows(batch, need_image=True)
            if batch["text"][i] is not None and batch["has_text"][i] is not None
        ]
        if not o.score_rows_without_text:
            idx = [i for i in idx if batch["has_text"][i]]
        images, all_polys, co_polys = [], [], []
        rules = o.rules()
        for i in idx:
            im = batch["image"][i].convert("RGB")
            polys = as_polygons(batch["ocr_polygons"][i])
            strings = [] if batch["ocr_strings"][i] is None else [str(s) for s in batch["ocr_strings"][i]]
            co = co_emb_boxes(strings, batch["text"][i], fuzzy=o.co_match == "fuzzy", rules=rules)
            if o.max_side and max(im.size) > o.max_side:
                s = o.max_side / max(im.size)
                dst = (max(1, round(im.width * s)), max(1, round(im.height * s)))
                polys = rescale_polygons(polys, im.size, dst)
                im = im.resize(dst, Image.BICUBIC)
            images.append(im)
            all_polys.append(polys)
            co_polys.append([p for p, c in zip(polys, co, strict=True) if c])

        variants: list[Image.Image] = []
        slots: dict[str, list[int | None]] = {k: [] for k in ("raw", "all", "co", "rand_all", "rand_co")}

        def add(kind: str, im: Image.Image | None) -> None:
            if im is None:
                slots[kind].append(None)
            else:
                slots[kind].append(len(variants))
                variants.append(im)

        rng = np.random.default_rng(
            [o.seed, zlib.crc32("|".join(str(batch["uid"][i]) for i in idx).encode())]
        )
        donors_all = [r for r, p in enumerate(all_polys) if p]
        donors_co = [r for r, p in enumerate(co_polys) if p]
        for r, im in enumerate(images):
            add("raw", im)
            add("all", inpaint(im, all_polys[r], o.radius, o.dilation) if all_polys[r] else None)
            add("co", inpaint(im, co_polys[r], o.radius, o.dilation) if co_polys[r] else None)
            if not o.random_baselines:
                continue
            own_rng = row_rng(o.seed, batch["uid"][idx[r]])
            for kind, own, donors, pool in (
                ("rand_all", all_polys[r], donors_all, all_polys),
                ("rand_co", co_polys[r], donors_co, co_polys),
            ):
                if not own:
                    add(kind, None)
                elif o.random_source == "shifted":
                    polys = shifted_polygons(own, im.size, own_rng, o.shift_tries, o.dilation)
                    add(kind, inpaint(im, polys, o.radius, o.dilation))
                else:
                    others = [d for d in donors if d != r]
                    if not others:
                        add(kind, None)
                        continue
                    d = others[int(rng.integers(len(others)))]
                    polys = rescale_polygons(pool[d], images[d].size, im.size)
                    add(kind, inpaint(im, polys, o.radius, o.dilation))

        if variants:
            img_emb = np.asarray(self.encoder.encode_images(variants), dtype=np.float32)
            txt_emb = np.asarray(self.encoder.encode_texts([batch["text"][i] for i in idx]), dtype=np.float32)
            owner = np.empty(len(variants), dtype=np.int64)
            for kind in slots:
                for r, v in enumerate(slots[kind]):
                    if v is not None:
                        owner[v] = r
            scores = np.einsum("vd,vd->v", img_emb, txt_emb[owner]).astype(np.float64)
        else:
            scores = np.zeros(0)

        def col(kind: str, fallback_raw: bool) -> list[float | None]:
            out = []
            for r in range(len(images)):
                v = slots[kind][r] if kind in slots and slots[kind] else None
                if v is None and fallback_raw:
                    v = slots["raw"][r]
                out.append(None if v is None else float(scores[v]))
            return out

        def diff(a: list[float | None], b: list[float | None]) -> list[float | None]:
            return [None if x is None or y is None else x - y for x, y in zip(a, b, strict=True)]

        raw = col("raw", False)
        zero = o.not_applicable == "zero"
        all_s, co_s = col("all", zero), col("co", zero)
        res: Columns = {
            "clip_score_raw": scatter(n, idx, raw),
            "clip_score_all_removed": scatter(n, idx, all_s),
            "clip_score_co_removed": scatter(n, idx, co_s),
            "rsa": scatter(n, idx, diff(raw, all_s)),
            "rsc": scatter(n, idx, diff(raw, co_s)),
        }
        if o.random_baselines:
            ra, rc = col("rand_all", False), col("rand_co", False)
            res["clip_score_rand_all_removed"] = scatter(n, idx, ra)
            res["clip_score_rand_co_removed"] = scatter(n, idx, rc)
            res["rsa_rand"] = scatter(n, idx, diff(raw, ra))
            res["rsc_rand"] = scatter(n, idx, diff(raw, rc))
        return res
