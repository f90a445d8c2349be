"""``altsift export`` against a plain tar filter of the same samples: throughput and peak memory.

Builds input shards (random-noise JPEGs of ``--side`` px, txt, json, and an unused ``--extra-kb`` member
per sample, as DataComp shards carry extra members), scores them with ``basic`` (no pixels kept), takes
every other sample as the subset, then measures, each in a fresh child interpreter (peak RSS = its
``VmHWM``), interleaved over rounds (times exclude interpreter start and imports):

- ``tar``: the baseline: stream each input tar with ``tarfile`` (``r|``) and copy the selected samples'
  image, txt and json members into new tars (no json rewrite, no manifest, no safety checks);
- ``export``: ``altsift.api.export`` of the same subset (streams the shards, rewrites each json with the
  sample's scores, escapes keys, stages and commits with a manifest).

    python benchmarks/export_stream.py --shards 8 --per-shard 1000 --rounds 3

Prints a markdown table of medians (samples/s and peak RSS) and the export/tar ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np


def make_shards(root: Path, shards: int, per: int, side: int, extra_kb: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    jpgs = []
    for _ in range(16):  # a few distinct images, reused (building shards is not what is measured)
        b = io.BytesIO()
        Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(b, "JPEG", quality=85)
        jpgs.append(b.getvalue())
    extra = bytes(extra_kb * 1024)
    paths = []
    root.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        p = root / f"{s:08d}.tar"
        with tarfile.open(p, "w") as tf:
            for j in range(per):
                key = f"{s:04d}{j:05d}"
                uid = f"{s:08x}{j:08x}{0:016x}"
                members = {
                    "jpg": jpgs[(s * per + j) % len(jpgs)],
                    "txt": f"a photo number {j} of shard {s} with a red car".encode(),
                    "json": json.dumps({"uid": uid, "url": f"http://x/{key}.jpg"}).encode(),
                    "npy": extra,
                }
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        paths.append(p)
    return paths


def child_tar(shards: list[str], keys_file: str, out: str) -> dict:
    keys = set(json.loads(Path(keys_file).read_text()))
    t0 = time.perf_counter()
    n = 0
    os.makedirs(out, exist_ok=True)
    with tarfile.open(Path(out) / "00000000.tar", "w") as dst:
        for src in shards:
            with tarfile.open(src, "r|") as tf:
                for m in tf:
                    key, ext = m.name.split(".", 1)
                    if key in keys and ext in ("jpg", "txt", "json"):
                        data = tf.extractfile(m).read()  # type: ignore[union-attr]
                        info = tarfile.TarInfo(m.name)
                        info.size = len(data)
                        dst.addfile(info, io.BytesIO(data))
                        n += ext == "jpg"
    return {"samples": n, "seconds": time.perf_counter() - t0}


def child_export(run: str, subset: str, out: str) -> dict:
    from altsift import api
    from altsift.pipeline import export as _  # noqa: F401 - imports are not what is measured

    t0 = time.perf_counter()
    s = api.export(run, subset, out, progress=False)
    return {"samples": s.written, "seconds": time.perf_counter() - t0}


def measure(argv: list[str]) -> dict:
    """Run ``argv`` in a fresh interpreter; its JSON result (with its peak RSS) plus wall time."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *argv])
    if proc.wait() != 0:
        raise SystemExit(f"child {argv[0]} failed")
    res = json.loads(Path(argv[-1] + ".result.json").read_text())
    res["wall"] = time.perf_counter() - t0
    return res


def child(argv: list[str]) -> None:
    kind, *rest = argv
    res = child_tar(json.loads(rest[0]), rest[1], rest[2]) if kind == "tar" else child_export(*rest)
    status = Path("/proc/self/status").read_text()  # VmHWM: this interpreter's peak (reset by exec)
    res["peak_mb"] = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) / 1024
    Path(rest[-1] + ".result.json").write_text(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--side", type=int, default=384, help="JPEG side in px (noise: ~100 KB at 384)")
    ap.add_argument("--extra-kb", type=int, default=64, help="an unused member per sample")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args()

    from altsift.config import build_config
    from altsift.pipeline.score import score

    tmp = Path(a.dir or tempfile.mkdtemp(prefix="altsift-export-bench-"))
    try:
        shards = make_shards(tmp / "in", a.shards, a.per_shard, a.side, a.extra_kb)
        size = sum(p.stat().st_size for p in shards)
        cfg = build_config(
            {
                "signals": ["basic"],
                "basic": {"min_words": 1},
                "score": {"progress": False, "verify_images": False},
            }
        )
        score([str(p) for p in shards], tmp / "run", cfg.signals, cfg)
        import pyarrow.dataset as ds

        from altsift.io.uids import save_subset

        t = ds.dataset(str(tmp / "run" / "scores")).to_table(columns=["uid", "key"])
        chosen = [
            (u, k)
            for u, k in zip(t.column("uid").to_pylist(), t.column("key").to_pylist(), strict=True)
            if int(k[-1]) % 2 == 0
        ]  # every other sample
        save_subset(tmp / "sub.npy", [u for u, _ in chosen])
        keys = [k for _, k in chosen]
        (tmp / "keys.json").write_text(json.dumps(keys))
        print(
            f"{len(shards)} shards, {a.shards * a.per_shard} samples, {size / 2**20:.0f} MiB; "
            f"{len(keys)} selected",
            file=sys.stderr,
        )
        res: dict[str, list[dict]] = {"tar": [], "export": []}
        for r in range(a.rounds):
            order = ["tar", "export"] if r % 2 == 0 else ["export", "tar"]
            for kind in order:
                out = tmp / f"out_{kind}_{r}"
                argv = (
                    [kind, json.dumps([str(p) for p in shards]), str(tmp / "keys.json"), str(out)]
                    if kind == "tar"
                    else [kind, str(tmp / "run"), str(tmp / "sub.npy"), str(out)]
                )
                m = measure(argv)
                res[kind].append(m)
                print(
                    f"round {r} {kind}: {m['samples']} samples, {m['seconds']:.2f} s, {m['peak_mb']:.0f} MB",
                    file=sys.stderr,
                )
                shutil.rmtree(out, ignore_errors=True)
        med = {
            k: {
                "rate": statistics.median(x["samples"] / x["seconds"] for x in v),
                "peak": statistics.median(x["peak_mb"] for x in v),
            }
            for k, v in res.items()
        }
        print("| system | samples/s (median) | peak RSS MB (median) |\n|---|---:|---:|")
        for k in ("tar", "export"):
            print(f"| {k} | {med[k]['rate']:.0f} | {med[k]['peak']:.0f} |")
        print(
            f"\nexport / tar: throughput {med['export']['rate'] / med['tar']['rate']:.2f}x, "
            f"peak RSS {med['export']['peak'] / med['tar']['peak']:.2f}x; input {size / 2**20:.0f} MiB"
        )
    finally:
        if a.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main()
