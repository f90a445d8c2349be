"""Parrot detection on hard rendered images: altsift ``ocr`` + ``parrot`` vs plain RapidOCR, one run.

A held-out style set built deterministically from a seed (no image is stored): real LAION alt-texts
(``tests/data/laion_alt_texts_200.parquet``, img2dataset test files, MIT) rendered over real photos
and textures from ``skimage.data`` with

  - 1-3 text regions per image (a caption's words spread over several places, wrapped lines),
  - small to medium text (cap height from 9 px), several system fonts (``fc-list``: DejaVu and
    Liberation families, regular/bold/italic/condensed/mono/serif), random colours, outlines, shadows
    or translucent bands,
  - rotation (up to +-30 degrees), perspective warps, busy backgrounds, image sizes 360-1400 px and
    JPEG artefacts (quality 30-90).

Splits: ``--split dev`` uses seed 0, even-numbered texts and even-numbered fonts; ``--split heldout``
uses seed 1, odd texts and odd fonts (tune on dev, report on heldout). Four kinds, cycled: ``full``
(caption = rendered text), ``partial`` (part of the caption rendered, plus other words), ``unrelated``
(another alt-text rendered) and ``none`` (no text).

Ground truth is computed from the rendered words: ``has_text``, ``cotr_fuzzy(caption, rendered)`` and
``is_parrot = that > 0``, with the matcher rules of rounds 1-3 (``GT_RULES``: no confusable folding, no
prefix rule), so later matcher rules cannot move the ground truth. A word counts as rendered only when >= 90% of its glyph ink (outline
included, after warp and rotation) lies inside the image: a region that does not fit even at 11 px is
cut at the image edge, and its cut words do not count (none at n=200 in either split). ``none`` images
are drawn from photos without legible text (``TEXT_PHOTOS`` are swapped for the next photo, with the
same random draws, so every other image stays as it was). Compared, on the same images in the same process:

  - ``rapidocr-default``: ``RapidOCR()`` at its default settings (detector short side 736) with a
    simple fuzzy match: a normalised caption word counts when some normalised OCR token has
    Levenshtein similarity >= 0.8;
  - ``altsift``: the ``ocr`` signal with the given options (defaults unless ``--set k=v``) and the
    ``parrot`` signal's ``cotr_fuzzy``.

Both use one ONNX thread (``--threads``). Metrics: has_text accuracy, fuzzy ``is_parrot`` precision /
recall / F1, fuzzy CoTR MAE, OCR images/s and the throughput ratio altsift / RapidOCR default.

    python benchmarks/parrot_hard.py --split dev --n 120
    python benchmarks/parrot_hard.py --split heldout --n 200 --json out.json
    python benchmarks/parrot_hard.py --split heldout --n 200 --seed 1 3 5 7 9   # 1,000 images, pooled
    python benchmarks/parrot_hard.py --split dev --n 60 --set det_limit_side_len=1280 --no-baseline
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from rapidfuzz.distance import Levenshtein
from skimage import data

from altsift.signals.ocr import OCRSignal, boxes_to_columns
from altsift.signals.parrot import FuzzyRules, ParrotSignal, cotr_fuzzy, normalize_word

REPO = Path(__file__).resolve().parents[1]
PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field", "camera",
    "retina", "immunohistochemistry", "coins", "horse", "brick", "grass", "gravel", "moon", "cat",
)  # fmt: skip
# Sources showing legible text (checked by eye on the `none` crops): the astronaut's mission patch
# ("COLLINS ASHBY", "COLEMAN HAWLEY TOGNINI") and name tag, "YAMAHA"/"MAXIM" on the motorcycle. The
# coins' legends and the rocket's logo are not legible at these sizes and stay.
TEXT_PHOTOS = ("astronaut", "stereo_motorcycle")
VISIBLE = 0.9  # a word counts as rendered when >= this share of its glyph ink lies inside the image
GT_RULES = FuzzyRules(confusables=False, prefix_min_len=0)  # the ground truth's matcher, fixed
KINDS = ("full", "partial", "unrelated", "none")
SPLITS = {"dev": 0, "heldout": 1}
_ALLOWED = re.compile(r"^[A-Za-z0-9 ,.'&!?:()/+-]+$")


def load_texts(parity: int) -> list[str]:
    """Real alt-texts (2-12 words, Latin characters, HTML stripped); every other one by ``parity``."""
    s = pd.read_parquet(REPO / "tests" / "data" / "laion_alt_texts_200.parquet")["TEXT"].dropna()
    out = []
    for t in s.tolist()[parity::2]:
        t = re.sub(r"<[^>]+>", " ", t)
        t = " ".join(t.split())
        if _ALLOWED.match(t) and 2 <= len(t.split()) <= 12 and len(t) <= 80:
            out.append(t)
    return out


def system_fonts(parity: int) -> list[str]:
    """Latin text fonts found by ``fc-list`` (DejaVu, Liberation; no math/symbol), every other one."""
    try:
        res = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        res = ""
    paths = sorted(
        p.strip().rstrip(":")
        for p in res.splitlines()
        if p.strip().rstrip(":").endswith(".ttf")
        and ("DejaVu" in p or "Liberation" in p)
        and "Math" not in p
        and "ExtraLight" not in p
    )
    if not paths:  # the font altsift ships (probe) keeps the script running without fontconfig
        paths = [str(REPO / "src" / "altsift" / "assets" / "fonts" / "DejaVuSans.ttf")] * 2
    return paths[parity::2]


def load_photos() -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        a = getattr(data, name)()
        a = a[0] if isinstance(a, tuple) else a
        a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
        out.append(np.ascontiguousarray(a.astype(np.uint8)))
    return out


def _background(
    rng: np.random.Generator, photos: list[np.ndarray], text_free: bool = False
) -> tuple[Image.Image, int]:
    """A random crop of a photo resized to a long side of 360-1400 px (busy, real backgrounds).

    Returns (image, index of the photo drawn). ``text_free`` replaces a drawn photo with text
    (``TEXT_PHOTOS``) by the next one without, using the same random draws (the stream stays aligned).
    """
    drawn = int(rng.integers(len(photos)))
    idx = drawn
    while text_free and PHOTOS[idx] in TEXT_PHOTOS:
        idx = (idx + 1) % len(photos)
    a = photos[idx]
    h, w = a.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    im = Image.fromarray(a[y : y + ch, x : x + cw])
    long_side = int(rng.uniform(360, 1400))
    aspect = rng.uniform(0.6, 1.6)
    W, H = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
    return im.resize((max(W, 64), max(H, 64)), Image.BICUBIC), drawn


def _wrap(words: list[str], rng: np.random.Generator) -> str:
    per_line = int(rng.integers(2, 6))
    return "\n".join(" ".join(words[i : i + per_line]) for i in range(0, len(words), per_line))


def _word_masks(
    text: str,
    font: ImageFont.FreeTypeFont,
    size: int,
    origin: tuple[int, int],
    shape: tuple[int, int],
    stroke: int,
) -> list[Image.Image]:
    """One ink mask per word of ``text`` (as drawn at ``origin`` on a layer of ``shape``), in reading order.

    Word k of line i = ink of line i's prefix through word k minus ink of the prefix before it (left
    aligned lines keep their positions whatever their length).
    """

    def ink(t: str) -> np.ndarray:
        m = Image.new("L", shape, 0)
        ImageDraw.Draw(m).multiline_text(origin, t, font=font, fill=255, spacing=size // 4,
                                         stroke_width=stroke)  # fmt: skip
        return np.asarray(m, np.int16)

    masks = []
    for i, line in enumerate(text.split("\n")):
        start, prev = 0, np.zeros(shape[::-1], np.int16)
        for word in line.split(" "):
            end = start + len(word)
            cur = ink("\n" * i + line[:end])
            masks.append(Image.fromarray(np.clip(cur - prev, 0, 255).astype(np.uint8)))
            start, prev = end + 1, ink("\n" * i + line[: end + 1])
    return masks


def _region_layer(
    text: str, font: ImageFont.FreeTypeFont, size: int, angle: float, rng: np.random.Generator, bg_lum: float
) -> tuple[Image.Image, list[Image.Image]]:
    """An RGBA layer holding ``text`` with a random style, possibly warped, rotated by ``angle``.

    Also returns each word's ink mask, transformed like the layer (same size), in reading order.
    """
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.multiline_textbbox((0, 0), text, font=font, spacing=size // 4)
    pad = size // 2 + 4
    layer = Image.new("RGBA", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    dark = bg_lum > 128
    base = rng.integers(0, 70, 3) if dark else rng.integers(185, 256, 3)
    fill = tuple(int(v) for v in base) + (255,)
    style = rng.choice(["plain", "outline", "shadow", "band"], p=[0.4, 0.25, 0.15, 0.2])
    stroke, stroke_fill = 0, None
    if style == "band":
        band = tuple(int(255 - v) for v in base) + (int(rng.integers(150, 240)),)
        d.rectangle([pad // 2, pad // 2, layer.width - pad // 2, layer.height - pad // 2], fill=band)
    elif style == "outline":
        stroke, stroke_fill = max(1, size // 14), tuple(int(255 - v) for v in base) + (255,)
    elif style == "shadow":
        off = max(1, size // 12)
        d.multiline_text(
            (pad - x0 + off, pad - y0 + off), text, font=font, spacing=size // 4, fill=(0, 0, 0, 160)
        )
    d.multiline_text((pad - x0, pad - y0), text, font=font, fill=fill, spacing=size // 4,
                     stroke_width=stroke, stroke_fill=stroke_fill)  # fmt: skip
    masks = _word_masks(text, font, size, (pad - x0, pad - y0), layer.size, stroke)
    if rng.random() < 0.3:  # perspective warp
        w, h = layer.size
        j = 0.12
        dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
        out = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])  # corners sampled outside: text shrinks
        src = dst + out * rng.uniform(0, j, (4, 2)) * [w, h]
        A = []
        for (x, y), (u, v) in zip(dst, src, strict=True):
            A.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
            A.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
        coeffs = np.linalg.svd(np.asarray(A))[2][-1]
        coeffs = (coeffs / coeffs[-1])[:8]
        layer = layer.transform(layer.size, Image.PERSPECTIVE, tuple(coeffs), Image.BICUBIC)
        masks = [m.transform(m.size, Image.PERSPECTIVE, tuple(coeffs), Image.BICUBIC) for m in masks]
    if angle:
        layer = layer.rotate(angle, Image.BICUBIC, expand=True)
        masks = [m.rotate(angle, Image.BICUBIC, expand=True) for m in masks]
    return layer, masks


def _overlaps(r: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    return any(r[0] < t[2] and t[0] < r[2] and r[1] < t[3] and t[1] < r[3] for t in taken)


def render(
    bg: Image.Image, words: list[str], fonts: list[str], rng: np.random.Generator
) -> tuple[Image.Image, list[str], list[str]]:
    """Spread ``words`` over 1-3 non-overlapping regions of ``bg``: (RGB image, words rendered, words cut).

    A word is rendered when >= ``VISIBLE`` of its ink lies inside the image; a region that does not
    fit even at 11 px is cut at the image edge and its words outside count as cut, not rendered. The
    text colour is dark on a light local background and light on a dark one.
    """
    im = bg.convert("RGBA")
    gray = np.asarray(bg.convert("L"), np.float64)
    n_regions = min(len(words), int(rng.integers(1, 4)))
    cuts = (
        sorted(rng.choice(np.arange(1, len(words)), n_regions - 1, replace=False).tolist())
        if n_regions > 1
        else []
    )
    parts = [words[a:b] for a, b in zip([0, *cuts], [*cuts, len(words)], strict=True)]
    short = min(im.size)
    taken: list[tuple[int, int, int, int]] = []
    rendered: list[str] = []
    cut: list[str] = []
    for part in parts:
        text = _wrap(part, rng)
        size = int(np.clip(rng.lognormal(np.log(short * 0.045), 0.45), 11, short * 0.14))
        angle = float(rng.uniform(-30, 30)) if rng.random() < 0.6 else 0.0
        for _ in range(20):  # shrink until the region fits the image
            font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], size)
            x0, y0, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
                (0, 0), text, font=font, spacing=size // 4
            )
            w, h = x1 - x0 + size + 8, y1 - y0 + size + 8
            c, s_ = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
            rw, rh = int(w * c + h * s_) + 2, int(w * s_ + h * c) + 2
            if (rw <= im.width and rh <= im.height) or size <= 11:
                break
            size = max(11, int(size * 0.85))
        W, H = min(rw, im.width), min(rh, im.height)
        spot = None
        for _ in range(40):
            x, y = int(rng.integers(0, im.width - W + 1)), int(rng.integers(0, im.height - H + 1))
            if not _overlaps((x, y, x + W, y + H), taken):
                spot = (x, y)
                break
        if spot is None:  # no free place: the words go elsewhere in the same image, never on top
            continue
        x, y = spot
        layer, masks = _region_layer(text, font, size, angle, rng, float(gray[y : y + H, x : x + W].mean()))
        box = (0, 0, min(layer.width, im.width - x), min(layer.height, im.height - y))
        layer = layer.crop(box)
        im.alpha_composite(layer, (x, y))
        taken.append((x, y, x + layer.width, y + layer.height))
        for word, m in zip(part, masks, strict=True):
            a = np.asarray(m, np.float64)
            inside = a[: box[3], : box[2]].sum()
            (rendered if inside >= VISIBLE * a.sum() else cut).append(word)
    out = im.convert("RGB")
    if rng.random() < 0.2:
        out = out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.8))))
    return out, rendered, cut


def jpeg(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(30, 91)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def make_cases(n: int, split: str, seed: int | None = None) -> list[dict]:
    """``n`` cases of ``split`` (its texts and fonts); ``seed`` draws other images of the same split."""
    parity = SPLITS[split]
    seed = parity if seed is None else seed
    rng = np.random.default_rng(seed)
    texts, fonts, photos = load_texts(parity), system_fonts(parity), load_photos()
    cases = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        caption = texts[int(rng.integers(len(texts)))]
        other = texts[int(rng.integers(len(texts)))]
        while other == caption:
            other = texts[int(rng.integers(len(texts)))]
        cw, ow = caption.split(), other.split()
        if kind == "full":
            words = cw
        elif kind == "partial":
            k = int(rng.integers(1, max(2, len(cw))))
            a = int(rng.integers(0, len(cw) - k + 1))
            words = cw[a : a + k] + ow[: int(rng.integers(0, 3))]
        elif kind == "unrelated":
            words = ow
        else:
            words = []
        bg, drawn = _background(rng, photos, text_free=kind == "none")
        img, words, cut = render(bg, words, fonts, rng) if words else (bg, [], [])
        img = jpeg(img, rng) if rng.random() < 0.85 else img
        cases.append({
            "kind": kind, "image": img, "rendered": " ".join(words), "caption": caption,
            "cut": " ".join(cut), "photo_drawn": PHOTOS[drawn],
        })  # fmt: skip
    return cases


def simple_fuzzy(caption: str, ocr_tokens: list[str], threshold: float = 0.8) -> float:
    """Share of distinct normalised caption words with a normalised OCR token at similarity >= threshold."""
    cap = {w for w in (normalize_word(x) for x in caption.split()) if w}
    toks = [t for t in (normalize_word(x) for x in ocr_tokens) if t]
    if not cap:
        return 0.0
    hit = sum(any(Levenshtein.normalized_similarity(w, t) >= threshold for t in toks) for w in cap)
    return hit / len(cap)


def scores(cases: list[dict], has_text: list[bool], pred: np.ndarray) -> dict[str, float]:
    gt = np.array([cotr_fuzzy(c["caption"], c["rendered"], GT_RULES) for c in cases])
    gt_text = np.array([bool(c["rendered"]) for c in cases])
    tp = int(((pred > 0) & (gt > 0)).sum())
    p, r = tp / max(int((pred > 0).sum()), 1), tp / max(int((gt > 0).sum()), 1)
    return {
        "has_text_acc": float((np.asarray(has_text) == gt_text).mean()),
        "parrot_precision": p,
        "parrot_recall": r,
        "parrot_f1": 2 * p * r / max(p + r, 1e-12),
        "cotr_fuzzy_mae": float(np.abs(pred - gt).mean()),
    }


def run(
    cases: list[dict], options: dict, threads: int, baseline: bool, groups: list[int] | None = None
) -> dict[str, dict[str, float]]:
    """Both methods on the same images, timed image by image in alternation (fair under varying load).

    ``groups`` (one label per case, e.g. its seed) adds altsift's quality per group (``altsift@label``).
    """
    from rapidocr_onnxruntime import RapidOCR

    sig = OCRSignal(options)
    eng = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1) if baseline else None
    arrays = [np.ascontiguousarray(np.asarray(c["image"])[:, :, ::-1]) for c in cases]
    sig.spotter.spot([cases[0]["image"]])  # warm-up
    if eng is not None:
        eng(arrays[0])
    t_alt = t_base = 0.0
    boxes, base_res = [], []
    for c, a in zip(cases, arrays, strict=True):
        t0 = time.perf_counter()
        boxes.append(sig.spotter.spot([c["image"]])[0])
        t1 = time.perf_counter()
        if eng is not None:
            base_res.append(eng(a)[0] or [])
        t_base += time.perf_counter() - t1
        t_alt += t1 - t0
    batch = {
        "uid": [str(i) for i in range(len(cases))],
        "status": ["ok"] * len(cases),
        "text": [c["caption"] for c in cases],
        "image": [c["image"] for c in cases],
    }
    cols = [
        boxes_to_columns(b, c["image"].width, c["image"].height, 100)
        for b, c in zip(boxes, cases, strict=True)
    ]
    ocr = {k: [r[k] for r in cols] for k in cols[0]}
    par = ParrotSignal()({**batch, **ocr})
    pred = np.array([v or 0.0 for v in par["cotr_fuzzy"]])
    rows = {"altsift": scores(cases, ocr["has_text"], pred) | {"ocr_images_per_s": len(cases) / t_alt}}
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(groups or []):
        by_group.setdefault(g, []).append(i)
    if len(by_group) > 1:  # per group only when there are several
        for g, ix in sorted(by_group.items()):
            rows[f"altsift@{g}"] = scores([cases[i] for i in ix], [ocr["has_text"][i] for i in ix], pred[ix])
    if eng is not None:
        pred_b = np.array(
            [
                simple_fuzzy(c["caption"], " ".join(r[1] for r in rs).split())
                for c, rs in zip(cases, base_res, strict=True)
            ]
        )
        rows["rapidocr-default"] = scores(cases, [bool(r) for r in base_res], pred_b) | {
            "ocr_images_per_s": len(cases) / t_base
        }
        rows["altsift"]["throughput_vs_rapidocr_default"] = t_base / t_alt
    return rows


def _value(v: str) -> object:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=tuple(SPLITS), default="dev")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, nargs="+", default=None,
                    help="draw other images of the split (its texts and fonts); several seeds: n images each, "
                         "pooled, with altsift's quality per seed too; default: the split's own seed")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="ocr signal option k=v (JSON value)")
    ap.add_argument("--no-baseline", action="store_true", help="skip plain RapidOCR (tuning runs)")
    ap.add_argument("--save", default=None, help="write the rendered images here (inspection only)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    seeds = args.seed or [None]
    cases, groups = [], []
    for sd in seeds:
        cases += make_cases(args.n, args.split, sd)
        groups += [SPLITS[args.split] if sd is None else sd] * args.n
    n_cut = sum(bool(c["cut"]) for c in cases)
    n_swapped = sum(c["kind"] == "none" and c["photo_drawn"] in TEXT_PHOTOS for c in cases)
    print(f"ground truth: {n_cut} images with words cut at the edge (not counted), "
          f"{n_swapped} none images moved off a photo with text")  # fmt: skip
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for i, c in enumerate(cases):
            c["image"].save(Path(args.save) / f"{i:04d}_{c['kind']}.jpg")
    options = {"threads": args.threads} | {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    rows = run(cases, options, args.threads, not args.no_baseline, groups)
    print(f"split={args.split} seed={args.seed} n={len(cases)} options={options}")
    for name, m in rows.items():
        print(f"{name:18s} " + " ".join(f"{k}={v:.3f}" for k, v in m.items()))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"split": args.split, "seeds": args.seed, "n": len(cases), "options": options, **rows},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
