"""``altsift report``: numbers checked against values computed here from the raw tables."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import altsift.cli.core  # noqa: F401  (registers score/select/demo)
import altsift.cli.report  # noqa: F401  (registers report)
from altsift.cli import app
from altsift.config import build_config
from altsift.pipeline.score import score
from altsift.report.summary import CAPTION_CHARS, build_report, histogram_bar, render_markdown, write_report
from altsift.select.core import SelectRequest, run_selection, write_selection
from helpers_shards import jpeg_bytes, make_shards, sample, write_tar

TEXTS = [
    "a photo of a red car parked on the street",
    "two dogs",  # too few words
    "Ein Hund spielt im Garten mit einem roten Ball",  # not English
    "a very long caption about a small wooden house by the lake in the early morning light with fog "
    "rising from the water and birds flying over the trees",
    "sunset over the mountains with orange clouds",
    "ok",
]
WHERE = "basic_pass"
TOP = ("caption_num_chars", 0.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 clean shards, one with broken samples, one truncated; scored with ``basic``; selected."""
    tmp = tmp_path_factory.mktemp("report")
    shards = make_shards(tmp / "in", n_shards=3, per_shard=6)
    for i, p in enumerate(shards):  # varied captions and sizes so every step removes something
        items = [
            (f"{i:05d}{j:04d}", sample(i * 6 + j, TEXTS[(i + j) % len(TEXTS)], w=120 if j == 5 else 256))
            for j in range(6)
        ]
        write_tar(p, items)
    broken = [
        ("b0", sample(100, "a cat sleeping on a warm sofa")),
        ("b1", {**sample(101), "jpg": jpeg_bytes(seed=1)[:200]}),
        ("b2", {**sample(102), "txt": b"   "}),
        ("b3", sample(0, "the uid of shard 00000 row 0 again")),  # cross-shard repeat
        ("b4", {**sample(104), "jpg": b"not an image"}),
    ]
    shards.append(write_tar(tmp / "in" / "00003.tar", broken))
    trunc = write_tar(tmp / "in" / "00004.tar", [(f"t{j}", sample(200 + j)) for j in range(4)])
    trunc.write_bytes(trunc.read_bytes()[: int(trunc.stat().st_size * 0.6)])
    shards.append(trunc)
    cfg = build_config({"signals": ["basic"], "score": {"progress": False}})
    score([str(p) for p in shards], tmp / "run", cfg.signals, cfg)
    req = SelectRequest(where=[WHERE], top_fraction={TOP[0]: TOP[1]})
    df, sel = run_selection(tmp / "run", req)
    write_selection(df, sel, tmp / "run" / "subset.npy", tmp / "run")
    return tmp / "run"


def _raw(run_dir):
    """The pool read straight from the parquet files (not through load_pool)."""
    return pd.concat(
        [pq.read_table(f).to_pandas() for f in sorted((run_dir / "scores").glob("*.parquet"))],
        ignore_index=True,
    )


def _masks(df):
    """Each step's own mask, computed here: status, first uid, where, DataComp top fraction."""
    s = pd.to_numeric(df[TOP[0]], errors="coerce").to_numpy(float)
    valid = s[~np.isnan(s)]
    t = -np.sort(-valid)[int(len(valid) * TOP[1])]
    return [
        (df["status"] == "ok").to_numpy(),
        ~df["uid"].duplicated().to_numpy(),
        df["basic_pass"].fillna(False).astype(bool).to_numpy(),
        np.nan_to_num(s, nan=-np.inf) >= t,
    ]


def test_pool_statuses_and_shard_errors(run):
    df, rep = _raw(run), build_report(run)
    assert rep["pool_rows"] == len(df)
    assert rep["shards"]["count"] == 5
    assert [e["shard"] for e in rep["shards"]["read_errors"]] == ["00004"]
    got = {s["status"]: s["count"] for s in rep["statuses"]}
    assert got == dict(Counter(df["status"]))
    assert {"bad_image", "empty_caption", "truncated_shard"} <= set(got)
    for s in rep["statuses"]:
        if s["status"] != "ok":  # the first error message of that status, in pool order
            assert s["example_error"] == df.loc[df["status"] == s["status"], "error"].dropna().iloc[0]


