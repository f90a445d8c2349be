"""HTML report cost: time, peak memory and file size on a synthetic pool, and the shard reading of
thumbnails (stop once found) against reading whole shards, in one run.

    python benchmarks/report_bench.py --rows 1000000 --tables 10 --shards 8 --per-shard 400

Part 1 writes ``--rows`` score rows in ``--tables`` parquet tables (uid, status, shard, key, text, five
numeric signals, a boolean) plus two subsets, then runs ``write_report`` (the markdown report, the
baseline) and ``write_html`` without thumbnails, each in a fresh subprocess, reporting wall time and
peak RSS (``ru_maxrss``) and the HTML size. Part 2 writes ``--shards`` real JPEG shards, and reads the
thumbnails of 12 samples per shard placed in the first quarter of each shard with
:func:`altsift.report.thumbs.read_thumbnails` (streams, stops once found) vs :func:`read_shard` on
the same shards (reads everything), interleaved rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from altsift.io.shards import read_shard  # noqa: E402
from altsift.io.tables import table_path, with_signals_meta, write_table_atomic  # noqa: E402
from altsift.io.uids import save_subset  # noqa: E402
from altsift.report.thumbs import read_thumbnails  # noqa: E402

WORDS = ["a", "photo", "of", "red", "blue", "dog", "cat", "house", "car", "tree", "beach", "city", "night", "old",
         "new", "small", "large", "man", "woman"]  # fmt: skip


def make_pool(run: Path, rows: int, tables: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per = rows // tables
    uids_a, uids_b = [], []
    for t in range(tables):
        n = per
        uid = [hashlib.md5(f"{t}/{i}".encode()).hexdigest() for i in range(n)]
        words = rng.integers(0, len(WORDS), size=(n, 8))
        text = [" ".join(WORDS[j] for j in w[: 3 + i % 6]) for i, w in enumerate(words)]
        clip = rng.normal(0.3, 0.05, n)
        tab = pa.table(
            {
                "uid": uid,
                "key": [f"{i:09d}" for i in range(n)],
                "shard": [f"{t:05d}"] * n,
                "status": ["ok"] * n,
                "text": text,
                "clip_score": clip,
                "aesthetic": rng.normal(5, 1, n),
                "lang_score": rng.uniform(0, 1, n),
                "caption_num_words": (3 + np.arange(n) % 6).astype(np.int64),
                "aspect_ratio": rng.lognormal(0.2, 0.2, n),
                "basic_pass": rng.uniform(0, 1, n) > 0.3,
            }
        )
        write_table_atomic(with_signals_meta(tab, {}, {"path": None, "rows": n}), table_path(run, f"{t:05d}"))
        uids_a += [u for u, c in zip(uid, clip, strict=True) if c > 0.32]
        uids_b += [u for u, c in zip(uid, clip, strict=True) if c > 0.30 and c < 0.36]
    for name, uids, thr in (("a", uids_a, 0.32), ("b", uids_b, 0.30)):
        save_subset(run / f"{name}.npy", uids)
        steps = [
            {"name": "ok", "kind": "status", "column": None, "op": None, "threshold": None, "fraction": None,
             "kept_alone": rows, "kept_cumulative": rows, "detail": {}},
            {"name": f"clip_score >= {thr}", "kind": "threshold", "column": "clip_score", "op": ">=",
             "threshold": thr, "fraction": None, "kept_alone": len(uids), "kept_cumulative": len(uids), "detail": {}},
        ]  # fmt: skip
        js = {
            "pool_rows": per * tables,
            "selected": len(uids),
            "steps": steps,
            "subset": str(run / f"{name}.npy"),
        }
        (run / f"{name}.json").write_text(json.dumps(js))


def timed(code: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of ``code`` run in a fresh interpreter."""
    wrapper = (
        "import resource, time\nt = time.perf_counter()\n" + code + "\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=True)
    secs, kb = out.stdout.split()[-2:]
    return float(secs), int(kb) / 2**20


def make_shards(root: Path, n: int, per: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(1)
    paths = []
    for s in range(n):
        p = root / f"{s:05d}.tar"
        p.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(p, "w") as tf:
            for i in range(per):
                arr = (rng.random((224, 256, 3)) * 255).astype(np.uint8)
                b = io.BytesIO()
                Image.fromarray(arr).save(b, "JPEG", quality=85)
                for ext, data in (("jpg", b.getvalue()), ("txt", b"a caption")):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tables", type=int, default=10)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--per-shard", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        make_pool(run, args.rows, args.tables)
        a, b = run / "a.npy", run / "b.npy"
        md_s, md_gb = timed(
            f"from altsift.report.summary import write_report\nwrite_report({str(run)!r}, {str(a)!r})"
        )
        html_s, html_gb = timed(
            "from altsift.report.html import write_html\n"
            f"write_html({str(run)!r}, [{str(a)!r}, {str(b)!r}], images=False, progress=False)"
        )
        size = (run / "report.html").stat().st_size
        print(f"pool {args.rows:,} rows in {args.tables} tables, two subsets")
        print(f"  markdown report (baseline): {md_s:6.1f} s  peak RSS {md_gb:.2f} GB")
        print(f"  HTML report, no thumbnails: {html_s:6.1f} s  peak RSS {html_gb:.2f} GB  "
              f"({html_s / md_s:.2f}x the markdown time), {size / 1e6:.2f} MB")  # fmt: skip

        shards = make_shards(Path(tmp) / "shards", args.shards, args.per_shard)
        sources = {p.stem: str(p) for p in shards}
        want = [(p.stem, f"{i:09d}") for p in shards for i in range(0, args.per_shard // 4, max(1, args.per_shard // 48))][
            : 12 * args.shards
        ]  # fmt: skip
        t_stream, t_full = [], []
        for _ in range(args.rounds):  # interleaved
            t = time.perf_counter()
            th = read_thumbnails(want, sources, progress=False)
            t_stream.append(time.perf_counter() - t)
            t = time.perf_counter()
            for p in shards:
                read_shard(p)
            t_full.append(time.perf_counter() - t)
        assert all(x.data_uri for x in th.values())
        mb = sum(p.stat().st_size for p in shards) / 1e6
        s, f = float(np.median(t_stream)), float(np.median(t_full))
        print(
            f"thumbnails: {len(want)} samples from {args.shards} shards ({mb:.0f} MB, wanted samples in the first quarter)"
        )
        print(f"  read_thumbnails (stream, stop once found, decode + 128 px JPEG): {s:.2f} s")
        print(
            f"  read_shard on the same shards (whole shard, no decoding):        {f:.2f} s  -> {f / s:.1f}x"
        )


if __name__ == "__main__":
    main()
