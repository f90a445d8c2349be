"""CLIP scoring throughput: altsift vs Data-Juicer's ``image_text_similarity_filter`` vs a bare forward.

Same B/32-shaped random checkpoint for everyone (saved once with ``CLIPModel`` / ``CLIPProcessor``
``save_pretrained``; logit scale set to OpenAI's trained 100 so Data-Juicer's ``logits_per_text / 100`` is
the cosine), same pairs: real LAION alt-texts (tests/data, or ``--texts``) with real photos (scikit-image's
bundled photos, randomly cropped and resized, JPEG q90). Systems, each timed after a warm-up:

- ``bare``: the model's forward in batches of ``--batch`` pairs on tensors prepared before timing
  (transformers' CLIP image processor; tokenizer with ``padding=True``, i.e. padded to the longest text
  of each batch, as a plain loop does). Excludes decoding, resizing and tokenisation: an upper bound.
- ``altsift_fp32`` / ``altsift_bf16``: the ``clip`` signal on batches of decoded images + texts
  (resizing, text cleaning, tokenisation and the model timed; decoding not, as for ``bare``).
- ``altsift_e2e``: ``altsift score`` on webdataset shards of the same JPEGs (tar reading, decoding in
  threads, resizing, model, parquet writing).
- ``datajuicer``: Data-Juicer's ``ImageTextSimilarityFilter.run`` on a ``NestedDataset`` of the same
  image files and texts (``num_proc=1``), in its own venv (``benchmarks/setup_datajuicer_venv.sh``).
  Without that venv, ``datajuicer_proxy`` re-implements its per-pair forward (load image, ``CLIPProcessor``
  on one pair, ``model(**inputs)`` without ``no_grad``, ``logits_per_text / 100``) and is labelled so.
  ``--proxy`` runs the proxy next to the real one.

Rounds are interleaved (the order rotates each round); medians and min-max over rounds are printed, with
ratios of medians. Every process uses ``--threads`` torch threads. Scores of all systems are compared.

    bash benchmarks/setup_datajuicer_venv.sh
    python benchmarks/clip_peer_datajuicer.py --n 96 --rounds 3 --threads 1
    python benchmarks/clip_peer_datajuicer.py --bpe bpe_simple_vocab_16e6.txt.gz   # OpenAI CLIP token lengths
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_DJ = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "altsift" / "venv-datajuicer"
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "stereo_motorcycle",
    "rocket",
    "retina",
)

DJ_WORKER = r"""
import json, sys, time
job = json.load(open(sys.argv[1]))
import torch
torch.set_num_threads(job["threads"])
from data_juicer.core.data import NestedDataset
from data_juicer.ops.filter.image_text_similarity_filter import ImageTextSimilarityFilter
from data_juicer.utils.constant import Fields, StatsKeys
op = ImageTextSimilarityFilter(hf_clip=job["model"], min_score=-1.0, max_score=1.0, accelerator="cpu",
                               auto_op_parallelism=False, num_proc=1, batch_size=job["batch"])
def dataset(items):
    return NestedDataset.from_list([{"text": f"<__dj__image> {t} <|__dj__eoc|>", "images": [p]} for p, t in items])
items = list(zip(job["images"], job["texts"]))
op.run(dataset(items[:2]))  # warm-up: loads the model, first forwards
out = {"seconds": [], "scores": None}
for _ in range(job["repeat"]):
    ds = dataset(items)
    t0 = time.perf_counter()
    res = op.run(ds)
    out["seconds"].append(time.perf_counter() - t0)
out["scores"] = [float(s[StatsKeys.image_text_similarity][0]) for s in res[Fields.stats]]
out["version"] = __import__("data_juicer").__version__
json.dump(out, open(sys.argv[2], "w"))
"""


def make_checkpoint(path: Path, bpe: str | None) -> Path:
    """B/32 shapes (vision 768 x 12 / patch 32 / 224 px, text 512 x 12, projection 512), random weights."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from clip_text_padding import clip_bpe_tokenizer, tiny_tokenizer

    tok = clip_bpe_tokenizer(bpe) if bpe else tiny_tokenizer()
    eos, bos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|startoftext|>")
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=512,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=8,
            max_position_embeddings=77,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
        ),
        projection_dim=512,
    )
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # OpenAI's trained value: DJ's logits / 100 = cosine
    model.save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tok).save_pretrained(path)
    return path


