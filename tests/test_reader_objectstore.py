"""Object-store and web inputs through fsspec, against real servers started here on 127.0.0.1:
moto's S3 server (with s3fs) and Python's http.server. No test touches a non-loopback address:
every socket connect is checked."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from altsift.config import build_config
from altsift.errors import ConfigError
from altsift.io.shards import (
    ReadLimits,
    expand_inputs,
    identity_matches,
    open_shard,
    read_shard,
    shard_identity,
    shard_names,
)
from helpers_shards import sample, write_tar

BUCKET = "altsift-test"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection to an address that is not loopback (before it is made)."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise AssertionError(f"test tried to reach {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def _shard(root: Path, name: str, start: int, n: int = 3) -> Path:
    return write_tar(root / name, [(f"{start + i:05d}", sample(start + i)) for i in range(n)])


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server_mod = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("s3")
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        mp.setenv(k, v)
    for k in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SESSION_TOKEN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        mp.delenv(k, raising=False)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    so = {"client_kwargs": {"endpoint_url": endpoint}}
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**so)
    fs.mkdir(BUCKET)
    local = tmp / "shards"
    for i in range(3):
        p = _shard(local, f"{i:05d}.tar", start=10 * i)
        fs.put_file(str(p), f"{BUCKET}/shards/{p.name}")
    import gzip

    (local / "00003.tar.gz").write_bytes(gzip.compress(_shard(local, "g.tar", start=30).read_bytes()))
    fs.put_file(str(local / "00003.tar.gz"), f"{BUCKET}/shards/00003.tar.gz")
    fs.pipe(f"{BUCKET}/shards/README.txt", b"not a shard")
    try:
        yield SimpleNamespace(fs=fs, so=so, endpoint=endpoint, local=local, url=f"s3://{BUCKET}/shards")
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
        mp.undo()


def test_shards_by_url_glob_brace_and_prefix(s3):
    one = expand_inputs([f"{s3.url}/00001.tar"], s3.so)
    assert one == [f"{s3.url}/00001.tar"]
    glob = expand_inputs([f"{s3.url}/*.tar"], s3.so)
    brace = expand_inputs([f"{s3.url}/{{00000..00002}}.tar"], s3.so)
    prefix = expand_inputs([f"{s3.url}/"], s3.so)
    assert glob == brace == [f"{s3.url}/{i:05d}.tar" for i in range(3)]
    assert prefix == [*glob, f"{s3.url}/00003.tar.gz"]  # compressed shards too; README.txt is not a shard
    assert shard_names(prefix + [str(s3.local / "00000.tar")]) == [
        "00000",
        "00001",
        "00002",
        "00003",
        "shards__00000",
    ]
    for url in prefix:
        with open_shard(url, ReadLimits(), s3.so) as stream:
            samples = list(stream)
        assert stream.error is None and len(samples) == 3 and all(s.problem is None for s in samples)
    local = read_shard(s3.local / "00001.tar")
    remote = read_shard(f"{s3.url}/00001.tar", storage_options=s3.so)
    assert [(s.key, s.files) for s in remote.samples] == [(s.key, s.files) for s in local.samples]


def test_missing_remote_inputs_fail_fast(s3):
    with pytest.raises(ConfigError, match="input not found"):
        expand_inputs([f"{s3.url}/nothing-*.tar"], s3.so)
    with pytest.raises(ConfigError, match="input not found"):
        expand_inputs([f"{s3.url}/{{00002..00005}}.tar"], s3.so)
    with pytest.raises(ConfigError, match="input not found"):
        expand_inputs(["s3://no-such-bucket-here/x.tar"], s3.so)


def test_identity_records_size_and_etag(s3):
    url = f"{s3.url}/00000.tar"
    a = shard_identity(url, s3.so)
    assert a["path"] == url and a["size"] == (s3.local / "00000.tar").stat().st_size and a["etag"]
    json.dumps(a)
    assert identity_matches(a, shard_identity(url, s3.so))
    s3.fs.pipe(f"{BUCKET}/tmp/changing.tar", (s3.local / "00000.tar").read_bytes())
    before = shard_identity(f"s3://{BUCKET}/tmp/changing.tar", s3.so)
    s3.fs.pipe(f"{BUCKET}/tmp/changing.tar", (s3.local / "00001.tar").read_bytes())
    assert not identity_matches(before, shard_identity(f"s3://{BUCKET}/tmp/changing.tar", s3.so))


def test_endpoint_from_the_environment(s3, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        urls = expand_inputs([f"{s3.url}/{{00000..00001}}.tar"])
        assert len(read_shard(urls[1]).samples) == 3
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_scoring_s3_inputs_and_a_shard_that_vanishes(s3, tmp_path, monkeypatch):
    """Listed, then deleted before it is read: a clear shard error, no table (a rerun retries it); the
    other shards are scored."""
    from altsift.pipeline import ledger
    from altsift.pipeline import score as score_mod

    for i in range(3):
        s3.fs.put_file(str(s3.local / f"{i:05d}.tar"), f"{BUCKET}/run/{i:05d}.tar")
    real = ledger.expand_inputs

    def list_then_delete(specs, storage_options=None):
        out = real(specs, storage_options)
        s3.fs.rm(f"{BUCKET}/run/00001.tar")
        return out

    monkeypatch.setattr(ledger, "expand_inputs", list_then_delete)
    cfg = build_config({"signals": ["basic"], "score": {"progress": False, "storage_options": s3.so}})
    run = tmp_path / "run"
    summary = score_mod.score([f"s3://{BUCKET}/run/*.tar"], run, cfg.signals, cfg)
    assert set(summary.shards_with_errors) == {"00001"}
    assert "FileNotFoundError" in summary.shards_with_errors["00001"]
    rows = {f.stem: pq.read_table(f).to_pylist() for f in (run / "scores").glob("*.parquet")}
    assert len(rows["00000"]) == len(rows["00002"]) == 3 and "00001" not in rows
    assert all(r["status"] == "ok" for r in rows["00000"] + rows["00002"])
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["shards"]["00000"] == f"s3://{BUCKET}/run/00000.tar"


def test_shard_truncated_on_the_server_mid_read(s3):
    """The object is replaced by a truncated copy while it is being streamed: what was read stays."""
    full = _shard(s3.local, "long.tar", start=100, n=6).read_bytes()
    key = f"{BUCKET}/trunc/long.tar"
    s3.fs.pipe(key, full)
    with open_shard(f"s3://{key}", ReadLimits(block_size=16 * 1024), s3.so) as stream:
        first = next(stream)
        s3.fs.pipe(key, full[: len(full) // 2])
        rest = list(stream)
    samples = [first, *rest]
    assert first.key == "00100" and first.problem is None
    assert 1 <= len(samples) < 6
    assert samples[-1].problem == "truncated_shard"
    assert all(s.problem is None for s in samples[:-1])
    assert stream.error_kind in ("unavailable", "corrupt"), stream.error
    s3.fs.pipe(key, full[: len(full) // 2])  # truncated before the read started
    r = read_shard(f"s3://{key}", storage_options=s3.so)
    assert 0 < len(r.samples) < 6 and r.samples[-1].problem == "truncated_shard" and r.error_kind == "corrupt"


def test_https_style_urls_are_streamed(tmp_path):
    pytest.importorskip("aiohttp")
    _shard(tmp_path, "00000.tar", start=0)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        urls = expand_inputs([f"{base}/{{00000..00001}}.tar"])  # never listed: checked when read
        assert shard_names(urls) == ["00000", "00001"]
        ok = read_shard(urls[0])
        assert ok.error is None and [s.key for s in ok.samples] == ["00000", "00001", "00002"]
        gone = read_shard(urls[1])
        assert gone.samples == [] and gone.error_kind == "unavailable"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_loopback_guard_is_active():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(AssertionError, match="192.0.2.1"):
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: refused here before any packet is sent
    finally:
        s.close()


def test_export_streams_s3_sources_with_the_runs_storage_options(s3, tmp_path):
    """Scored from S3, exported from S3 through `altsift export --set score.storage_options...`: every
    selected sample is written with its original image bytes."""
    import numpy as np
    from typer.testing import CliRunner

    from altsift.cli import app
    from altsift.io.uids import uids_to_array
    from altsift.pipeline.score import score

    for i in range(2):
        s3.fs.put_file(str(s3.local / f"{i:05d}.tar"), f"{BUCKET}/exp/{i:05d}.tar")
    cfg = build_config({"signals": ["basic"], "score": {"progress": False, "storage_options": s3.so}})
    run = tmp_path / "run"
    score([f"s3://{BUCKET}/exp/*.tar"], run, cfg.signals, cfg)
    rows = [r for f in sorted((run / "scores").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    keep = [r["uid"] for r in rows if r["key"] != "00011"]  # all but one sample of shard 00001
    np.save(tmp_path / "subset.npy", uids_to_array(keep))
    res = CliRunner().invoke(
        app,
        [
            "-q",
            "export",
            str(run),
            "--subset",
            str(tmp_path / "subset.npy"),
            "-o",
            str(tmp_path / "out"),
            "--set",
            f"score.storage_options.client_kwargs.endpoint_url={s3.endpoint}",
        ],
    )
    assert res.exit_code == 0, res.output
    out = [s for t in sorted((tmp_path / "out").glob("*.tar")) for s in read_shard(t).samples]
    originals = {s.key: s for i in range(2) for s in read_shard(s3.local / f"{i:05d}.tar").samples}
    assert sorted(json.loads(s.files["json"])["source_key"] for s in out) == sorted(
        r["key"] for r in rows if r["key"] != "00011"
    )
    for s in out:
        src = originals[json.loads(s.files["json"])["source_key"]]
        assert s.files["jpg"] == src.files["jpg"]
