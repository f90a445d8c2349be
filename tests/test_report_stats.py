"""Parrot's Table 1 statistics and Nguyen et al.'s caption statistics, against hand computations."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import altsift.cli.report  # noqa: F401  (registers report / stats)
from altsift.analysis.probe import overlay_text
from altsift.cli import _load_commands, app
from altsift.io.tables import table_path, with_signals_meta, write_table_atomic
from altsift.report.html import Page, ReportData
from altsift.report.stats import cotr_bin_index, noun_lemma, parrot_stats, text_diversity, tokens
from altsift.report.subsets import PoolView, caption_stats
from altsift.report.summary import build_report, render_markdown
from altsift.select.core import SelectRequest, run_selection, write_selection
from helpers_shards import sample, uid_of, write_tar
from report_helpers import Tags


def _jpeg(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=92)
    return b.getvalue()


def _table(run, shard: str, cols: dict) -> None:
    n = len(next(iter(cols.values())))
    base = {
        "uid": [uid_of(int(shard) * 1000 + i) for i in range(n)],
        "key": [f"{shard}{i:04d}" for i in range(n)],
        "shard": [shard] * n,
        "status": ["ok"] * n,
    }
    t = pa.table({**base, **cols})
    write_table_atomic(with_signals_meta(t, {}, {"path": None, "rows": n}), table_path(run, shard))


def test_parrot_stats_match_a_hand_computation(tmp_path):
    run = tmp_path / "run"
    # table 0: 5 images, one not scored by ocr (null has_text); table 1 has no cotr_fuzzy column
    _table(
        run,
        "00000",
        {
            "has_text": [True, True, False, None, True],
            "cotr": [1.0, 0.5, 0.0, None, 0.0],
            "cotr_fuzzy": [1.0, 0.75, 0.0, None, 0.2],
        },
    )
    _table(run, "00001", {"has_text": [True, False], "cotr": [0.25, 0.0]})
    st = parrot_stats(run)
    assert (st["pool_rows"], st["images"], st["with_text"]) == (7, 6, 4)
    assert st["share_with_text"] == pytest.approx(4 / 6)
    ex = st["exact"]
    # CoTR over the 6 scored images: (1 + .5 + 0 + 0 + .25 + 0) / 6; over the 4 with text: 1.75 / 4
    assert ex["mean_all"] == pytest.approx(1.75 / 6) and ex["mean_text"] == pytest.approx(1.75 / 4)
    assert (ex["co_emb"], ex["fully_spotted"], ex["partly_spotted"]) == (3, 1, 2)
    assert ex["share_co_emb_text"] == pytest.approx(3 / 4) and ex["share_fully_text"] == pytest.approx(1 / 4)
    #                       0  (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1)  1
    assert ex["hist_all"] == [3, 0, 1, 1, 0, 0, 1]
    assert ex["hist_text"] == [1, 0, 1, 1, 0, 0, 1]
    fz = st["fuzzy"]  # only table 0 has it: 4 scored images, 3 with text
    assert (fz["images"], fz["images_with_text"]) == (4, 3)
    assert fz["mean_all"] == pytest.approx(1.95 / 4) and fz["mean_text"] == pytest.approx(1.95 / 3)
    assert fz["hist_text"] == [0, 1, 0, 0, 1, 0, 1] and fz["partly_spotted"] == 2
    assert cotr_bin_index(np.array([0, 1e-9, 0.2, 0.2001, 0.8, 0.99, 1.0])).tolist() == [0, 1, 1, 2, 4, 5, 6]
    md = render_markdown(build_report(run))
    assert "## Parrot captions" in md and "| 29.2% |" in md  # 1.75 / 6


@pytest.fixture(scope="module")
def parrot_run(tmp_path_factory):
    """Four real photos scored with ocr + parrot: text fully, partly, not repeated, and no text."""
    _load_commands()
    tmp = tmp_path_factory.mktemp("parrot_stats")
    text_img, _ = overlay_text(
        Image.fromarray(data.chelsea()).resize((360, 240)), "Hogsmeade Station", font_size=28
    )
    plain = Image.fromarray(data.coffee()).resize((300, 200))
    items = []
    for i, (im, cap) in enumerate(
        [(text_img, "Hogsmeade Station"), (text_img, "Hogsmeade Station at night"), (text_img, "a cat"),
         (plain, "a cup of coffee")]
    ):  # fmt: skip
        s = sample(i, cap, w=im.width, h=im.height)
        s["jpg"] = _jpeg(im)
        items.append((f"00000{i:04d}", s))
    shard = write_tar(tmp / "shards" / "00000.tar", items)
    run = tmp / "run"
    args = ["score", str(shard), "-o", str(run), "-s", "ocr,parrot", "--set", "score.progress=false"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    return run


def test_parrot_stats_on_a_scored_run(parrot_run, tmp_path):
    st = parrot_stats(parrot_run)
    # by hand: CoTR = {1, 1/2, 0, 0}; three images carry text
    assert (st["images"], st["with_text"]) == (4, 3)
    for r in (st["exact"], st["fuzzy"]):  # "at", "night", "a", "cat" match no OCR word, fuzzily or not
        assert r["mean_all"] == pytest.approx(1.5 / 4) and r["mean_text"] == pytest.approx(1.5 / 3)
        assert (r["co_emb"], r["fully_spotted"], r["partly_spotted"]) == (2, 1, 1)
        assert r["hist_all"] == [2, 0, 0, 1, 0, 0, 1] and r["hist_text"] == [1, 0, 0, 1, 0, 0, 1]
    r = CliRunner().invoke(app, ["stats", str(parrot_run), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parrot"] == json.loads(json.dumps(st))
    r = CliRunner().invoke(app, ["stats", str(parrot_run)])
    assert r.exit_code == 0 and "75.00%" in r.stdout and "37.50%" in r.stdout  # with text; mean CoTR
    # the HTML report: statistics, the CoTR plot and the OCR polygons over the parrot examples
    d = ReportData(parrot_run, [], progress=False)
    # every card has its thumbnail, at both sizes when a row is in a parrot grid and a signal grid
    both = {c.row for g in d.all_grids() if g.parrot for c in g.cards} & {
        c.row for g in d.all_grids() if not g.parrot for c in g.cards
    }
    assert both and all(d.thumb(c.row, g.parrot).data_uri for g in d.all_grids() for c in g.cards)
    page = Page(d).render()
    t = Tags(page)
    assert {"parrot", "parrot-top", "parrot-text", "cotr-plot"} <= t.ids()
    polys = t.find("polygon", class_="ocr-poly")
    co = t.find("polygon", class_="co")
    assert len(co) >= 2 and len(polys) >= 3  # samples 0 and 1 (co-emb.), sample 2 (text, CoTR 0)
    assert page.count('<div class="ov"') == 3


def test_stats_without_ocr_columns_is_a_clear_error(tmp_path):
    _table(tmp_path / "run", "00000", {"clip_score": [0.3, 0.2]})
    r = CliRunner().invoke(app, ["stats", str(tmp_path / "run")])
    assert r.exit_code == 2 and "-s ocr,parrot" in r.stderr


def test_trigrams_and_nouns_by_hand():
    assert tokens("A red-dog's  BALL!") == ["a", "red", "dog", "s", "ball"]
    got = text_diversity(["a red dog runs", "A red dog sleeps.", "Dogs!", None, "  "])
    # trigrams: (a red dog) twice, (red dog runs), (red dog sleeps); nouns: dog, run, sleep ("red" is
    # also an adjective; "a" is a stop word) -- the documented WordNet approximation
    assert got == {"captions": 3, "unique_trigrams": 3, "unique_nouns": 3}
    assert [noun_lemma(w) for w in ("dogs", "red", "the", "in", "geese", "x1")] == [
        "dog",
        None,
        None,
        None,
        "goose",
        None,
    ]


def test_caption_stats_of_a_mixed_subset(tmp_path):
    """Captions used by a raw/synthetic mixing preset: share, mean CLIP of the caption used, diversity."""
    run = tmp_path / "run"
    raw = ["a dog on the beach", "a cat on a sofa", "red car", "old house by the lake", "a tree"]
    syn = ["a brown dog running on sand", "a cat sleeping", "a red sports car", "a house near water", None]
    _table(
        run,
        "00000",
        {
            "text": raw,
            "clip_score": [0.40, 0.10, 0.35, 0.05, 0.20],
            "synthetic_caption": syn,
            "clip_score_synthetic": [0.30, 0.30, 0.25, 0.33, None],
        },
    )
    req = SelectRequest(preset="mix_raw_top_synthetic_rest", preset_options={"raw_fraction": 0.4})
    df, sel = run_selection(run, req)
    write_selection(df, sel, tmp_path / "mix.npy", run)
    caps = caption_stats(PoolView(run, [tmp_path / "mix.npy"]))
    pool_row, mix = caps["rows"]
    # DataComp threshold for 40% of 5 rows: the 3rd best raw score, 0.20; rows 0, 2, 4 keep their raw
    # caption, rows 1 and 3 (below it) take their synthetic one
    used = ["a dog on the beach", "a cat sleeping", "red car", "a house near water", "a tree"]
    assert (mix["rows"], mix["synthetic_share"]) == (5, 0.4)
    assert mix["mean_clip"] == pytest.approx(np.mean([0.40, 0.30, 0.35, 0.33, 0.20]))
    assert caps["sample"] == 5 and mix["captions"] == 5
    assert mix["unique_trigrams"] == text_diversity(used)["unique_trigrams"] == 3 + 1 + 0 + 2 + 0
    assert pool_row["mean_clip"] == pytest.approx(np.mean([0.40, 0.10, 0.35, 0.05, 0.20]))
    assert pool_row["synthetic_share"] == 0.0 and pool_row["rows"] == 5
    r = CliRunner().invoke(app, ["stats", str(run), "--subset", str(tmp_path / "mix.npy"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["captions"]["rows"][1]["synthetic_share"] == 0.4
    d = ReportData(run, [tmp_path / "mix.npy"], progress=False, images=False)
    assert d.captions["rows"][1]["mean_clip"] == pytest.approx(mix["mean_clip"])