def make_pairs(work: Path, n: int, texts_path: Path) -> tuple[list[Path], list[str]]:
    """n JPEG files cut from scikit-image's photos (random crop, long side 400-800 px) + n alt-texts."""
    from PIL import Image
    from skimage import data as skdata

    from clip_text_padding import read_texts

    rng = np.random.default_rng(0)
    arrays = [getattr(skdata, p)() for p in PHOTOS]
    photos = [Image.fromarray(x[0] if isinstance(x, tuple) else x).convert("RGB") for x in arrays]
    texts = read_texts(texts_path)
    (work / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch))
        s = rng.uniform(400, 800) / max(cw, ch)
        crop = crop.resize((max(1, round(cw * s)), max(1, round(ch * s))), Image.Resampling.BICUBIC)
        p = work / "images" / f"{i:05d}.jpg"
        crop.save(p, "JPEG", quality=90)
        paths.append(p)
    return paths, [texts[i % len(texts)] for i in range(n)]


def write_shards(work: Path, paths: list[Path], texts: list[str], per: int) -> list[str]:
    shards = []
    for s0 in range(0, len(paths), per):
        p = work / "shards" / f"{s0 // per:05d}.tar"
        p.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(p, "w") as tf:
            for i in range(s0, min(s0 + per, len(paths))):
                for ext, data in (
                    ("jpg", paths[i].read_bytes()),
                    ("txt", texts[i].encode()),
                    ("json", json.dumps({"uid": f"{i:032x}"}).encode()),
                ):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        shards.append(str(p))
    return shards


