"""Build the bundled demo shards: real photos (scikit-image, BSD-3 / public domain, see
skimage/data/README.txt) with real LAION alt-texts (img2dataset test files, MIT), in the
img2dataset / DataComp webdataset layout, plus deliberately broken samples that show statuses.

Run: .venv/bin/python scripts/make_demo_shards.py  (writes src/altsift/assets/demo/shards/)
Needs ../shared/data/laion_alt_texts_5k.parquet (developer-only input); the output is committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parents[1] / "src" / "altsift" / "assets" / "demo" / "shards"
TEXTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "laion_alt_texts_5k.parquet"
PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
]


def jpeg(img: Image.Image, q: int = 80) -> bytes:
    b = io.BytesIO()
    img.convert("RGB").save(b, "JPEG", quality=q)
    return b.getvalue()


def add(tf: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0
    tf.addfile(info, io.BytesIO(payload))


def uid_for(i: int) -> str:
    return hashlib.md5(f"altsift-demo-{i}".encode()).hexdigest()


def main() -> None:
    rng = np.random.default_rng(0)
    texts = pd.read_parquet(TEXTS)["TEXT"].dropna().tolist()
    photos = []
    for name in PHOTOS:
        photos.append(Image.open(Path(data.__file__).parent / name).convert("RGB"))
    OUT.mkdir(parents=True, exist_ok=True)
    i = 0
    for shard in range(2):
        with tarfile.open(OUT / f"{shard:05d}.tar", "w") as tf:
            for j in range(16):
                key = f"{shard:05d}{j:04d}"
                im = photos[(i * 3 + j) % len(photos)]
                w, h = im.size
                scale = rng.uniform(0.35, 0.6)
                crop = im.resize((max(64, int(w * scale)), max(64, int(h * scale))), Image.Resampling.BICUBIC)
                text = texts[(i * 37) % len(texts)]
                meta = {
                    "uid": uid_for(i),
                    "key": key,
                    "url": f"https://example.invalid/{key}.jpg",
                    "caption": text,
                    "original_width": crop.size[0],
                    "original_height": crop.size[1],
                }
                img_bytes = jpeg(crop)
                txt = text.encode("utf-8")
                js = json.dumps(meta).encode()
                # broken samples, one of each kind
                if shard == 0 and j == 3:
                    img_bytes = img_bytes[: len(img_bytes) // 3]  # truncated JPEG
                elif shard == 0 and j == 5:
                    img_bytes = b""  # zero-byte image
                elif shard == 0 and j == 7:
                    txt = b""  # empty caption
                elif shard == 0 and j == 9:
                    txt = b"caf\xe9 au lait \xff"  # invalid UTF-8
                elif shard == 1 and j == 2:
                    js = b"{not json"  # invalid json
                elif shard == 1 and j == 4:
                    img_bytes = b"GIF89a this is not really an image"  # non-image
                elif shard == 1 and j == 6:
                    meta["uid"] = uid_for(i - 1)  # duplicate uid
                    js = json.dumps(meta).encode()
                elif shard == 1 and j == 8:
                    small = crop.resize((120, 90))  # too small for the basic filter
                    img_bytes = jpeg(small)
                    meta.update(original_width=120, original_height=90)
                    js = json.dumps(meta).encode()
                if shard == 1 and j == 10:  # missing caption
                    meta.pop("caption")
                    js = json.dumps(meta).encode()
                add(tf, f"{key}.jpg", img_bytes)
                if not (shard == 1 and j == 10):
                    add(tf, f"{key}.txt", txt)
                add(tf, f"{key}.json", js)
                i += 1
            if shard == 1:
                add(tf, "../escape.txt", b"a tar member that tries to leave the shard")
    # a truncated shard: the first 60% of a valid one
    full = (OUT / "00001.tar").read_bytes()
    (OUT / "00002.tar").write_bytes(full[: int(len(full) * 0.6)])
    print(
        "wrote", sorted(p.name for p in OUT.iterdir()), sum(p.stat().st_size for p in OUT.iterdir()), "bytes"
    )


if __name__ == "__main__":
    main()
