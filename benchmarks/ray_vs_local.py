"""Ray runner vs in-process runner on the same shards and signals, interleaved rounds, one process.

Both runners call the same shard job; this measures what the Ray topology costs or gains on one machine
(object-store hops between shard workers and signal actors, actor start-up, Ray Data scheduling). The Ray
cluster is started once before the timed rounds (a warm-up run on one shard), as a user's cluster would be;
signal actors and shard workers start inside every timed Ray run (they are part of its cost).

    python benchmarks/ray_vs_local.py --signals basic --shards 8 --per-shard 512 --rounds 3
    python benchmarks/ray_vs_local.py --signals clip --model mini:web_clip --shards 4 --per-shard 256 --rounds 3

Prints, per round, the whole-job samples/s of each runner and the steady-state samples/s (from the first
to the last table commit, i.e. without start-up: table mtimes), and the median ratios ray/local
(goal >= 0.9).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_shards import write_shards  # noqa: E402


def steady_rate(run: Path, per_shard: int) -> float:
    """Samples/s between the first and the last table commit (start-up excluded)."""
    times = sorted(f.stat().st_mtime for f in (run / "scores").glob("*.parquet"))
    return (len(times) - 1) * per_shard / max(times[-1] - times[0], 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", default="basic")
    ap.add_argument("--model", default="mini:web_clip", help="clip.model when clip is a signal")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--per-shard", type=int, default=512)
    ap.add_argument("--side", type=int, default=256, help="image side in pixels")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="score.ray.read_parallelism (shard workers)")
    a = ap.parse_args()

    import ray

    from altsift.config import build_config
    from altsift.pipeline.score import score

    signals = [s.strip() for s in a.signals.split(",") if s.strip()]
    threads = os.cpu_count() or 1
    tree = {"signals": signals, "score": {"progress": False, "batch_size": a.batch}}
    if "clip" in signals:
        tree["clip"] = {"model": a.model, "batch_size": a.batch, "device": "cpu"}
    ray_tree = {
        **tree,
        "score": {
            **tree["score"],
            "runner": "ray",
            "ray": {
                "read_parallelism": a.workers,
                # the model actor gets the machine's cores as torch threads, like the in-process runner has
                "signals": {"clip": {"num_cpus": threads}} if "clip" in signals else {},
            },
        },
    }
    local_cfg, ray_cfg = build_config(tree), build_config(ray_tree)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.time()
        shards = [str(p) for p in write_shards(tmp / "in", a.shards, a.per_shard, side=a.side)]
        n = a.shards * a.per_shard
        print(
            f"{a.shards} shards x {a.per_shard} samples ({a.side}px JPEG) written in {time.time() - t0:.1f}s; "
            f"signals {signals}; {threads} cores",
            flush=True,
        )
        t0 = time.time()
        score(shards[:1], tmp / "warm", ray_cfg.signals, ray_cfg)  # starts the local Ray cluster once
        print(f"Ray warm-up (cluster start + one shard): {time.time() - t0:.1f}s", flush=True)
        ratios, steady = [], []
        for r in range(a.rounds):
            times, rates = {}, {}
            for name, cfg in (
                (("local", local_cfg), ("ray", ray_cfg))
                if r % 2 == 0
                else (("ray", ray_cfg), ("local", local_cfg))
            ):
                t0 = time.perf_counter()
                s = score(shards, tmp / f"{name}{r}", cfg.signals, cfg)
                times[name] = time.perf_counter() - t0
                assert s.samples_scored == n, s
                rates[name] = steady_rate(tmp / f"{name}{r}", a.per_shard)
            ratios.append(times["local"] / times["ray"])
            steady.append(rates["ray"] / rates["local"])
            print(
                f"round {r}: whole job local {n / times['local']:.1f} vs ray {n / times['ray']:.1f} samples/s "
                f"(ray/local {ratios[-1]:.3f}); steady state local {rates['local']:.1f} vs ray {rates['ray']:.1f} "
                f"samples/s (ray/local {steady[-1]:.3f})",
                flush=True,
            )
        print(
            f"median ray/local over {a.rounds} rounds: whole job {statistics.median(ratios):.3f}, "
            f"steady state {statistics.median(steady):.3f}"
        )
        ray.shutdown()


if __name__ == "__main__":
    main()
