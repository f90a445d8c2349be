"""``altsift select`` at scale: time and peak memory against a plain pyarrow read of the same columns.

Builds a synthetic pool (an altsift run directory: ``scores/*.parquet`` with ``uid``, ``status``, three
float score columns and a caption; zstd, as the pipeline writes) and measures, each in its own child
process (peak RSS from ``os.wait4``), interleaved over rounds:

- ``read``: ``pyarrow.dataset.dataset(scores).to_table(columns=needed)`` - the baseline: a plain read
  of exactly the columns the selection needs (uid, status and its score columns);
- ``select``: ``altsift select`` through the Python API (``run_selection`` + ``write_selection``, which
  writes the DataComp ``.npy`` and the ``.json``), the same columns needed.

Tasks: ``top`` (``--top-fraction clip_score=0.3``), ``fuse`` (SIEVE fusion of clip_score and sieve_score,
top 20%), ``where`` (``--where "aesthetic_score > 4.5 and clip_score >= 0.2"`` plus the top 30%). Also
one ``altsift select`` CLI run per task (whole process: interpreter start, imports, progress bar).

    python benchmarks/select_scale.py --rows 20000000 --shards 200 --rounds 3

Prints a markdown table of medians and the per-100M-row extrapolation (linear). The pool is written
under --dir (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_VOCAB = (
    "a photo of the dog cat red blue car house tree sky beach city street man woman girl boy with on in at "
    "and sunset mountain lake river flower garden vintage black white small big old new wooden stone road"
)
WORDS = np.array(_VOCAB.split(" "))

TASKS = {
    "top": {"columns": ["uid", "status", "clip_score"], "request": {"top_fraction": {"clip_score": 0.3}},
            "cli": ["--top-fraction", "clip_score=0.3"]},
    "fuse": {"columns": ["uid", "status", "clip_score", "sieve_score"],
             "request": {"fuse": {"clip_score": 0.5, "sieve_score": 0.5}, "top_fraction": {"fused": 0.2}},
             "cli": ["--fuse", "clip_score=0.5,sieve_score=0.5", "--top-fraction", "fused=0.2"]},
    "where": {"columns": ["uid", "status", "clip_score", "aesthetic_score"],
              "request": {"where": ["aesthetic_score > 4.5 and clip_score >= 0.2"], "top_fraction": {"clip_score": 0.3}},
              "cli": ["--where", "aesthetic_score > 4.5 and clip_score >= 0.2", "--top-fraction", "clip_score=0.3"]},
}  # fmt: skip


def make_pool(run: Path, rows: int, shards: int, seed: int = 0) -> None:
    from altsift.io.uids import format_hex_uids

    (run / "scores").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per = rows // shards
    for s in range(shards):
        n = per + (1 if s < rows % shards else 0)
        hi = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * 2 + rng.integers(0, 2, n).astype(
            np.uint64
        )
        lo = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
        status = np.where(rng.random(n) < 0.02, "bad_image", "ok")
        clip = rng.normal(0.28, 0.05, n)
        clip[status != "ok"] = np.nan
        words = [pa.array(WORDS[rng.integers(0, len(WORDS), n)]) for _ in range(8)]
        text = pc.binary_join_element_wise(*words, " ")
        t = pa.table({
            "uid": format_hex_uids(hi, lo).cast(pa.string()),
            "key": pa.array(np.char.add("k", np.arange(n).astype(str))),
            "shard": pa.array(np.full(n, f"{s:05d}")),
            "text": text,
            "status": pa.array(status),
            "clip_score": clip,
            "sieve_score": rng.uniform(0, 1, n),
            "aesthetic_score": rng.normal(5, 1, n),
        })  # fmt: skip
        pq.write_table(t, run / "scores" / f"{s:05d}.parquet", compression="zstd")


READ = """
import json, sys, time
t0 = time.perf_counter()
import pyarrow.dataset as ds
t1, c1 = time.perf_counter(), time.process_time()
t = ds.dataset(sys.argv[1] + "/scores", format="parquet").to_table(columns=json.loads(sys.argv[2]))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"work_s": t2 - t1, "work_cpu_s": c2 - c1, "import_s": t1 - t0, "rows": t.num_rows,
                  "nbytes": t.nbytes}))
"""

SELECT = """
import json, sys, time
t0 = time.perf_counter()
from altsift.select.core import SelectRequest, run_selection, write_selection
t1, c1 = time.perf_counter(), time.process_time()
pool, sel = run_selection(sys.argv[1], SelectRequest(**json.loads(sys.argv[2])))
s = write_selection(pool, sel, sys.argv[3], overwrite=True)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"work_s": t2 - t1, "work_cpu_s": c2 - c1, "import_s": t1 - t0, "rows": s["pool_rows"],
                  "selected": s["selected"]}))
"""


OLD_SELECT = """
import json, sys, time
sys.path.insert(0, sys.argv[4])
t0 = time.perf_counter()
from altsift.select.core import SelectRequest, run_selection, write_selection
assert __import__("altsift").__file__.startswith(sys.argv[4]), "not the old source"
t1, c1 = time.perf_counter(), time.process_time()
df, sel = run_selection(sys.argv[1], SelectRequest(**json.loads(sys.argv[2])))
s = write_selection(df, sel, sys.argv[3], sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"work_s": t2 - t1, "work_cpu_s": c2 - c1, "import_s": t1 - t0, "rows": s["pool_rows"],
                  "selected": s["selected"]}))
