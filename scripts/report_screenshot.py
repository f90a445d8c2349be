"""Rebuild docs/report.png: a small run of real photos + real LAION alt-texts (some with the caption's
words rendered into the image), scored with basic, ocr and parrot, two subsets, the HTML report, and a
headless-Chromium screenshot of it.

    .venv/bin/python scripts/report_screenshot.py [--out docs/report.png] [--keep /tmp/report_demo]

Needs Debian's chromium + chromium-driver and selenium (requirements.txt). Takes about a minute.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage import data

from altsift.analysis.probe import overlay_text
from altsift.config import build_config
from altsift.pipeline.score import score
from altsift.report.html import write_html
from altsift.select.core import SelectRequest, run_selection, write_selection

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "camera", "horse", "clock", "coins", "moon", "brick", "grass", "gravel", "page"]  # fmt: skip


def photos() -> list[Image.Image]:
    out = [Image.fromarray(data.stereo_motorcycle()[0])]
    for name in PHOTOS:
        out.append(Image.fromarray(getattr(data, name)()).convert("RGB"))
    return out


def build_shards(root: Path, n: int = 72, per_shard: int = 24, seed: int = 0) -> list[Path]:
    """``n`` samples: random crops of the photos with real alt-texts; every third carries rendered text
    (the caption's first words: a parrot caption, or unrelated words)."""
    import json
    import tarfile

    rng = np.random.default_rng(seed)
    texts = pd.read_parquet(ROOT / "tests" / "data" / "laion_alt_texts_200.parquet")["TEXT"].tolist()
    base = photos()
    paths = []
    for s in range(0, n, per_shard):
        path = root / f"{s // per_shard:05d}.tar"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w") as tf:
            for i in range(s, min(n, s + per_shard)):
                im = base[i % len(base)]
                w, h = im.size
                cw, ch = int(w * rng.uniform(0.55, 1.0)), int(h * rng.uniform(0.55, 1.0))
                x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                im = im.crop((x, y, x + cw, y + ch))
                im.thumbnail((480, 480))
                caption = texts[int(rng.integers(0, len(texts)))]
                if i % 3 == 0:
                    words = caption.split()[:3] if i % 2 == 0 else ["SALE", "50%", "OFF"]
                    im, _ = overlay_text(
                        im, " ".join(words), font_size=26, y_frac=float(rng.uniform(0.2, 0.8))
                    )
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=88)
                meta = {"original_width": im.width, "original_height": im.height}
                for ext, payload in (
                    ("jpg", buf.getvalue()),
                    ("txt", caption.encode()),
                    ("json", json.dumps(meta).encode()),
                ):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
        paths.append(path)
    return paths


def screenshot(page: Path, out: Path, anchor: str = "compare", width: int = 1280, height: int = 1500) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    d = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts
    )
    try:
        d.get(page.resolve().as_uri())
        d.execute_script(f"document.getElementById('{anchor}').scrollIntoView(); window.scrollBy(0, -46)")
        png = d.get_screenshot_as_png()
    finally:
        d.quit()
    im = Image.open(io.BytesIO(png)).convert("RGB")
    im.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {im.size[0]}x{im.size[1]}, {out.stat().st_size / 1024:.0f} KB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    ap.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    ap.add_argument("--anchor", default="compare", help="section id to scroll to")
    args = ap.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="altsift_report_"))
    shards = build_shards(tmp / "shards")
    cfg = build_config({"signals": ["basic", "ocr", "parrot"], "score": {"progress": False}})
    run = tmp / "run"
    score([str(p) for p in shards], run, cfg.signals, cfg)
    a, b = run / "basic.npy", run / "no_parrot.npy"
    df, sel = run_selection(run, SelectRequest(where=["basic_pass"], top_fraction={"caption_num_words": 0.7}))
    write_selection(df, sel, a, run)
    df, sel = run_selection(run, SelectRequest(where=["cotr == 0", "lang_score >= 0.3"]))
    write_selection(df, sel, b, run)
    page = write_html(run, [a, b], run / "report.html", scatter=("lang_score", "caption_num_words"))
    print(page, f"{page.stat().st_size / 1e6:.2f} MB")
    screenshot(page, args.out, args.anchor)
    if args.keep is None:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
