"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
driven by Selenium. Skipped, with the reason shown, when either is missing (.ci/run installs them when
it can). The page must load with no console error, no broken image and no network request.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from altsift.io.tables import write_table_atomic
from altsift.report.html import write_html
from report_helpers import demo_run

CHROMIUM = os.environ.get("ALTSIFT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("ALTSIFT_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
)


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not Path(path).is_file():
            return f"{what} not found at {path}: apt-get install chromium chromium-driver to run the browser tests"
    return None


pytestmark = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        opts.add_argument(arg)  # fmt: skip
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _add_parrot_and_cluster_columns(run: Path) -> None:
    """Give every ok row OCR boxes, CoTR and a cluster id (as the ocr / parrot signals and
    ``altsift cluster`` would), rewriting each table with its schema metadata kept."""
    for f in sorted((run / "scores").glob("*.parquet")):
        t = pq.read_table(f)
        n = t.num_rows
        ok = np.asarray(t.column("status").to_pylist()) == "ok"
        w = np.nan_to_num(np.asarray(t.column("original_width").to_pylist(), dtype=float), nan=256.0)
        polys, strings, texts, cotr = [], [], [], []
        for i in range(n):
            if not ok[i] or i % 3 == 2:
                polys.append([] if ok[i] else None)
                strings.append([] if ok[i] else None)
                texts.append("" if ok[i] else None)
                cotr.append(0.0 if ok[i] else None)
                continue
            x = w[i] * 0.1
            polys.append([[[x, 10.0], [x * 6, 10.0], [x * 6, 40.0], [x, 40.0]]])
            word = (t.column("text")[i].as_py() or "x").split()[0]
            strings.append([word])
            texts.append(word)
            cotr.append(0.5 if i % 2 else 0.0)
        has_text = [None if p is None else bool(p) for p in polys]
        t = t.append_column("has_text", pa.array(has_text, pa.bool_()))
        t = t.append_column("ocr_polygons", pa.array(polys, pa.list_(pa.list_(pa.list_(pa.float64())))))
        t = t.append_column("ocr_strings", pa.array(strings, pa.list_(pa.string())))
        t = t.append_column("ocr_text", pa.array(texts, pa.string()))
        t = t.append_column("cotr", pa.array(cotr, pa.float64()))
        t = t.append_column("cluster_id", pa.array(np.arange(n) % 3, pa.int64()))
        write_table_atomic(t, f)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_browser")
    run, a, b = demo_run(tmp)
    _add_parrot_and_cluster_columns(run)
    return write_html(run, [a, b], tmp / "report.html", progress=False)


def _problems(driver, path: Path) -> tuple[list, int, list, list]:
    """Load ``path``; return console errors/warnings, image count, broken images, non-local requests."""
    driver.get_log("browser"), driver.get_log("performance")  # drop entries of earlier pages
    driver.get(path.resolve().as_uri())
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    n_img, broken = driver.execute_script(
        "const imgs = Array.from(document.images);"
        "return [imgs.length, imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)];"
    )
    requests = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
    outside = [u for u in requests if not u.startswith(("file://", "data:"))]
    return errors, n_img, broken, outside


def test_report_loads_without_errors_broken_images_or_requests(driver, page):
    errors, n_img, broken, outside = _problems(driver, page)
    assert driver.title.startswith("altsift report")
    assert errors == [] and broken == [] and outside == [], (errors, broken, outside)
    assert n_img > 40


def test_the_checks_catch_broken_pages(driver, page, tmp_path):
    """The same checks on a damaged copy: a corrupt image and an external one (blocked by the CSP)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        page.read_text().replace(
            "<main>",
            '<main><img alt="corrupt" src="data:image/jpeg;base64,AAAA"><img alt="remote" src="http://127.0.0.1:9/x.png">',
            1,
        )
    )
    errors, _, broken, _ = _problems(driver, bad)
    assert set(broken) == {"corrupt", "remote"}
    assert any("Content Security Policy" in e["message"] for e in errors), errors


def test_report_shows_grids_plots_and_sections(driver, page):
    driver.get(page.resolve().as_uri())
    counts = driver.execute_script(
        "const q = s => document.querySelectorAll(s).length; return {"
        "hist: q('#signals figure.hist img'), cmp: q('#compare figure.cmp img'), scatter: q('#scatter img'),"
        "funnel: q('.funnel .bar'), grids: q('.grid'), cards: q('.grid .card'), thumbs: q('.card .thumb img'),"
        "polys: q('#parrot svg polygon.ocr-poly'), clusters: q('#clusters .grid'), cotr: q('#cotr-plot img'),"
        "captions: q('#captions table tbody tr'), nav: q('nav a')}"
    )
    assert counts["hist"] == 5 and counts["cmp"] == 5  # 4 basic numeric columns + cotr
    assert counts["scatter"] == 1 and counts["cotr"] == 1
    assert counts["funnel"] == 3 + 4  # A: status, dedup, where; B: + top fraction
    assert counts["grids"] >= 15 and counts["cards"] >= 60 and counts["thumbs"] >= 40
    assert counts["polys"] >= 3 and counts["clusters"] == 3 and counts["captions"] == 3
    assert counts["nav"] == 9  # every section is there
    # the grids are aligned: every card of a grid has the same width and starts on a column line
    layout = driver.execute_script(
        "return Array.from(document.querySelectorAll('.grid')).filter(g => g.offsetParent !== null).map(g => {"
        "  const r = Array.from(g.children).map(c => c.getBoundingClientRect());"
        "  return [new Set(r.map(x => Math.round(x.width))).size, r.every(x => x.width > 100 && x.height > 150)];"
        "})"
    )
    assert layout and all(n_widths == 1 and sized for n_widths, sized in layout)
    # thumbnails sit inside their boxes; OCR overlays cover exactly their image
    inside = driver.execute_script(
        "return Array.from(document.querySelectorAll('.thumb img')).filter(i => i.offsetParent !== null)"
        ".every(i => { const a = i.getBoundingClientRect(), b = i.closest('.thumb').getBoundingClientRect();"
        "  return a.width > 20 && a.left >= b.left - 1 && a.right <= b.right + 1 && a.bottom <= b.bottom + 1; })"
    )
    assert inside
    overlay = driver.execute_script(
        "return Array.from(document.querySelectorAll('.ov')).map(o => {"
        "  const i = o.querySelector('img').getBoundingClientRect(), s = o.querySelector('svg').getBoundingClientRect();"
        "  return Math.abs(i.width - s.width) + Math.abs(i.height - s.height) + Math.abs(i.top - s.top); })"
    )
    assert overlay and max(overlay) < 2
