"""Export never deletes or modifies inputs (issue 10 item 2), keys round-trip through webdataset's key rule
(issue 10 item 10), and missing samples are an error with exit 3, with a way to remap moved shards
(issue 12 item 6)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from altsift.cli import app
from altsift.config import build_config
from altsift.errors import ConfigError, IncompleteError
from altsift.io.shards import read_shard
from altsift.io.wds_writer import safe_key, unescape_key
from altsift.pipeline.export import MANIFEST, export
from altsift.pipeline.score import score
from altsift.select.core import SelectRequest, run_selection, write_selection
from helpers_shards import sample, write_tar

runner = CliRunner()


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "altsift", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _run(tmp_path: Path, shards: list[Path], run_name: str = "run") -> Path:
    c = build_config({"signals": ["basic"], "score": {"progress": False}, "basic": {"min_words": 1}})
    score([str(p) for p in shards], tmp_path / run_name, c.signals, c)
    run = tmp_path / run_name
    df, sel = run_selection(run, SelectRequest())
    write_selection(df, sel, run / "s.npy", run)
    return run


def _datacomp_named_shards(root: Path, n: int = 2, per: int = 3) -> list[Path]:
    """Input shards named like DataComp's (``00000000.tar``): the names an export also writes."""
    i = 0
    paths = []
    for s in range(n):
        items = []
        for j in range(per):
            items.append((f"{s:04d}{j:04d}", sample(i)))
            i += 1
        paths.append(write_tar(root / f"{s:08d}.tar", items))
    return paths


# ----------------------------------------------------------------------------- inputs are never touched
def test_export_over_datacomp_named_inputs_with_overwrite_is_refused(tmp_path):
    """Reproduced: `export RUN --to shards/ --overwrite` replaced input shards named 00000000.tar."""
    shards = _datacomp_named_shards(tmp_path / "shards")
    run = _run(tmp_path, shards)
    before = _digest(tmp_path / "shards")
    with pytest.raises(ConfigError, match="holds input shards"):
        export(run, run / "s.npy", tmp_path / "shards", overwrite=True, progress=False)
    r = runner.invoke(
        app,
        ["export", str(run), "--subset", str(run / "s.npy"), "--to", str(tmp_path / "shards"), "--overwrite"],
    )
    assert r.exit_code == 2 and "holds input shards" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _digest(tmp_path / "shards") == before
    assert not (tmp_path / "shards" / ".altsift-export-staging").exists()


def test_run_with_export_into_the_input_folder_and_empty_selection_leaves_inputs(tmp_path):
    """Reproduced: `altsift run` with export.to = the input folder and 0 selected emptied that folder."""
    shards = _datacomp_named_shards(tmp_path / "shards")
    before = _digest(tmp_path / "shards")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"inputs: ['{tmp_path / 'shards'}']\nrun_dir: {tmp_path / 'run'}\nsignals: [basic]\n"
        "score: {progress: false}\nselect: {top_fraction: {caption_num_chars: 0.0001}}\n"
        f"export: {{to: '{tmp_path / 'shards'}'}}\n"
    )
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 2, r.stderr
    assert "holds input shards" in r.stderr and "Traceback" not in r.stderr
    assert _digest(tmp_path / "shards") == before
    assert not (tmp_path / "run").exists()  # refused before any scoring: nothing recorded as done
    assert len(shards) == 2


def test_foreign_tars_and_the_run_dir_are_refused_and_overwrite_replaces_only_listed_files(tmp_path):
    run = _run(tmp_path, _datacomp_named_shards(tmp_path / "in"))
    for bad in (run, run / "scores", run / "export"):
        with pytest.raises(ConfigError, match="inside the run directory"):
            export(run, run / "s.npy", bad, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "00000003.tar").write_bytes(b"someone's shard")
    with pytest.raises(ConfigError, match="no altsift export wrote"):
        export(run, run / "s.npy", other, overwrite=True, progress=False)
    assert (other / "00000003.tar").read_bytes() == b"someone's shard"

    out = tmp_path / "out"
    s1 = export(run, run / "s.npy", out, shard_size=2, progress=False)  # 6 samples -> 3 shards
    manifest = json.loads((out / MANIFEST).read_text())
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == {f"{i:08d}{x}" for i in range(3) for x in (".tar", "_stats.json")}
    for name, f in listed.items():
        data = (out / name).read_bytes()
        assert f["size"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    (out / "README.md").write_text("my notes")
    with pytest.raises(ConfigError, match="--overwrite"):
        export(run, run / "s.npy", out, progress=False)
    s2 = export(run, run / "s.npy", out, shard_size=10, progress=False, overwrite=True)  # 1 shard now
    assert s1.written == s2.written == 6
    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST,
        "00000000.tar",
        "00000000_stats.json",
        "README.md",
    ]
    assert (out / "README.md").read_text() == "my notes"


