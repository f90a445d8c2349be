"""Co-Emb. text removal at line vs word level (issue 14 item 2), on the rendered-text benchmark.

Uses the ``partial`` cases of ``benchmarks/parrot_quality.py`` (one rendered line holding the first
half of the caption's words and other words): the line mixes co-embedded and other text, which is where
line-level removal makes RSC drift toward RSA. For ``ocr.box_level`` = ``line`` and ``word`` it runs the
``ocr`` signal, selects the Co-Emb. boxes as ``text_removal`` does (exact Algorithm-1 tokens), inpaints
them (Telea, radius 3, dilation 2) and reads the result again with RapidOCR:

  - ``co_equals_all``: share of images where the Co-Emb. mask equals the All-Emb. mask (then the
    Co-Emb. and All-Emb. variants are the same image and RSC == RSA exactly, whatever CLIP says);
  - ``co_area_share``: Co-Emb. mask area / All-Emb. mask area, vs ``gt_char_share`` (characters of the
    co-embedded words / characters of the line, what an ideal word-level mask would remove);
  - ``caption_words_left``: share of co-embedded words still read after Co-Emb. removal (want 0);
  - ``other_words_kept``: share of the other rendered words still read after Co-Emb. removal (want 1).

No CLIP score is computed: no pretrained CLIP checkpoint is reachable offline here, and a random one
would make RSC/RSA numbers meaningless. The mask numbers above bound what CLIP can see.

    python benchmarks/parrot_removal.py --n 160
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from altsift.models.ocr import RapidOCRSpotter
from altsift.signals.ocr import OCRSignal
from altsift.signals.parrot import co_emb_boxes, normalize_word
from altsift.signals.text_removal import inpaint, polygon_mask
from parrot_quality import load_texts, make_cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=160, help="cases generated (a quarter are partial)")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    cases = [c for c in make_cases(args.n, args.size, load_texts(None)) if c["kind"] == "partial"]
    reader = RapidOCRSpotter(det_limit_side_len=960)
    batch = {
        "uid": [str(i) for i in range(len(cases))],
        "status": ["ok"] * len(cases),
        "text": [c["caption"] for c in cases],
        "image": [c["image"] for c in cases],
    }
    print(f"partial cases: {len(cases)} (of --n {args.n}, --size {args.size})")
    for level in ("line", "word"):
        t0 = time.perf_counter()
        out = OCRSignal({"box_level": level})(batch)
        ocr_s = time.perf_counter() - t0
        same, share, gt_share, left, kept = [], [], [], [], []
        for i, c in enumerate(cases):
            polys, strings = out["ocr_polygons"][i], out["ocr_strings"][i]
            if not polys:
                continue
            co = co_emb_boxes(strings, c["caption"])
            co_polys = [p for p, k in zip(polys, co, strict=True) if k]
            w, h = c["image"].size
            m_all = polygon_mask(polys, w, h, 2) > 0
            m_co = polygon_mask(co_polys, w, h, 2) > 0
            same.append(bool(co_polys) and bool((m_all == m_co).all()))
            share.append(m_co.sum() / max(m_all.sum(), 1))
            cap = set(c["caption"].split())
            words = c["rendered"].split()
            gt_share.append(sum(len(x) for x in words if x in cap) / max(sum(len(x) for x in words), 1))
            after = {
                normalize_word(t)
                for b in reader.spot([inpaint(c["image"], co_polys, 3, 2)])[0]
                for t in b.text.split()
            }
            cw = [normalize_word(x) for x in words if x in cap and normalize_word(x)]
            ow = [normalize_word(x) for x in words if x not in cap and normalize_word(x)]
            if cw:
                left.append(np.mean([x in after for x in cw]))
            if ow:
                kept.append(np.mean([x in after for x in ow]))
        print(
            f"box_level={level:4s} images={len(share)} co_equals_all={np.mean(same):.3f} "
            f"co_area_share={np.mean(share):.3f} gt_char_share={np.mean(gt_share):.3f} "
            f"caption_words_left={np.mean(left):.3f} other_words_kept={np.mean(kept):.3f} "
            f"ocr_images_per_s={len(cases) / ocr_s:.2f}"
        )


if __name__ == "__main__":
    main()