def test_column_summaries_match_numpy(run):
    df, rep = _raw(run), build_report(run)
    cols = {c["name"]: c for c in rep["columns"]}
    assert {
        "caption_num_words",
        "caption_num_chars",
        "lang",
        "lang_score",
        "aspect_ratio",
        "basic_pass",
    } == set(cols)
    for name in ("caption_num_chars", "lang_score", "aspect_ratio"):
        v = pd.to_numeric(df[name], errors="coerce").dropna().to_numpy(float)
        c = cols[name]
        assert c["kind"] == "numeric" and c["non_null"] == len(v)
        assert c["p10"] == pytest.approx(np.quantile(v, 0.1)) and c["p50"] == pytest.approx(np.median(v))
        assert c["p90"] == pytest.approx(np.quantile(v, 0.9))
        assert (c["min"], c["max"], c["mean"]) == pytest.approx((v.min(), v.max(), v.mean()))
        assert c["histogram"]["counts"] == np.histogram(v, bins=10)[0].tolist()
    bp = df["basic_pass"].dropna().astype(bool)
    assert cols["basic_pass"]["share_true"] == pytest.approx(bp.mean())
    top = Counter(df["lang"].dropna()).most_common()
    assert [(t["value"], t["count"]) for t in cols["lang"]["top"]][:1] == top[:1]
    assert sum(t["count"] for t in cols["lang"]["top"]) == sum(n for _, n in top[:5])


def test_funnel_and_removed_examples(run):
    df, rep = _raw(run), build_report(run)
    steps = rep["selection"]["steps"]
    masks = _masks(df)
    assert len(steps) == len(masks)
    cum = np.ones(len(df), bool)
    for step, m in zip(steps, masks, strict=True):
        before = cum.copy()
        cum &= m
        assert (step["kept_alone"], step["kept_cumulative"]) == (int(m.sum()), int(cum.sum()))
        assert step["removed"] == int(before.sum() - cum.sum())
        assert step["note"] is None
        removed = before & ~m
        assert len(step["examples"]) == min(3, int(removed.sum()))
        assert step["removed"] > 0, step["name"]  # the fixture makes every step bite
        for e in step["examples"]:
            row = df.index[(df["shard"] == e["shard"]) & (df["key"] == e["key"])]
            assert len(row) == 1 and removed[row[0]], (step["name"], e)
            text = (
                " ".join(str(df.loc[row[0], "text"]).split()) if df.loc[row[0], "text"] is not None else None
            )
            assert e["text"] is None or len(e["text"]) <= CAPTION_CHARS
            assert e["text"] is None or text.startswith(e["text"].rstrip("…"))
    assert rep["selection"]["selected"] == int(cum.sum())
    assert steps[3]["detail"]["fraction"] == TOP[1]
    md = render_markdown(rep)
    assert "## Selection funnel" in md and "threshold=" in md and "top 0.5 of caption\\_num\\_chars" in md


def test_preset_step_examples_come_from_the_subset_file(run, tmp_path):
    df, sel = run_selection(run, SelectRequest(preset="basic_filter"))
    write_selection(df, sel, tmp_path / "bf.npy", run)
    rep = build_report(run, tmp_path / "bf.npy")
    last = rep["selection"]["steps"][-1]
    assert last["name"] == "preset basic_filter" and last["note"] is None
    raw = _raw(run)
    eligible = _masks(raw)[0] & _masks(raw)[1]
    removed = eligible & ~raw["basic_pass"].fillna(False).astype(bool).to_numpy()
    assert last["removed"] == int(removed.sum()) > 0
    keys = set(zip(raw["shard"][removed], raw["key"][removed], strict=True))
    assert last["examples"] and all((e["shard"], e["key"]) in keys for e in last["examples"])


def test_report_is_deterministic_and_cli_writes_files(run, tmp_path):
    assert render_markdown(build_report(run)) == render_markdown(build_report(run))
    out = tmp_path / "r" / "rep.md"
    r = CliRunner().invoke(app, ["report", str(run), "--subset", str(run / "subset.npy"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(out)
    assert out.read_text() == render_markdown(build_report(run))
    js = json.loads(out.with_suffix(".json").read_text())
    assert js["selection"]["selected"] == json.loads((run / "subset.json").read_text())["selected"]
    assert write_report(run) == run / "report.md" and (run / "report.json").is_file()
    r = CliRunner().invoke(app, ["report", str(run), "--subset", str(tmp_path / "nope.npy")])
    assert r.exit_code != 0


def test_changed_pool_gives_a_warning_not_wrong_examples(run, tmp_path):
    sel = json.loads((run / "subset.json").read_text())
    sel["pool_rows"] += 1
    (tmp_path / "old.json").write_text(json.dumps(sel))
    rep = build_report(run, tmp_path / "old.json")
    assert rep["selection"]["warnings"] and not any(s["examples"] for s in rep["selection"]["steps"])


def test_histogram_bar():
    assert histogram_bar([0, 1, 2, 4]) == " ▂▄█"
    assert histogram_bar([]) == "" and len(histogram_bar([3] * 10)) == 10


def test_demo_writes_report(tmp_path):
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "demo" / "run" / "report.md").read_text()
    assert "## Statuses" in md and "where basic\\_pass" in md and "Shard read errors" in md
