"""The HTML report on the bundled demo shards: contents checked against values computed here."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import altsift.cli.report  # noqa: F401  (registers report / stats)
from altsift.cli import app
from altsift.errors import ConfigError
from altsift.io.uids import array_to_uids, load_subset
from altsift.report.html import Page, ReportData, write_html
from altsift.report.thumbs import iter_shard_images, read_thumbnails
from helpers_shards import sample, write_tar
from report_helpers import B_TOP, Tags, demo_run

NUMERIC = {"caption_num_words", "caption_num_chars", "lang_score", "aspect_ratio"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return demo_run(tmp_path_factory.mktemp("report_html"))


@pytest.fixture(scope="module")
def data_ab(run):
    return ReportData(run[0], [run[1], run[2]], progress=False, images=False)


@pytest.fixture(scope="module")
def data_b(run):
    """B first (its steps carry the thresholds), 4 cards per grid."""
    return ReportData(run[0], [run[2], run[1]], progress=False, images=False, per_grid=4)


def _raw(run_dir):
    return pd.concat(
        [pq.read_table(f).to_pandas() for f in sorted((run_dir / "scores").glob("*.parquet"))],
        ignore_index=True,
    )


def _kept(df, npy):
    uids = set(array_to_uids(load_subset(npy)))
    return (df["uid"].isin(uids) & ~df["uid"].duplicated()).to_numpy()


def _svg(uri: str) -> str:
    return base64.b64decode(uri.split(",", 1)[1]).decode()


def test_page_is_self_contained_with_every_section(run, tmp_path):
    run_dir, a, b = run
    out = write_html(run_dir, [a, b], tmp_path / "r.html", progress=False)
    page = out.read_text()
    t = Tags(page)
    assert not t.find("script") and not t.find("link") and not t.find("iframe")
    for _, attrs in t.tags:  # nothing is fetched: every src/href is a data URI or a page anchor
        for k in ("src", "href", "srcset", "poster", "data"):
            v = attrs.get(k)
            assert v is None or v.startswith(("data:", "#")), (k, v[:80])
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    csp = t.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert {"overview", "funnel", "compare", "signals", "scatter", "examples", "captions"} <= t.ids()
    assert "parrot" not in t.ids() and "clusters" not in t.ids()  # no such columns in a basic run
    hists = t.find("figure", class_="hist")
    assert {h["id"] for h in hists if h.get("id")} == {f"hist-{c}" for c in NUMERIC}
    assert len(t.find("figure", class_="cmp")) == len(NUMERIC)  # A-only vs B-only per signal
    imgs = t.find("img")
    assert all(i["src"].startswith(("data:image/jpeg;base64,", "data:image/svg+xml;base64,")) for i in imgs)
    assert sum(i["src"].startswith("data:image/jpeg") for i in imgs) > 20
    for g in t.find("div", class_="grid"):
        assert g["id"]
    n_cards = [
        len(re.findall(r'class="card"', m))
        for m in re.findall(
            r'<div class="grid[^"]*" id="[^"]+">(.*?)</div></div></div>(?=<h|</details|</section|<div class="warn")',
            page,
        )
    ]
    assert n_cards and max(n_cards) <= 12


def test_histograms_plot_kept_and_dropped_rows_with_the_threshold(run, data_b):
    run_dir, a, b = run
    df = _raw(run_dir)
    d = data_b
    kept_b = _kept(df, b)
    sv = {s.column: s for s in d.signals}
    assert set(sv) == NUMERIC
    b_json = json.loads(b.with_suffix(".json").read_text())
    t = next(s["detail"]["threshold"] for s in b_json["steps"] if s["name"].startswith("top "))
    words = sv[B_TOP[0]]
    assert [(c.column, c.op, c.value) for c in words.cuts] == [(B_TOP[0], ">=", t)]
    svg = _svg(words.plot)
    v = pd.to_numeric(df[B_TOP[0]], errors="coerce").to_numpy(float)
    fin = np.isfinite(v)
    assert f"kept ({int((kept_b & fin).sum())})" in svg and f"dropped ({int((~kept_b & fin).sum())})" in svg
    assert f"&gt;= {t:.4g}" in svg  # the threshold label
    lang = sv["lang_score"]
    assert [(c.column, c.op, c.value) for c in lang.cuts] == [("lang_score", ">=", 0.5)]
    s = words.summary
    assert (s["min"], s["max"], s["p50"]) == pytest.approx((v[fin].min(), v[fin].max(), np.median(v[fin])))


def test_compare_counts_and_grids(run, data_ab):
    run_dir, a, b = run
    df = _raw(run_dir)
    ka, kb = _kept(df, a), _kept(df, b)
    d = data_ab
    c = d.compare
    assert c["sizes"] == {"A": int(ka.sum()), "B": int(kb.sum())}
    assert (c["both"], c["a_only"], c["b_only"]) == (
        int((ka & kb).sum()),
        int((ka & ~kb).sum()),
        int((kb & ~ka).sum()),
    )
    assert c["jaccard"] == pytest.approx((ka & kb).sum() / (ka | kb).sum())
    g_a, g_b = c["grids"]
    assert g_a.cards and all(ka[x.row] and not kb[x.row] for x in g_a.cards)
    assert g_b.cards and all(kb[x.row] and not ka[x.row] for x in g_b.cards)
    assert len(g_a.cards) == min(12, int((ka & ~kb).sum()))


def test_step_grids_show_rows_each_step_removed(run, data_ab):
    run_dir, a, b = run
    df = _raw(run_dir)
    d = data_ab
    v = pd.to_numeric(df[B_TOP[0]], errors="coerce").to_numpy(float)
    t = -np.sort(-v[~np.isnan(v)])[int((~np.isnan(v)).sum() * B_TOP[1])]
    masks = [
        (df["status"] == "ok").to_numpy(),
        ~df["uid"].duplicated().to_numpy(),
        (pd.to_numeric(df["lang_score"]) >= 0.5).fillna(False).to_numpy(bool),
        np.nan_to_num(v, nan=-np.inf) >= t,
    ]
    notes = d.step_notes[d.subsets[1].label]
    assert len(notes) == len(masks)
    cum = np.ones(len(df), bool)
    for (step, note, grid), m in zip(notes, masks, strict=True):
        removed = cum & ~m
        cum &= m
        assert note is None, (step.name, note)
        assert grid is not None and len(grid.cards) == min(d.per_grid, int(removed.sum()))
        assert all(removed[c.row] for c in grid.cards), step.name
    top = notes[3][2]  # the top-fraction step: nearest miss first
    vals = [v[c.row] for c in top.cards]
    assert vals == sorted(vals, reverse=True) and vals[0] < t


def test_signal_grids_top_bottom_borderline(run, data_b):
    run_dir, a, b = run
    df = _raw(run_dir)
    d = data_b
    v = pd.to_numeric(df["lang_score"], errors="coerce").to_numpy(float)
    elig = (df["status"] == "ok").to_numpy() & ~df["uid"].duplicated().to_numpy() & np.isfinite(v)
    grids = {g.gid: g for g in d.sections_grids["signals"]}
    top = [v[c.row] for c in grids["sig-lang_score-top"].cards]
    bottom = [v[c.row] for c in grids["sig-lang_score-bottom"].cards]
    assert top == sorted(v[elig], reverse=True)[:4] and bottom == sorted(v[elig])[:4]
    border = [v[c.row] for c in grids["sig-lang_score-border"].cards]  # around B's cut at 0.5
    above, below = (
        sorted(x for x in v[elig] if x >= 0.5),
        sorted((x for x in v[elig] if x < 0.5), reverse=True),
    )
    assert sorted(border) == sorted(above[:2] + below[:2])
    kept = _kept(df, b)
    assert all((c.badge == "kept") == bool(kept[c.row]) for c in grids["sig-lang_score-top"].cards)


def test_structured_steps_give_thresholds_without_parsing_names(run, tmp_path):
    """Steps as the structured select writes them: names are free text, fields carry the thresholds."""
    run_dir, a, b = run
    js = json.loads(b.with_suffix(".json").read_text())
    kinds = ["status", "dedup", "where", "top_fraction"]
    for s, kind in zip(js["steps"], kinds, strict=True):
        s.update(kind=kind, column=None, op=None, threshold=None, fraction=None)
        s["name"] = f"step of kind {kind}"
    js["steps"][2].update(column="lang_score", op=">=", threshold=0.5, detail={"expr": "lang_score >= 0.5"})
    t = js["steps"][3]["detail"]["threshold"]
    js["steps"][3].update(column=B_TOP[0], op=">=", threshold=t, fraction=B_TOP[1], detail={})
    # a preset-like wrapper with nested structured steps must show their thresholds too
    js["steps"].append(
        {"name": "preset x", "kind": "preset", "column": None, "op": None, "threshold": None, "fraction": None,
         "kept_alone": js["selected"], "kept_cumulative": js["selected"],
         "detail": {"steps": [{"name": "inner", "kind": "threshold", "column": "aspect_ratio", "op": "<=",
                               "threshold": 1.4, "fraction": None, "kept_alone": 1, "kept_cumulative": 1,
                               "detail": {}}]}}
    )  # fmt: skip
    p = tmp_path / "structured.json"
    np.save(tmp_path / "structured.npy", load_subset(b))
    js["subset"] = str(tmp_path / "structured.npy")
    p.write_text(json.dumps(js))
    d = ReportData(run_dir, [p], progress=False, images=False)
    sub = d.subsets[0]
    assert [(c.column, c.op, c.value) for c in sub.cuts] == [
        ("lang_score", ">=", 0.5), (B_TOP[0], ">=", t), ("aspect_ratio", "<=", 1.4)
    ]  # fmt: skip
    notes = d.step_notes[sub.label]
    assert [n for _, n, _ in notes] == [None] * 5  # every step re-evaluated and matched its count
    assert all(g is not None for _, _, g in notes[:4])
    page = Page(d).render()
    assert "aspect_ratio &lt;= 1.4" in page and "lang_score &gt;= 0.5" in page


def test_thumbnails_are_capped_and_missing_shards_give_placeholders(run, tmp_path):
    run_dir, a, b = run
    shard = tmp_path / "gone"
    # point one table at a shard that does not exist: the page still renders, with placeholders
    import shutil

    moved = run_dir.parent / "shards" / "00001.tar"
    shutil.move(moved, shard)
    try:
        page = write_html(run_dir, [a, b], tmp_path / "t.html", progress=False, max_thumbs=7).read_text()
    finally:
        shutil.move(shard, moved)
    t = Tags(page)
    jpegs = [i for i in t.find("img") if i["src"].startswith("data:image/jpeg")]
    assert 0 < len(jpegs) <= 7
    assert "shard not found" in page and "thumbnail cap (7) was reached" in page
    for i in jpegs:  # ~128 px JPEGs
        from PIL import Image

        im = Image.open(io.BytesIO(base64.b64decode(i["src"].split(",", 1)[1])))
        assert max(im.size) <= 128 and im.format == "JPEG"


def test_shard_reader_stops_once_found_and_skips_links(tmp_path):
    p = write_tar(tmp_path / "s.tar", [("k0", sample(0)), ("k1", sample(1)), ("k2", sample(2))])
    data = p.read_bytes()
    cut = tmp_path / "cut.tar"  # damage after the first samples: never reached when k0, k1 are wanted
    cut.write_bytes(data[: int(len(data) * 0.8)] + b"\x00garbage" * 10)
    got = dict(iter_shard_images(str(cut), {"k0", "k1"}))
    assert set(got) == {"k0", "k1"} and got["k0"] == sample(0)["jpg"]
    with pytest.raises((tarfile.TarError, OSError)):
        dict(iter_shard_images(str(cut), {"k0", "nope"}))
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tf:
        info = tarfile.TarInfo("k9.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    assert dict(iter_shard_images(str(link), {"k9"})) == {}
    th = read_thumbnails([("s", "k9"), ("s", "k0"), ("x", "k0")], {"s": str(link), "x": None}, progress=False)
    assert th[("s", "k9")].error == "image not found in the shard" and th[("x", "k0")].error


def test_hostile_captions_are_escaped(tmp_path):
    from altsift.config import build_config
    from altsift.pipeline.score import score

    evil = '<script>alert(1)</script><img src="http://evil.example/x.png"> a photo of a red car'
    shard = write_tar(
        tmp_path / "00000.tar", [(f"k{i}", sample(i, evil if i == 0 else None)) for i in range(4)]
    )
    cfg = build_config({"signals": ["basic"], "score": {"progress": False}})
    score([str(shard)], tmp_path / "run", cfg.signals, cfg)
    page = write_html(tmp_path / "run", [], tmp_path / "e.html", progress=False).read_text()
    t = Tags(page)
    assert not t.find("script") and all(i["src"].startswith("data:") for i in t.find("img"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "evil.example" not in "".join(
        a.get("src") or "" for _, a in t.tags
    )


def test_cli_writes_html_and_markdown(run, tmp_path):
    run_dir, a, b = run
    r = CliRunner().invoke(
        app, ["report", str(run_dir), "--subset", str(a), "--subset", str(b), "-o", str(tmp_path / "c.html"),
              "--scatter", "lang_score,caption_num_chars", "--no-images"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert r.stdout.strip() == str(tmp_path / "c.html")
    page = (tmp_path / "c.html").read_text()
    assert "lang_score against caption_num_chars" in page and "data:image/jpeg" not in page
    r = CliRunner().invoke(app, ["report", str(run_dir), "--subset", str(a), "--no-images"])
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == [str(run_dir / "report.md"), str(run_dir / "report.html")]
    r = CliRunner().invoke(app, ["report", str(run_dir), "-o", str(tmp_path / "x.txt")])
    assert r.exit_code == 2 and r.stderr.startswith("error:")
    r = CliRunner().invoke(
        app, ["report", str(run_dir), "--scatter", "nope,lang_score", "-o", str(tmp_path / "y.html")]
    )
    assert r.exit_code == 2 and "nope" in r.stderr


def test_core_commands_do_not_import_matplotlib():
    """Selecting and the text report stay light: matplotlib is loaded only by the HTML report."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from altsift.cli import _load_commands\n"
        "_load_commands()\n"
        "import altsift.report.summary, altsift.report.stats, altsift.report.subsets, altsift.select.core\n"
        "print(sorted(m for m in ('matplotlib', 'selenium') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_datacomp_metadata_folder_without_images(tmp_path):
    """DataComp metadata (no shards, no keys): plots and grids, with a placeholder instead of images."""
    import hashlib

    from altsift.io.uids import save_subset

    n = 60
    uid = [hashlib.md5(str(i).encode()).hexdigest() for i in range(n)]
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {"uid": uid, "url": [f"http://example.com/{i}.jpg" for i in range(n)], "text": [f"a photo of a thing {i}" for i in range(n)],
         "clip_b32_similarity_score": rng.normal(0.3, 0.04, n), "clip_l14_similarity_score": rng.normal(0.25, 0.04, n)}
    ).to_parquet(tmp_path / "0000.parquet")  # fmt: skip
    save_subset(tmp_path / "none.npy", [])
    save_subset(tmp_path / "half.npy", uid[::2])
    page = write_html(
        tmp_path, [tmp_path / "none.npy", tmp_path / "half.npy"], tmp_path / "m.html", progress=False
    )
    t = Tags(page.read_text())
    assert {"compare", "signals", "captions"} <= t.ids() and not t.find("img", src="http://example.com/0.jpg")
    assert "no image: the table has no shard key" in page.read_text()
    assert f"uid {uid[0]}" in page.read_text() or f"uid {uid[2]}" in page.read_text()


def test_options_are_validated(run):
    with pytest.raises(ConfigError, match="per_grid"):
        ReportData(run[0], [], per_grid=0)
    with pytest.raises(ConfigError, match="thumbs_per_grid"):
        ReportData(run[0], [], thumbs_per_grid=3)


def test_a_corrupt_table_is_named_by_report_and_stats(run, tmp_path):
    """Issue 10 item 9: a corrupt score table makes report and stats name the bad file (exit 2), no traceback."""
    import shutil

    run_dir, a, _ = run
    bad_run = tmp_path / "bad"
    shutil.copytree(run_dir, bad_run)
    victim = sorted((bad_run / "scores").glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    for args in (
        ["report", str(bad_run), "--no-images", "-o", str(tmp_path / "r.html")],
        ["stats", str(bad_run)],
    ):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, r.output
        assert str(victim) in r.stderr and "corrupt or truncated" in r.stderr and "Traceback" not in r.stderr
