"""Shard reader and image decoder: throughput and peak memory against the previous implementation.

The baseline is the previous code, copied below verbatim in behaviour: ``tarfile.open(path, "r|*")``
reading every member of the shard into one dict (256 MiB member cap), and ``decode_image`` calling
``draft("RGB", (max_side, max_side))``. Measured in the same run, interleaved:

- throughput: samples/s reading clean shards (``old``: whole shard in memory; ``read_shard``: the new
  compatibility list; ``open_shard``: the new stream, one sample at a time), as ratios to ``old``;
- peak RSS (``VmHWM`` of a fresh interpreter) on hostile inputs: a 5 KB sparse tar claiming 4 x 250 MB
  members, a 0.8 MB ``.tar.gz`` holding 800 MB of zeros, a 0.7 KB JPEG claiming 65500x2700, an
  8000x8000 JPEG.

    python benchmarks/reader_stream.py                 # ~1 min
    python benchmarks/reader_stream.py --shards 2 --samples 300 --rounds 1   # smoke
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_hostile import big_jpeg, gz_bomb_tar, lying_jpeg, peak_rss_mb, sparse_tar  # noqa: E402
from helpers_shards import jpeg_bytes, sample, write_tar  # noqa: E402

OLD_READER = """
import tarfile
def old_read_shard(path, max_member_bytes=256 * 2**20):
    samples = {}
    with tarfile.open(path, mode="r|*") as tf:
        for m in tf:
            if m.isdir():
                continue
            base = m.name.rsplit("/", 1)[-1]
            key, ext = (m.name, "") if "." not in base else (m.name[: len(m.name) - len(base)] + base.split(".", 1)[0],
                                                                  base.split(".", 1)[1].lower())
            s = samples.setdefault(key, {})
            if not m.isfile() or m.size > max_member_bytes:
                continue
            s[ext] = tf.extractfile(m).read()
    return samples
"""

OLD_DECODE = """
import io
from PIL import Image
def old_decode(data, max_pixels, max_side):
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if w * h > max_pixels:
            return None
        if max_side and max(w, h) > max_side and im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))
        im = im.convert("RGB")
        im.load()
        if max_side and max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return im
"""


def _throughput(paths: list[Path], rounds: int) -> dict[str, float]:
    from altsift.io.shards import NEEDED_EXTS, open_shard, read_shard

    ns: dict = {}
    exec(OLD_READER, ns)  # the baseline, defined above as source so the memory runs can use it too
    old = ns["old_read_shard"]

    def run_old() -> int:
        return sum(len(old(p)) for p in paths)

    def run_list() -> int:
        return sum(len(read_shard(p, extensions=NEEDED_EXTS).samples) for p in paths)

    def run_stream() -> int:
        n = 0
        for p in paths:
            with open_shard(p, extensions=NEEDED_EXTS) as stream:
                for _ in stream:
                    n += 1
        return n

    times: dict[str, float] = {"old": 0.0, "read_shard": 0.0, "open_shard": 0.0}
    counts: dict[str, int] = {}
    for _ in range(rounds):  # interleaved: old, new list, new stream, repeat
        for name, fn in (("old", run_old), ("read_shard", run_list), ("open_shard", run_stream)):
            t = time.perf_counter()
            counts[name] = fn()
            times[name] += time.perf_counter() - t
    assert len(set(counts.values())) == 1, counts
    return {k: counts[k] * rounds / v for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        img = jpeg_bytes(160, 120)
        paths = []
        for s in range(args.shards):
            items = [(f"{s:05d}{i:04d}", {**sample(s * 10_000 + i), "jpg": img}) for i in range(args.samples)]
            paths.append(write_tar(root / f"{s:05d}.tar", items))
        mb = sum(p.stat().st_size for p in paths) / 2**20
        rates = _throughput(paths, args.rounds)
        print(
            f"## throughput: {args.shards} shards x {args.samples} samples ({mb:.0f} MB), {args.rounds} rounds"
        )
        print("| reader | samples/s | ratio to old |\n|---|---:|---:|")
        for k, v in rates.items():
            print(f"| {k} | {v:,.0f} | {v / rates['old']:.2f} |")

        sparse = sparse_tar(root / "sparse.tar")
        bomb = gz_bomb_tar(root / "bomb.tar.gz")
        big = big_jpeg(root / "big.jpg")
        lying = root / "lying.jpg"
        lying.write_bytes(lying_jpeg(65500, 2700))
        cases = [
            (
                f"sparse tar ({sparse.stat().st_size / 1024:.0f} KB, 4 x 250 MB claimed)",
                f"{OLD_READER}\nold_read_shard({str(sparse)!r})",
                f"from altsift.io.shards import read_shard\nread_shard({str(sparse)!r})",
            ),
            (
                f".tar.gz bomb ({bomb.stat().st_size / 2**20:.1f} MB, 800 MB of zeros)",
                f"{OLD_READER}\nold_read_shard({str(bomb)!r})",
                f"from altsift.io.shards import read_shard\nread_shard({str(bomb)!r})",
            ),
            (
                "JPEG claiming 65500x2700 (0.7 KB), max_side 4096",
                f"{OLD_DECODE}\nold_decode(open({str(lying)!r}, 'rb').read(), 178956970, 4096)",
                f"from altsift.io.images import decode_image\ndecode_image(open({str(lying)!r}, 'rb').read(), 178956970, 4096)",
            ),
            (
                "8000x8000 JPEG, max_side 4096",
                f"{OLD_DECODE}\nold_decode(open({str(big)!r}, 'rb').read(), 178956970, 4096)",
                f"from altsift.io.images import decode_image\ndecode_image(open({str(big)!r}, 'rb').read(), 178956970, 4096)",
            ),
        ]
        base, _ = peak_rss_mb("import altsift.io.shards")
        print(f"\n## peak RSS (MB, fresh interpreter; importing the reader alone: {base:.0f} MB)")
        print("| input | old | new | old s | new s |\n|---|---:|---:|---:|---:|")
        for label, old_code, new_code in cases:
            row = []
            for code in (old_code, new_code):
                t = time.perf_counter()
                peak, _ = peak_rss_mb(code, timeout=600)
                row.append((peak, time.perf_counter() - t))
            print(f"| {label} | {row[0][0]:.0f} | {row[1][0]:.0f} | {row[0][1]:.1f} | {row[1][1]:.1f} |")
    _ = io, tarfile


if __name__ == "__main__":
    main()
