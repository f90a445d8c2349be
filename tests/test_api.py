"""The Python API (issue 13 item 3): score -> select -> export -> report from a notebook, in-memory pairs,
and a light ``import altsift``."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

import altsift
from altsift.errors import ConfigError
from altsift.io.shards import read_shard
from helpers_shards import jpeg_bytes, sample, write_tar

OPTS = {"score": {"progress": False}}


def test_import_is_light_and_dir_shows_the_api():
    code = (
        "import sys, altsift; heavy = {'numpy', 'pandas', 'pyarrow', 'torch', 'pydantic', 'typer', 'PIL'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy)); print(dir(altsift))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, names = r.stdout.strip().splitlines()
    assert loaded == "[]"
    for name in (
        "score",
        "score_pairs",
        "open_run",
        "export",
        "Run",
        "Subset",
        "list_signals",
        "list_presets",
        "__version__",
        "ConfigError",
    ):
        assert repr(name) in names
    with pytest.raises(AttributeError):
        altsift.no_such_thing  # noqa: B018


def test_score_select_export_report_round_trip(tmp_path):
    words = ["a", "photo", "of", "a", "red", "car", "parked", "on", "the", "street", "at", "night"]
    shards = [
        write_tar(
            tmp_path / "in" / f"{s:05d}.tar",
            [(f"{s}{j}", sample(4 * s + j, text=" ".join(words[: 3 + 4 * s + j]))) for j in range(4)],
        )
        for s in range(2)
    ]
    run = altsift.score([str(p) for p in shards], out=tmp_path / "run", signals=["basic"], options=OPTS)
    assert isinstance(run, altsift.Run) and run.last_score.samples_scored == 8
    assert run.kind == "run" and {"uid", "status", "caption_num_words", "basic_pass"} <= set(run.columns)

    df = run.to_pandas(columns=["uid", "caption_num_chars"])
    assert list(df.columns) == ["uid", "caption_num_chars"] and len(df) == 8
    t = run.table(columns=["uid", "basic_pass"])
    assert isinstance(t, pa.Table) and t.column_names == ["uid", "basic_pass"]
    with pytest.raises(ConfigError, match="nope"):
        run.table(columns=["nope"])

    sub = run.select(preset="basic_filter")
    assert len(sub) == 8 and sub.summary["pool_rows"] == 8 and sub.summary["steps"]
    top = altsift.open_run(tmp_path / "run").select(top_fraction={"caption_num_chars": 0.5})
    assert 0 < len(top) < 8 and set(top.uids) <= set(sub.uids)
    assert list(top.to_pandas()["uid"]) == top.uids
    few = top.to_pandas(columns=["uid", "caption_num_chars"])  # only these columns, selected rows only
    assert list(few.columns) == ["uid", "caption_num_chars"] and list(few["uid"]) == top.uids
    chars = dict(zip(df["uid"], df["caption_num_chars"], strict=True))
    assert list(few["caption_num_chars"]) == [chars[u] for u in top.uids]
    assert few["caption_num_chars"].min() > min(chars.values())

    # export an unsaved subset, then a saved one; both read back with every uid
    s1 = run.export(top, tmp_path / "e1", progress=False)
    assert s1.written == len(top) and s1.missing == 0
    path = sub.save(tmp_path / "sel" / "basic.npy")
    assert path.exists() and json.loads(path.with_suffix(".json").read_text())["selected"] == 8
    s2 = altsift.export(run, sub, tmp_path / "e2", shard_size=3, progress=False)
    assert s2.written == 8 and len(s2.shards) == 3
    got = sorted(json.loads(x.files["json"])["uid"] for s in s2.shards for x in read_shard(s).samples)
    assert got == sorted(sub.uids)

    rep = run.report(sub)
    assert rep == tmp_path / "run" / "report.md" and "preset basic_filter" in rep.read_text().replace(
        "\\_", "_"
    )
    rep2 = run.report(top, out=tmp_path / "top.md")  # unsaved subset: reported without writing into the run
    assert rep2.exists() and not (tmp_path / "run" / "subset.json").exists()
    pytest.importorskip("matplotlib")
    page = run.report([sub, top], out=tmp_path / "cmp.html", images=False)  # the visual page, A vs B
    html = page.read_text()
    assert page == tmp_path / "cmp.html" and html.startswith("<!DOCTYPE html>") and "Compare" in html
    assert not list((tmp_path / "run").glob("subset*"))


def test_score_pairs_in_memory_matches_scoring_the_same_pairs_from_a_shard(tmp_path):
    """Reproduced: scoring PIL images by hand needed a 9-key batch dict (KeyError: 'original_width')."""
    imgs = [Image.open(io.BytesIO(jpeg_bytes(256, 224, seed=i))) for i in range(3)]
    wide = Image.new("RGB", (900, 100))
    caps = ["a photo of a red car on the street", "a brown dog", "tiny"]
    png = io.BytesIO()
    imgs[1].save(png, "PNG")
    (tmp_path / "img.jpg").write_bytes(jpeg_bytes(300, 300, seed=9))
    pairs = [
        (imgs[0], caps[0]),
        (png.getvalue(), caps[1]),
        (imgs[2], caps[2]),
        (wide, "a very wide banner image"),
        (imgs[0], None),
        (b"not an image", "a caption here"),
        (tmp_path / "img.jpg", "a file on disk"),
    ]
    df = altsift.score(pairs, signals=["basic"], options={"basic": {"min_words": 1}})
    assert isinstance(df, pd.DataFrame) and len(df) == len(pairs)
    assert list(df["status"]) == ["ok", "ok", "ok", "ok", "missing_caption", "bad_image", "ok"]
    assert list(df["original_width"][:4]) == [256, 256, 256, 900] and df["original_height"][6] == 300
    assert list(df["basic_pass"][:4]) == [True, True, False, False]  # 'tiny': 4 chars; 900x100: aspect 9
    assert df["uid"].is_unique and (df["shard"] == "memory").all()

    # the same first three pairs as a shard give the same signal values
    items = [(f"k{i}", {**sample(i, text=caps[i]), "jpg": jpeg_bytes(256, 224, seed=i)}) for i in range(3)]
    run = altsift.score(
        str(write_tar(tmp_path / "in" / "00000.tar", items)),
        out=tmp_path / "run",
        signals=["basic"],
        options={**OPTS, "basic": {"min_words": 1}},
    )
    from_shard = run.to_pandas().set_index("key")
    for i, col in (
        (i, c) for i in range(3) for c in ("caption_num_words", "aspect_ratio", "basic_pass", "lang")
    ):
        assert df[col][i] == from_shard[col][f"k{i}"], (i, col)

    t = altsift.score_pairs(pairs[:2], signals="basic", uids=["A" * 32, "b" * 32], as_arrow=True)
    assert isinstance(t, pa.Table) and t.column("uid").to_pylist() == ["a" * 32, "b" * 32]
    with pytest.raises(ConfigError, match="out"):
        altsift.score(pairs, out=tmp_path / "x")
    with pytest.raises(ConfigError, match="image must be"):
        altsift.score_pairs([(np.zeros((2, 2)), "x")])


def test_catalogues():
    sigs, pre = altsift.list_signals(), altsift.list_presets()
    assert "basic_pass" in sigs["basic"]["columns"] and sigs["basic"]["options"]["min_words"]["default"] == 2
    assert "clip" in sigs and "fraction" in pre["clip_score"]["options"]


def test_api_select_composes_like_the_cli(tmp_path):
    """Run.select takes what `altsift select` takes: several presets, --and/--not subsets, verdicts, out."""
    words = ["a", "photo", "of", "a", "red", "car", "parked", "on", "the", "street", "at", "night"]
    shard = write_tar(
        tmp_path / "in" / "00000.tar", [(f"k{j}", sample(j, text=" ".join(words[: 2 + j]))) for j in range(8)]
    )
    run = altsift.score([str(shard)], out=tmp_path / "run", signals=["basic"], options=OPTS)
    long = run.select(top_fraction={"caption_num_chars": 0.5}, out=tmp_path / "long.npy")
    assert long.path == tmp_path / "long.npy" and (tmp_path / "long.json").exists()
    with pytest.raises(ConfigError, match="overwrite"):
        run.select(top_fraction={"caption_num_chars": 0.5}, out=tmp_path / "long.npy")
    both = run.select(
        presets={"basic_filter": {}, "no_filter": {}}, and_=[long], verdicts=True, out=tmp_path / "both.npy"
    )
    assert set(both.uids) == set(long.uids) & set(run.select(preset="basic_filter").uids)
    assert (tmp_path / "both.verdicts.parquet").exists()
    rest = run.select(not_=[tmp_path / "long.npy"])
    assert set(rest.uids) == set(run.select().uids) - set(long.uids)
    with pytest.raises(ConfigError, match="saved first"):
        run.select(and_=[run.select(preset="basic_filter")])
