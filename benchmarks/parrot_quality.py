"""Parrot-caption quality and speed on real OCR: rendered real LAION alt-texts over real photos.

Each case renders one alt-text (black on a white band) over a real photo from ``skimage.data`` and
pairs it with a caption. Four kinds, cycled: ``full`` (caption = rendered text), ``partial`` (caption
= the first half of the rendered words + other words), ``unrelated`` (text rendered, caption = a
different alt-text) and ``none`` (no text rendered). Ground truth is Algorithm 1 applied to the caption
and the *rendered* text, so it measures what OCR errors do to CoTR:

  - precision / recall of ``is_parrot`` (predicted from OCR text) vs the ground truth,
  - mean absolute error of ``cotr`` and ``cotr_fuzzy`` vs the ground-truth CoTR,
  - ``has_text`` accuracy, OCR throughput (images/s, this process) and Telea inpainting ms/image.

    python benchmarks/parrot_quality.py --n 40            # ~10 s on one core
    python benchmarks/parrot_quality.py --n 400 --size 512 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from altsift.analysis.probe import overlay_text
from altsift.models.ocr import RapidOCRSpotter
from altsift.signals.parrot import cotr, cotr_fuzzy
from altsift.signals.text_removal import inpaint

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field", "camera")
KINDS = ("full", "partial", "unrelated", "none")
REPO = Path(__file__).resolve().parents[1]


def load_texts(path: str | None) -> list[str]:
    if path:
        import pandas as pd

        s = pd.read_parquet(path)["TEXT"].dropna()
        s = s[s.str.len().between(10, 45) & s.str.match(r"^[A-Za-z0-9 ,.'&-]+$")]
        return s.tolist()
    return json.loads((REPO / "tests" / "data" / "laion_alt_texts_parrot.json").read_text())["texts"]


def make_cases(n: int, size: int, texts: list[str], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    photos = []
    for name in PHOTOS:
        a = getattr(data, name)()
        a = a[0] if isinstance(a, tuple) else a  # stereo_motorcycle: (left, right, disparity)
        a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
        im = Image.fromarray(a)
        s = size / max(im.size)
        photos.append(im.resize((max(1, round(im.width * s)), max(1, round(im.height * s)))))
    cases = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        text = texts[int(rng.integers(len(texts)))]
        other = texts[int(rng.integers(len(texts)))]
        photo = photos[i % len(photos)]
        if kind == "none":
            img, rendered, caption = photo, "", text
        else:
            img, _ = overlay_text(
                photo, text, font_size=max(14, size // 18), y_frac=float(rng.uniform(0.2, 0.8))
            )
            rendered = text
            words = text.split()
            caption = {"full": text, "unrelated": other}.get(kind) or " ".join(
                words[: max(1, len(words) // 2)] + other.split()[:3]
            )
        cases.append({"kind": kind, "image": img, "rendered": rendered, "caption": caption})
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="number of test images")
    ap.add_argument("--size", type=int, default=384, help="long side of the photos in pixels")
    ap.add_argument(
        "--texts", default=None, help="parquet with a TEXT column (default: the repo's test sample)"
    )
    ap.add_argument("--det-limit-side-len", type=int, default=960)
    ap.add_argument("--det-limit-type", default="max")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the metrics here")
    args = ap.parse_args()

    cases = make_cases(args.n, args.size, load_texts(args.texts))
    spotter = RapidOCRSpotter(
        det_limit_side_len=args.det_limit_side_len, det_limit_type=args.det_limit_type, threads=args.threads
    )
    spotter.spot([cases[0]["image"]])  # warm-up
    t0 = time.perf_counter()
    results = spotter.spot([c["image"] for c in cases])
    ocr_s = time.perf_counter() - t0

    gt, pred, pred_f, has_text_ok = [], [], [], []
    t_inp, n_inp = 0.0, 0
    for c, boxes in zip(cases, results, strict=True):
        ocr_text = " ".join(b.text for b in boxes)
        gt.append(cotr(c["caption"], c["rendered"])[0])
        pred.append(cotr(c["caption"], ocr_text)[0])
        pred_f.append(cotr_fuzzy(c["caption"], ocr_text))
        has_text_ok.append(bool(boxes) == bool(c["rendered"]))
        if boxes:
            t = time.perf_counter()
            inpaint(c["image"], [b.polygon for b in boxes], radius=3, dilation=2)
            t_inp += time.perf_counter() - t
            n_inp += 1
    gt, pred, pred_f = map(np.asarray, (gt, pred, pred_f))
    tp = int(((pred > 0) & (gt > 0)).sum())
    metrics = {
        "n": args.n,
        "size": args.size,
        "det": f"{args.det_limit_type} {args.det_limit_side_len}",
        "threads": args.threads,
        "has_text_accuracy": float(np.mean(has_text_ok)),
        "is_parrot_precision": tp / max(int((pred > 0).sum()), 1),
        "is_parrot_recall": tp / max(int((gt > 0).sum()), 1),
        "is_parrot_fuzzy_precision": int(((pred_f > 0) & (gt > 0)).sum()) / max(int((pred_f > 0).sum()), 1),
        "is_parrot_fuzzy_recall": int(((pred_f > 0) & (gt > 0)).sum()) / max(int((gt > 0).sum()), 1),
        "cotr_mae": float(np.abs(pred - gt).mean()),
        "cotr_fuzzy_mae": float(np.abs(pred_f - gt).mean()),
        "ocr_images_per_s": args.n / ocr_s,
        "inpaint_ms_per_image": 1000 * t_inp / max(n_inp, 1),
    }
    for kind in KINDS:
        sel = np.array([c["kind"] == kind for c in cases])
        metrics[f"cotr_mae_{kind}"] = float(np.abs(pred[sel] - gt[sel]).mean()) if sel.any() else None
        metrics[f"cotr_fuzzy_mae_{kind}"] = float(np.abs(pred_f[sel] - gt[sel]).mean()) if sel.any() else None
    for k, v in metrics.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