# ----------------------------------------------------------------------------- keys round-trip
# Keys as a source tar can hold them (webdataset's rule: dots only in folder names): folders with dots,
# spaces, non-ASCII and '%'.
KEYS = ["x.y/000", "plain_key-1", "a b/c d", "v1.2/sub.dir/k1", "caf\u00e9/1", "100%", "x_y/000"]


def test_safe_key_is_reversible_and_webdataset_safe():
    for k in [*KEYS, "", "%2E", "\udcff", "..", "-", "a.b.c", "x.y_000"]:
        e = safe_key(k)
        assert e and "." not in e and "/" not in e
        assert unescape_key(e) == k
    assert (
        len({safe_key(k) for k in [*KEYS, "x.y_000"]}) == len(KEYS) + 1
    )  # no collisions ('_' vs '.' vs '/')
    assert safe_key("000010042") == "000010042"  # img2dataset keys are unchanged


def test_exported_keys_survive_webdatasets_key_rule(tmp_path):
    """Reproduced: key 'x.y/000' was exported as 'x.y_000.jpg' and read back by webdataset as key 'x'."""
    items = [(k, sample(i)) for i, k in enumerate(KEYS)]
    src = write_tar(tmp_path / "in" / "00000.tar", items)
    assert sorted(s.key for s in read_shard(src).samples) == sorted(KEYS)  # the reader keeps them as keys
    run = _run(tmp_path, [src])
    uid_by_key = {k: json.loads(m["json"])["uid"] for k, m in items}
    out = tmp_path / "out"
    s = export(run, run / "s.npy", out, progress=False)
    assert s.written == len(KEYS) and s.missing == 0

    import webdataset as wds
    from webdataset.tariterators import group_by_keys, tar_file_expander

    with open(out / "00000000.tar", "rb") as f:
        got = list(group_by_keys(tar_file_expander([{"stream": f, "url": "00000000.tar"}])))
    assert len(got) == len(KEYS)
    for smp in got:
        assert {"jpg", "txt", "json"} <= set(smp)
        js = json.loads(smp["json"])
        assert smp["__key__"] == safe_key(js["source_key"])
        assert js["uid"] == uid_by_key[js["source_key"]]
    assert sorted(json.loads(smp["json"])["source_key"] for smp in got) == sorted(KEYS)
    ds = list(wds.WebDataset(str(out / "00000000.tar"), shardshuffle=False))
    assert sorted(d["__key__"] for d in ds) == sorted(safe_key(k) for k in KEYS)
    # and altsift's own reader sees the same samples, none with a problem
    back = read_shard(out / "00000000.tar")
    assert back.error is None and sorted(x.key for x in back.samples) == sorted(safe_key(k) for k in KEYS)
    assert all(x.problem is None and {"jpg", "txt", "json"} <= set(x.files) for x in back.samples)