"""


def run_child(args: list[str]) -> dict:
    """Run a child process; its last JSON line plus wall time and its own peak RSS (``os.wait4``)."""
    t0 = time.perf_counter()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execv(args[0], args)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{' '.join(args[:6])} failed with status {status}")
    lines = out.strip().splitlines()
    rec = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    rec["wall_s"] = wall
    rec["cpu_s"] = ru.ru_utime + ru.ru_stime
    rec["peak_rss_mb"] = ru.ru_maxrss / 1024
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--shards", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to build the pool (kept if given)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--old-src", type=Path, default=None,
                    help="also run the 'top' task with an older altsift source tree (its src/ folder), e.g. "
                    "`git archive 0547069 src | tar -x -C /tmp/old` -> /tmp/old/src")  # fmt: skip
    a = ap.parse_args()
    root = a.dir or Path(tempfile.mkdtemp(prefix="altsift_select_scale_"))
    run = root / "run"
    try:
        if not (run / "scores").is_dir():
            t0 = time.perf_counter()
            make_pool(run, a.rows, a.shards)
            print(f"built {a.rows:,} rows in {a.shards} shards in {time.perf_counter() - t0:.0f}s "
                  f"({sum(f.stat().st_size for f in (run / 'scores').iterdir()) / 2**20:.0f} MiB on disk)", flush=True)  # fmt: skip
        py = sys.executable
        alt = str(Path(py).parent / "altsift")
        res: dict[str, dict[str, list[dict]]] = {
            t: {"read": [], "select": [], "cli": []} for t in a.tasks.split(",")
        }
        old: list[dict] = []
        for r in range(a.rounds):
            for task in res:
                spec = TASKS[task]
                order = ["read", "select", "cli"] if r % 2 == 0 else ["cli", "select", "read"]  # interleave
                for kind in order:
                    if kind == "read":
                        rec = run_child([py, "-c", READ, str(run), json.dumps(spec["columns"])])
                    elif kind == "select":
                        rec = run_child([py, "-c", SELECT, str(run), json.dumps(spec["request"]),
                                         str(root / f"{task}.npy")])  # fmt: skip
                    else:
                        rec = run_child([alt, "select", str(run), *spec["cli"], "--out", str(root / f"{task}_cli.npy"),
                                         "--overwrite"])  # fmt: skip
                    res[task][kind].append(rec)
                    print(f"round {r + 1} {task:5s} {kind:6s} work {rec.get('work_s', float('nan')):6.2f}s "
                          f"(cpu {rec.get('work_cpu_s', float('nan')):6.2f}s) "
                          f"wall {rec['wall_s']:6.2f}s cpu {rec['cpu_s']:6.2f}s peak {rec['peak_rss_mb']:7.0f} MB",
                          flush=True)  # fmt: skip
            if a.old_src is not None:
                rec = run_child([py, "-c", OLD_SELECT, str(run), json.dumps(TASKS["top"]["request"]),
                                 str(root / "top_old.npy"), str(a.old_src.resolve())])  # fmt: skip
                old.append(rec)
                print(f"round {r + 1} top   old    work {rec['work_s']:6.2f}s (cpu {rec['work_cpu_s']:6.2f}s) "
                      f"peak {rec['peak_rss_mb']:7.0f} MB", flush=True)  # fmt: skip
        med = statistics.median
        n = a.rows
        print()
        print(
            "| task | needed columns | arrow size of needed columns (MB) | compact size (MB) | read: wall / CPU (s), peak (MB) "
            "| select: wall / CPU (s), peak (MB) | wall ratio | CPU ratio | peak / arrow size | peak / compact "
            "| CLI wall (s) / peak (MB) | select per 100M rows: wall (s) / peak (GB) |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for task, rr in res.items():
            cols = TASKS[task]["columns"]
            arrow_mb = med([x["nbytes"] for x in rr["read"]]) / 1e6
            compact_mb = n * (16 + 1 + 8 * (len(cols) - 2)) / 1e6  # uid as 2 x uint64, status as a bool
            rt, rp = med([x["work_s"] for x in rr["read"]]), med([x["peak_rss_mb"] for x in rr["read"]])
            st, sp = med([x["work_s"] for x in rr["select"]]), med([x["peak_rss_mb"] for x in rr["select"]])
            rc, sc = med([x["work_cpu_s"] for x in rr["read"]]), med([x["work_cpu_s"] for x in rr["select"]])
            ct, cp = med([x["wall_s"] for x in rr["cli"]]), med([x["peak_rss_mb"] for x in rr["cli"]])
            scale = 1e8 / n
            print(f"| {task} | {', '.join(cols)} | {arrow_mb:.0f} | {compact_mb:.0f} | {rt:.2f} / {rc:.2f}, {rp:.0f} | "
                  f"{st:.2f} / {sc:.2f}, {sp:.0f} | {st / rt:.2f} | {sc / rc:.2f} | {sp / arrow_mb:.2f} | "
                  f"{sp / compact_mb:.2f} | {ct:.2f} / {cp:.0f} | {st * scale:.0f} / {sp * scale / 1e3:.1f} |")  # fmt: skip
        print(f"\nselected: { {t: rr['select'][0]['selected'] for t, rr in res.items()} } of {n:,}")
        if old:
            top = res.get("top", {}).get("select") or [{}]
            print(f"old implementation (top): wall {med([x['work_s'] for x in old]):.2f} s, CPU "
                  f"{med([x['work_cpu_s'] for x in old]):.2f} s, peak {med([x['peak_rss_mb'] for x in old]):.0f} MB; "
                  f"selected {old[0]['selected']} (new: {top[0].get('selected')})")  # fmt: skip
    finally:
        if a.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