class Systems:
    """The timed systems sharing one model directory and one set of pairs."""

    def __init__(self, a: argparse.Namespace, model: Path, paths: list[Path], texts: list[str], work: Path):
        from PIL import Image

        self.a, self.model_dir, self.paths, self.texts, self.work = a, model, paths, texts, work
        self.images = [Image.open(p).convert("RGB") for p in paths]
        self.n = len(paths)
        self.batches = [(i, min(i + a.batch, self.n)) for i in range(0, self.n, a.batch)]
        self.scores: dict[str, np.ndarray] = {}
        self._signals: dict[str, object] = {}
        self._bare: tuple | None = None
        self.shards = write_shards(work, paths, texts, per=max(a.batch * 2, 64))

    # ------------------------------------------------------------------ bare
    def bare(self) -> float:
        import torch
        import torch.nn.functional as F

        if self._bare is None:
            from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

            model = CLIPModel.from_pretrained(self.model_dir).eval()
            proc = CLIPImageProcessorPil.from_pretrained(self.model_dir)
            tok = AutoTokenizer.from_pretrained(self.model_dir)
            px = [proc(self.images[a:b], return_tensors="pt")["pixel_values"] for a, b in self.batches]
            ids = [
                tok(self.texts[a:b], padding=True, truncation=True, max_length=77, return_tensors="pt")
                for a, b in self.batches
            ]
            self._bare = (model, px, ids)
            with torch.inference_mode():
                model.get_image_features(pixel_values=px[0][:2])
        model, px, ids = self._bare
        out = []
        t0 = time.perf_counter()
        with torch.inference_mode():
            for p, t in zip(px, ids, strict=True):
                ie = F.normalize(model.get_image_features(pixel_values=p).pooler_output, dim=-1)
                te = F.normalize(model.get_text_features(**t).pooler_output, dim=-1)
                out.append((ie * te).sum(-1))
        dt = time.perf_counter() - t0
        self.scores["bare"] = torch.cat(out).numpy()
        self.padded_bare = sum(int(t["input_ids"].numel()) for t in ids) / self.n
        return dt

    # ------------------------------------------------------------------ altsift
    def signal(self, precision: str) -> float:
        from altsift.signals.clip import ClipSignal

        if precision not in self._signals:
            sig = ClipSignal(
                {
                    "model": str(self.model_dir),
                    "device": "cpu",
                    "precision": precision,
                    "batch_size": self.a.batch,
                }
            )
            sig({"status": ["ok"] * 2, "image": self.images[:2], "text": self.texts[:2]})  # warm-up
            self._signals[precision] = sig
        sig = self._signals[precision]
        out: list[float] = []
        padded = 0
        t0 = time.perf_counter()
        for a, b in self.batches:
            res = sig({"status": ["ok"] * (b - a), "image": self.images[a:b], "text": self.texts[a:b]})
            out.extend(res["clip_score"])
            padded += sig.model.last_padded_tokens
        dt = time.perf_counter() - t0
        self.scores[f"altsift_{precision}"] = np.array(out)
        self.padded_altsift = padded / self.n
        return dt

    def e2e(self) -> float:
        import shutil

        from altsift.config import build_config
        from altsift.pipeline.score import Scorer

        cfg = build_config(
            {
                "signals": ["clip"],
                "clip": {"model": str(self.model_dir), "device": "cpu", "batch_size": self.a.batch},
                "score": {"batch_size": self.a.batch, "progress": False},
            }
        )
        if not hasattr(self, "_scorer"):
            self._scorer = Scorer(self.work / "run_warm", cfg.signals, cfg)
            self._scorer.score(self.shards[:1])  # loads the model
        run = self.work / "run"
        shutil.rmtree(run, ignore_errors=True)
        self._scorer.run_dir = run
        t0 = time.perf_counter()
        self._scorer.score(self.shards)
        dt = time.perf_counter() - t0
        from altsift.io.tables import load_pool

        df = load_pool(run).set_index("uid").reindex([f"{i:032x}" for i in range(self.n)])
        self.scores["altsift_e2e"] = df["clip_score"].to_numpy(dtype=np.float64)
        return dt

    # ------------------------------------------------------------------ Data-Juicer
    def datajuicer(self) -> float:
        job = {
            "model": str(self.model_dir),
            "images": [str(p) for p in self.paths],
            "texts": self.texts,
            "threads": self.a.threads or _threads(),
            "batch": self.a.batch,
            "repeat": 1,
        }
        jf, of = self.work / "dj_job.json", self.work / "dj_out.json"
        jf.write_text(json.dumps(job))
        (self.work / "dj_worker.py").write_text(DJ_WORKER)
        r = subprocess.run(
            [str(self.a.dj_python), str(self.work / "dj_worker.py"), str(jf), str(of)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        if r.returncode != 0:
            raise RuntimeError(f"Data-Juicer worker failed:\n{r.stderr[-3000:]}")
        res = json.loads(of.read_text())
        self.dj_version = res["version"]
        self.scores["datajuicer"] = np.array(res["scores"])
        return min(res["seconds"])

    def datajuicer_proxy(self) -> float:
        """Data-Juicer's per-pair forward re-implemented (image_text_similarity_filter.compute_stats_single)."""
        from PIL import Image

        if not hasattr(self, "_proxy"):
            from transformers import AutoProcessor, CLIPModel

            self._proxy = (
                CLIPModel.from_pretrained(self.model_dir).eval(),
                AutoProcessor.from_pretrained(self.model_dir),
            )
        model, processor = self._proxy
        out = []
        t0 = time.perf_counter()
        for p, t in zip(self.paths, self.texts, strict=True):
            img = Image.open(p).convert("RGB")  # mm_utils.load_image
            inputs = processor(
                text=t,
                images=[img],
                return_tensors="pt",
                truncation=True,
                max_length=model.config.text_config.max_position_embeddings,
                padding=True,
            )
            outputs = model(**inputs)  # no torch.no_grad(), as in the op
            out.append(float((outputs.logits_per_text / 100.0).mean()))
        dt = time.perf_counter() - t0
        self.scores["datajuicer_proxy"] = np.array(out)
        return dt


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96, help="image-text pairs")
    ap.add_argument("--batch", type=int, default=32, help="pairs per batch (bare, altsift, score.batch_size)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads in every process (0: torch default)"
    )
    ap.add_argument("--texts", type=Path, default=ROOT / "tests" / "data" / "laion_alt_texts_200.parquet")
    ap.add_argument(
        "--bpe", help="OpenAI CLIP merges file: real CLIP token lengths (see clip_text_padding.py)"
    )
    ap.add_argument("--dj-python", type=Path, default=DEFAULT_DJ / "bin" / "python")
    ap.add_argument(
        "--proxy", action="store_true", help="also run the Data-Juicer proxy next to the real one"
    )
    ap.add_argument("--systems", nargs="+", default=None, help="subset of systems to run")
    a = ap.parse_args()

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = make_checkpoint(work / "clip_b32", a.bpe)
        paths, texts = make_pairs(work, a.n, a.texts)
        sy = Systems(a, model, paths, texts, work)
        have_dj = a.dj_python.exists()
        names = ["bare", "altsift_fp32", "altsift_bf16", "altsift_e2e"]
        names += ["datajuicer"] if have_dj else ["datajuicer_proxy"]
        if have_dj and a.proxy:
            names.append("datajuicer_proxy")
        if a.systems:
            names = [s for s in names if s in a.systems]
        run = {
            "bare": sy.bare,
            "altsift_fp32": lambda: sy.signal("fp32"),
            "altsift_bf16": lambda: sy.signal("bf16"),
            "altsift_e2e": sy.e2e,
            "datajuicer": sy.datajuicer,
            "datajuicer_proxy": sy.datajuicer_proxy,
        }
        rates: dict[str, list[float]] = {k: [] for k in names}
        for r in range(a.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in order:
                dt = run[k]()
                rates[k].append(a.n / dt)
                print(f"round {r + 1} {k:<17} {a.n / dt:7.2f} pairs/s", flush=True)
        report(a, sy, rates, have_dj)


def report(a: argparse.Namespace, sy: Systems, rates: dict[str, list[float]], have_dj: bool) -> None:
    med = {k: statistics.median(v) for k, v in rates.items()}
    print()
    print(
        f"n={a.n} pairs, batch {a.batch}, {a.rounds} interleaved rounds, torch threads "
        f"{a.threads or _threads()}, tokenizer: {'OpenAI CLIP BPE' if a.bpe else 'tiny byte-level'}"
        + (f", Data-Juicer {sy.dj_version}" if hasattr(sy, "dj_version") else "")
    )
    print("| system | pairs/s (median) | min - max |")
    print("|---|---|---|")
    for k, v in rates.items():
        print(f"| {k} | {med[k]:.2f} | {min(v):.2f} - {max(v):.2f} |")
    dj = "datajuicer" if "datajuicer" in med else "datajuicer_proxy" if "datajuicer_proxy" in med else None
    for k in ("altsift_fp32", "altsift_e2e", "altsift_bf16"):
        if k in med and "bare" in med:
            print(f"{k} / bare: {med[k] / med['bare']:.2f}x")
        if k in med and dj:
            print(f"{k} / {dj}: {med[k] / med[dj]:.2f}x")
    if hasattr(sy, "padded_bare") and hasattr(sy, "padded_altsift"):
        print(
            f"text tokens per pair through the text tower: bare {sy.padded_bare:.1f}, altsift {sy.padded_altsift:.1f}"
        )
    ref = sy.scores.get("bare")
    if ref is not None:
        for k, s in sy.scores.items():
            if k != "bare":
                d = np.abs(np.asarray(s, dtype=np.float64) - ref)
                print(
                    f"scores {k} vs bare: max |diff| {d.max():.2e}, pairs differing > 1e-4: {(d > 1e-4).sum()}"
                )


if __name__ == "__main__":
    main()