# ----------------------------------------------------------------------------- fidelity
def test_moved_source_shards_exit_3_then_source_root_remaps_them(tmp_path):
    """Reproduced: export exited 0 after writing nothing when the source shards had moved ("15 not found")."""
    run = _run(tmp_path, _datacomp_named_shards(tmp_path / "old", n=2, per=3))
    shutil.move(tmp_path / "old", tmp_path / "new")
    with pytest.raises(IncompleteError, match="source shard.*not found.*--source-root"):
        export(run, run / "s.npy", tmp_path / "out", progress=False)
    assert not any((tmp_path / "out").glob("*.tar")) if (tmp_path / "out").exists() else True
    r = cli("export", run, "--subset", run / "s.npy", "-o", tmp_path / "out", "--json")
    assert r.returncode == 3, r.stderr
    assert "--source-root" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert json.loads(r.stdout) == {
        "ok": False,
        "error": r.stderr.strip().removeprefix("error: "),
        "exit_code": 3,
    }
    r = runner.invoke(
        app,
        [
            "export",
            str(run),
            "--subset",
            str(run / "s.npy"),
            "-o",
            str(tmp_path / "out"),
            "--source-root",
            f"{tmp_path / 'old'}={tmp_path / 'new'}",
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert "6/6" in r.stderr and "sample" in r.stderr  # the progress bar counts samples
    assert "wrote 6 samples in 1 shards" in r.stdout


def test_samples_missing_inside_a_changed_shard_exit_3_after_exporting_the_rest(tmp_path):
    shards = _datacomp_named_shards(tmp_path / "in", n=2, per=3)
    run = _run(tmp_path, shards)
    with tarfile.open(shards[1]) as tf:  # the shard loses one sample after scoring
        keep = [m for m in tf.getmembers() if not m.name.startswith("00010001.")]
        data = {m.name: tf.extractfile(m).read() for m in keep}
    with tarfile.open(shards[1], "w") as tf:
        import io

        for name, b in data.items():
            info = tarfile.TarInfo(name)
            info.size = len(b)
            tf.addfile(info, io.BytesIO(b))
    with pytest.raises(IncompleteError, match="1 of 6 selected samples were not found") as ei:
        export(run, run / "s.npy", tmp_path / "out", progress=False)
    assert ei.value.summary["written"] == 5 and ei.value.summary["missing"] == 1
    assert len(read_shard(tmp_path / "out" / "00000000.tar").samples) == 5
    r = runner.invoke(
        app, ["export", str(run), "--subset", str(run / "s.npy"), "-o", str(tmp_path / "out2"), "-q"]
    )
    assert r.exit_code == 3 and "not found" in r.stderr and r.stderr.count("\n") == 1


def test_uids_from_another_pool_are_reported_not_failed(tmp_path):
    from altsift.io.uids import load_subset, save_subset

    run = _run(tmp_path, _datacomp_named_shards(tmp_path / "in", n=1, per=3))
    from altsift.io.uids import array_to_uids

    uids = array_to_uids(load_subset(run / "s.npy"))
    save_subset(tmp_path / "mixed.npy", [*uids, "f" * 32])
    s = export(run, tmp_path / "mixed.npy", tmp_path / "out", progress=False)
    assert (s.written, s.missing, s.not_in_run, s.selected) == (3, 0, 1, 4)


def test_subset_given_as_uids_in_memory(tmp_path):
    from altsift.io.uids import array_to_uids, load_subset

    run = _run(tmp_path, _datacomp_named_shards(tmp_path / "in", n=1, per=3))
    uids = array_to_uids(load_subset(run / "s.npy"))
    s = export(run, [u.upper() for u in uids[:2]], tmp_path / "out", progress=False)
    assert s.written == 2
    with pytest.raises(ConfigError, match="not 32-hex uids"):
        export(run, ["not-a-uid"], tmp_path / "out2", progress=False)


def test_export_streams_source_shards_one_sample_at_a_time(tmp_path):
    """Peak memory of an export is about one sample, not one shard: 10 samples of ~0.8 MB images (and an
    unused 4 MB member each) are exported with a traced peak far below the shard's size."""
    import tracemalloc

    from helpers_shards import jpeg_bytes

    items = [
        (f"{i:04d}", {**sample(i), "jpg": jpeg_bytes(1000, 1000, seed=i), "bin": bytes(4 << 20)})
        for i in range(10)
    ]
    shard = write_tar(tmp_path / "in" / "00000.tar", items)
    run = _run(tmp_path, [shard])
    big = shard.stat().st_size
    assert big > 40 << 20
    tracemalloc.start()
    try:
        s = export(run, run / "s.npy", tmp_path / "out", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert s.written == 10 and s.missing == 0
    assert peak < 12 << 20, f"export peaked at {peak / 2**20:.1f} MiB for a {big / 2**20:.0f} MiB shard"
    out = read_shard(next((tmp_path / "out").glob("*.tar"))).samples
    assert [x.files["jpg"] for x in out] == [m["jpg"] for _, m in items] and all(
        "bin" not in x.files for x in out
    )


def test_duplicate_uids_empty_subsets_and_corrupt_tables(tmp_path):
    """Found by review: duplicate uids were reported as "not in this run", an empty export exited 0 and a
    corrupt table crashed export with exit 1; `score -o` inside another run's scores/ was accepted."""
    from altsift.io.uids import array_to_uids, load_subset, save_subset

    run = _run(tmp_path, _datacomp_named_shards(tmp_path / "in", n=2, per=3))
    uids = array_to_uids(load_subset(run / "s.npy"))
    np.save(tmp_path / "dups.npy", np.sort(np.concatenate([load_subset(run / "s.npy")] * 2)))
    s = export(run, tmp_path / "dups.npy", tmp_path / "out", progress=False)
    assert (s.written, s.not_in_run, s.selected) == (6, 0, 6)

    save_subset(tmp_path / "empty.npy", [])
    save_subset(tmp_path / "foreign.npy", ["f" * 32])
    for sub, why in (("empty.npy", "the subset is empty"), ("foreign.npy", "1 not in its score tables")):
        r = runner.invoke(
            app, ["-q", "export", str(run), "--subset", str(tmp_path / sub), "-o", str(tmp_path / "o2")]
        )
        assert r.exit_code == 3 and "nothing to export" in r.stderr and why in r.stderr, r.stderr
        assert not (tmp_path / "o2").exists() or not list((tmp_path / "o2").glob("*.tar"))

    r = runner.invoke(app, ["-q", "score", str(tmp_path / "in"), "-o", str(run / "scores" / "x.parquet")])
    assert r.exit_code == 2 and "inside" in r.stderr and not (run / "scores" / "x.parquet").exists(), r.stderr

    table = run / "scores" / "00000000.parquet"
    table.write_bytes(table.read_bytes()[:-100])  # truncated: no footer
    r = runner.invoke(
        app, ["-q", "export", str(run), "--subset", str(run / "s.npy"), "-o", str(tmp_path / "o3")]
    )
    assert r.exit_code == 2 and str(table) in r.stderr and "corrupt or truncated" in r.stderr, r.stderr
    assert len(uids) == 6
