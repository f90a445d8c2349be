"""Driver memory of the Ray runner at two pool sizes: it should stay flat as the pool grows.

Each pool size is scored by a fresh driver process (``--child``) that starts its own local Ray cluster;
the parent reports that driver's peak RSS (``ru_maxrss``: the driver alone, not Ray's raylet, object store or
workers). Workers read, score and write; only small commit records reach the driver.

    python benchmarks/ray_driver_rss.py --sizes 50 500 --per-shard 1000

Prints peak RSS per pool size and the ratio large/small (flat = close to 1).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_shards import write_shards  # noqa: E402


def child(run: Path, shards: list[str], batch: int) -> None:
    from altsift.config import build_config
    from altsift.pipeline.score import score

    cfg = build_config(
        {
            "signals": ["basic"],
            "score": {"progress": False, "batch_size": batch, "runner": "ray", "verify_images": False},
        }
    )
    t0 = time.perf_counter()
    s = score(shards, run, cfg.signals, cfg)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "shards": len(shards),
                "samples": s.samples_scored,
                "seconds": seconds,
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs=2, default=[50, 500])
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(Path(a.child[0]), a.child[1:], a.batch)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.time()
        shards = [
            str(p) for p in write_shards(tmp / "in", max(a.sizes), a.per_shard, side=16, distinct_images=16)
        ]
        print(
            f"{max(a.sizes)} shards x {a.per_shard} samples (16px JPEG) written in {time.time() - t0:.1f}s",
            flush=True,
        )
        results = {}
        for n in a.sizes:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--batch",
                    str(a.batch),
                    "--child",
                    str(tmp / f"run{n}"),
                    *shards[:n],
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[n] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[n]
            print(
                f"{n} shards ({r['samples']} samples): driver peak RSS {r['peak_rss_mib']:.0f} MiB, "
                f"{r['seconds']:.1f}s ({r['samples'] / r['seconds']:.0f} samples/s)",
                flush=True,
            )
        small, large = (results[n]["peak_rss_mib"] for n in a.sizes)
        print(
            f"driver peak RSS ratio {a.sizes[1]}/{a.sizes[0]} shards: {large / small:.3f} "
            f"(pool {a.sizes[1] / a.sizes[0]:.0f}x larger)"
        )


if __name__ == "__main__":
    main()
