"""A run directory opens as one dataset in pandas, pyarrow, Polars, DuckDB and HF ``datasets``
(issue 12 item 2), including a shard whose signal columns are all null; altsift's own reader also
unifies older tables typed ``null``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from altsift.config import build_config
from altsift.pipeline.score import score
from altsift.select.base import Pool
from helpers_shards import make_shards, sample, write_tar


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("readers")
    shards = make_shards(tmp / "in", n_shards=2, per_shard=4)
    # a shard of samples without captions or images: every signal column of its table is null
    shards.append(write_tar(tmp / "in" / "00002.tar", [(f"b{i}", {**sample(50 + i), "jpg": b"broken"})
                                                        for i in range(3)]))  # fmt: skip
    cfg = build_config({"signals": ["basic"], "score": {"progress": False}})
    score([str(p) for p in shards], tmp / "run", cfg.signals, cfg)
    t = pq.read_table(tmp / "run" / "scores" / "00002.parquet")
    assert t.column("caption_num_words").null_count == 3  # the all-null shard exists
    return tmp / "run"


N = 11


def test_pandas(run_dir):
    import pandas as pd

    df = pd.read_parquet(run_dir / "scores")
    assert len(df) == N and df["caption_num_words"].isna().sum() == 3


def test_pyarrow_dataset(run_dir):
    import pyarrow.dataset as ds

    t = ds.dataset(run_dir / "scores", format="parquet").to_table()
    assert t.num_rows == N and t.schema.field("basic_pass").type == pa.bool_()


def test_polars(run_dir):
    pl = pytest.importorskip("polars")
    df = pl.scan_parquet(str(run_dir / "scores" / "*.parquet")).select("uid", "caption_num_chars").collect()
    assert df.height == N and df["caption_num_chars"].null_count() == 3


def test_duckdb(run_dir):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    n, nulls = con.execute(
        f"select count(*), count(*) - count(lang) from read_parquet('{run_dir / 'scores'}/*.parquet')"
    ).fetchone()
    assert (n, nulls) == (N, 3)


def test_hf_datasets(run_dir, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset("parquet", data_files=str(run_dir / "scores" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))  # fmt: skip
    assert ds.num_rows == N and sum(v is None for v in ds["basic_pass"]) == 3


def test_altsift_reader_unifies_null_typed_tables(tmp_path):
    """Tables written before declared types: a signal column typed null in one shard reads as its type."""
    scores = tmp_path / "old" / "scores"
    scores.mkdir(parents=True)
    pq.write_table(pa.table({"uid": ["0" * 32, "1" * 32], "status": ["ok", "ok"], "clip_score": pa.nulls(2),
                             "synthetic_caption": pa.nulls(2)}), scores / "00000.parquet")  # fmt: skip
    pq.write_table(pa.table({"uid": ["2" * 32], "status": ["ok"], "clip_score": [0.3],
                             "synthetic_caption": ["a dog"]}), scores / "00001.parquet")  # fmt: skip
    pool = Pool.open(tmp_path / "old")
    assert pool.types["clip_score"] == pa.float64() and pool.types["synthetic_caption"] == pa.string()
    np.testing.assert_array_equal(pool.numeric("clip_score"), [np.nan, np.nan, 0.3])
    assert pool.texts("synthetic_caption").tolist() == [None, None, "a dog"]
