"""The Ray runner against a real two-node Ray cluster on this machine: same tables, metadata, logs, statuses
and summary as the in-process runner; resume after the driver is killed; work crosses node boundaries.

The cluster is started once for the module with ``ray start --head`` plus a second raylet joined with
``ray start --address`` (``--block``, own process groups), on loopback: Ray rewrites ``127.0.0.1`` to the
machine's network address, so the nodes use ``127.0.0.2`` (also loopback, not rewritten). A random auth
token guards it (Ray's servers listen on every interface). The fixture stops exactly the processes it
started (``ray stop`` would stop every Ray instance on the machine, other users' too).
"""

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from altsift.config import build_config
from altsift.errors import ModelNotFoundError
from altsift.io import tables
from altsift.pipeline.plan import plan_signals
from altsift.pipeline.score import score
from helpers_shards import jpeg_bytes, make_shards, sample, write_tar

ray = pytest.importorskip("ray")
HERE = Path(__file__).parent
HOST = "127.0.0.2"


@dataclass
class Cluster:
    address: str
    node_a: str  # node ids
    node_b: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _reset_token_cache() -> None:
    """Ray caches this process's auth mode and token; make it read the environment again (as Ray's own
    ``_enable_token_auth`` does)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture(scope="module")
def cluster():
    # Ray Data's driver-side usage poller logs at DEBUG every 10 s, also after pytest closed its streams
    logging.getLogger("ray.data._internal.usage").setLevel(logging.WARNING)
    ray_bin = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)})
    _reset_token_cache()
    env = {
        **os.environ,
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    port = _free_port()
    address = f"{HOST}:{port}"
    common = ["--block", f"--node-ip-address={HOST}", "--num-cpus=3", "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    ray_bin,
                    "start",
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=false",
                    f"--temp-dir={temp}",
                    '--resources={"node_a": 1}',
                    *common,
                ],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        procs.append(
            subprocess.Popen(
                [
                    ray_bin,
                    "start",
                    f"--address={address}",
                    f"--dashboard-agent-listen-port={_free_port()}",
                    '--resources={"node_b": 1}',
                    *common,
                ],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        ray.init(address=address, log_to_driver=False)
        ids: dict[str, str] = {}
        while time.time() < deadline and len(ids) < 2:
            ids = {
                k: n["NodeID"]
                for n in ray.nodes()
                if n["Alive"]
                for k in ("node_a", "node_b")
                if k in n["Resources"]
            }
            time.sleep(0.2)
        assert len(ids) == 2, "the two-node cluster did not come up"
        ray.shutdown()  # each test connects through score.ray.address, as a user would
        yield Cluster(address, ids["node_a"], ids["node_b"])
    finally:
        ray.shutdown()
        for p in procs:  # SIGTERM: `ray start --block` drains and stops the processes it started
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reset_token_cache()
        shutil.rmtree(temp, ignore_errors=True)


def on_ray(base: dict, cluster: Cluster, **ray_opts) -> dict:
    return {
        **base,
        "score": {**base.get("score", {}), "runner": "ray", "ray": {"address": cluster.address, **ray_opts}},
    }


# ----------------------------------------------------------------------------- comparing run directories
def snapshot(run: Path) -> dict:
    """Everything a run directory holds, minus wall times and where the work ran."""
    out = {"tables": {}, "arrays": {}}
    for f in sorted((run / "scores").glob("*.parquet")):
        t = pq.read_table(f)
        out["tables"][f.stem] = (t.schema, t.to_pylist())
    for f in sorted((run / "arrays").glob("*/*.npy")):
        out["arrays"][f"{f.parent.name}/{f.stem}"] = np.load(f)
    log = run / "logs" / "shard_errors.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    out["logs"] = sorted(
        json.dumps({k: v for k, v in e.items() if k != "time"}, sort_keys=True) for e in lines
    )
    out["run.json"] = json.loads((run / "run.json").read_text())
    summary = json.loads((run / "score_summary.json").read_text())
    out["summary"] = {k: v for k, v in summary.items() if k not in ("seconds", "workers")}
    return out


def assert_same_run(a: Path, b: Path, close: tuple[str, ...] = ()) -> None:
    sa, sb = snapshot(a), snapshot(b)
    assert sa["tables"].keys() == sb["tables"].keys()
    for k, (schema, rows) in sa["tables"].items():
        schema_b, rows_b = sb["tables"][k]
        assert schema.equals(schema_b, check_metadata=True), k
        for ra, rb in zip(rows, rows_b, strict=True):
            for c in ra:
                if c in close and ra[c] is not None:
                    assert np.isclose(ra[c], rb[c], atol=1e-5), (k, c)
                else:
                    assert ra[c] == rb[c], (k, c)
    assert sa["arrays"].keys() == sb["arrays"].keys()
    for k, arr in sa["arrays"].items():
        assert np.allclose(arr, sb["arrays"][k], equal_nan=True, atol=1e-5), k
    for key in ("logs", "run.json", "summary"):
        assert sa[key] == sb[key], key


def faulty_shards(root: Path) -> list[str]:
    clean = make_shards(root, n_shards=2, per_shard=5)
    faulty = write_tar(
        root / "00002.tar",
        [
            ("ok", sample(20)),
            ("corrupt", {**sample(21), "jpg": jpeg_bytes(seed=1)[:200]}),
            ("zero", {**sample(22), "jpg": b""}),
            ("nocap", {k: v for k, v in sample(23).items() if k != "txt"}),
            ("badjson", {**sample(24), "json": b"{nope"}),
            ("dup", sample(20)),
            ("rowfault", sample(25, text="this caption makes <fragile-fail> raise")),
            ("ok2", sample(26)),
        ],
    )
    all_broken = write_tar(
        root / "00003.tar", [(f"b{i}", {**sample(30 + i), "jpg": b"broken"}) for i in range(3)]
    )
    empty = root / "00004.tar"
    empty.write_bytes(b"")
    data = write_tar(root / "00005.tar", [(f"t{i}", sample(40 + i)) for i in range(6)]).read_bytes()
    (root / "00005.tar").write_bytes(data[: int(len(data) * 0.55)])
    return [str(p) for p in (*clean, faulty, all_broken, empty, root / "00005.tar")]


# ----------------------------------------------------------------------------- tests
def test_ray_equals_local_on_clean_and_faulty_shards_changed_shard_and_new_signal(tmp_path, cluster):
    import scoring_helpers  # noqa: F401  (registers the test signals in this process)

    shards = faulty_shards(tmp_path / "in")
    base = {
        "signals": ["basic", "test_pixel_mean", "test_fragile"],
        "score": {"progress": False, "batch_size": 4},
    }
    local, on = build_config(base), build_config(on_ray(base, cluster))
    s_local = score(shards, tmp_path / "local", local.signals, local)
    s_ray = score(shards, tmp_path / "ray", on.signals, on)
    assert s_ray.shards_scored == 6 and s_ray.samples_scored == s_local.samples_scored
    assert set(s_ray.shards_with_errors) == {"00004", "00005"}  # empty and truncated
    assert all(w.startswith("node:") for w in s_ray.workers)
    assert_same_run(tmp_path / "local", tmp_path / "ray")
    rows = {r["key"]: r for r in pq.read_table(tmp_path / "ray" / "scores" / "00002.parquet").to_pylist()}
    assert rows["corrupt"]["status"] == "bad_image" and rows["rowfault"]["status"] == "error_test_fragile"
    # one dataset even though shard 00003's pixel_mean is all null
    assert len(pd.read_parquet(tmp_path / "ray" / "scores")) == s_ray.run["rows"]

    # the shard changes (same name, other samples), then a signal is added: both runners agree again
    write_tar(
        Path(shards[0]),
        [(f"n{i}", sample(60 + i, text=f"another photo number {i} of a blue bike")) for i in range(4)],
    )
    base2 = {**base, "signals": [*base["signals"], "test_text_len"]}
    local2, on2 = build_config(base2), build_config(on_ray(base2, cluster))
    s_local = score(shards, tmp_path / "local", local2.signals, local2)
    s_ray = score(shards, tmp_path / "ray", on2.signals, on2)
    assert s_ray.signals_computed == s_local.signals_computed
    assert s_ray.signals_computed["basic"] == 4  # only the changed shard is rescored; the others add text_len
    assert s_ray.signals_computed["test_text_len"] == s_ray.run["rows"]
    assert_same_run(tmp_path / "local", tmp_path / "ray")
    plans = {p.name: p for p in plan_signals(base2["signals"], local2)}
    for f in (tmp_path / "ray" / "scores").glob("*.parquet"):  # every signal a table claims has its columns
        schema = pq.read_schema(f)
        for name in tables.table_signals(schema):
            assert all(c in schema.names for c in plans[name].columns), (f.stem, name)


def test_ray_tiny_clip_equals_local_and_a_missing_model_stops_the_run(tmp_path, cluster):
    from helpers_clip import make_tiny_clip

    model = make_tiny_clip(tmp_path / "clip")
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=3, per_shard=5)]
    base = {
        "signals": ["clip"],
        "clip": {"model": str(model), "batch_size": 3, "save_embeddings": True},
        "score": {"progress": False, "batch_size": 3},
    }
    local, on = build_config(base), build_config(on_ray(base, cluster, signals={"clip": {"num_actors": 1}}))
    score(shards, tmp_path / "local", local.signals, local)
    score(shards, tmp_path / "ray", on.signals, on)
    assert_same_run(tmp_path / "local", tmp_path / "ray", close=("clip_score",))

    bad = build_config(
        on_ray(
            {**base, "clip": {"model": str(tmp_path / "nonexistent")}},
            cluster,
            signals={"clip": {"num_actors": 1}},
        )
    )
    with pytest.raises(ModelNotFoundError, match="could not load the image_text model"):
        score(shards, tmp_path / "bad", bad.signals, bad)
    assert (
        not list((tmp_path / "bad").glob("scores/*.parquet")) and not (tmp_path / "bad" / "run.json").exists()
    )


def test_killed_ray_driver_resumes_to_identical_tables(tmp_path, cluster):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=8, per_shard=8)]
    env = {
        **os.environ,
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ALTSIFT_TEST_RAY_ADDRESS": cluster.address,
    }
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "scoring_helpers.py"), str(killed), "0.4", *shards],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if list((killed / "scores").glob("*.parquet")) if (killed / "scores").exists() else []:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list((killed / "scores").glob("*.parquet")))
    assert 1 <= partial < 8, "the kill should land mid-run"
    import scoring_helpers  # noqa: F401

    cfg = {
        "signals": ["basic", "test_pixel_mean"],
        "test_pixel_mean": {"delay": 0.0},  # delay: not in the fingerprint
        "score": {"progress": False, "batch_size": 4},
    }
    on = build_config(on_ray(cfg, cluster))
    s = score(shards, killed, on.signals, on)
    assert s.shards_skipped >= partial - 1 and s.run["shards_done"] == 8  # a table may land after the kill
    clean = build_config(cfg)
    score(shards, tmp_path / "clean", clean.signals, clean)
    a, b = snapshot(killed), snapshot(tmp_path / "clean")
    assert {k: v[1] for k, v in a["tables"].items()} == {k: v[1] for k, v in b["tables"].items()}
    assert a["arrays"].keys() == b["arrays"].keys()
    for k in a["arrays"]:
        assert np.array_equal(a["arrays"][k], b["arrays"][k])


def test_work_crosses_nodes_on_a_real_two_node_cluster(tmp_path, cluster):
    """Shard workers pinned to node_a (they read and write), signal actors to node_b (they compute)."""
    import scoring_helpers  # noqa: F401

    ray.shutdown()  # connect through score.ray.address, as `altsift score --set score.ray.address=...` does
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=3, per_shard=4)]
    c = build_config(
        on_ray(
            {"signals": ["basic", "test_node"], "score": {"progress": False, "batch_size": 2}},
            cluster,
            shard_resources={"node_a": 0.1},
            signals={
                "test_node": {"resources": {"node_b": 0.1}},
                "basic": {"resources": {"node_b": 0.1}, "num_cpus": 0.5},
            },
        )
    )
    s = score(shards, tmp_path / "run", c.signals, c)
    assert ray.is_initialized() and s.shards_scored == 3
    assert s.workers == {f"node:{cluster.node_a}": 3}  # tables written by workers on node_a
    ran = {
        r["ran_on_node"]
        for f in (tmp_path / "run" / "scores").glob("*.parquet")
        for r in pq.read_table(f).to_pylist()
    }
    assert ran == {cluster.node_b}  # the signal ran on node_b
