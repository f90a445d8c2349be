"""Test-only signals and a runner script used as a subprocess in the resume test."""

from __future__ import annotations

import sys
import time
from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from altsift.signals.base import Signal, SignalOptions
from altsift.signals.registry import register_signal


class SlowOptions(SignalOptions):
    # how long each batch sleeps: it changes no result, so it is left out of the signal's fingerprint and
    # a resume with another delay skips the shards already scored (as a user's rerun would)
    delay: float = Field(0.0, exclude=True)
    batch_size: int = 4
    empty_without_images: bool = False  # a batch without images returns (n, 0) arrays, as clip does


@register_signal
class PixelMeanSignal(Signal):
    """Mean pixel value of the image (a deterministic, image-reading test signal)."""

    name: ClassVar[str] = "test_pixel_mean"
    Options = SlowOptions
    column_types: ClassVar[dict] = {"pixel_mean": pa.float64()}
    array_columns: ClassVar[tuple[str, ...]] = ("pixel_hist",)
    calls: ClassVar[int] = 0

    def __call__(self, batch):
        import numpy as np

        type(self).calls += 1
        if self.options.delay:
            time.sleep(self.options.delay)
        means, hists = [], []
        if self.options.empty_without_images and not any(im is not None for im in batch["image"]):
            return {
                "pixel_mean": [None] * len(batch["image"]),
                "pixel_hist": np.zeros((len(batch["image"]), 0), np.float32),
            }
        for img, st in zip(batch["image"], batch["status"], strict=True):
            if img is None or st != "ok":
                means.append(None)
                hists.append(np.full(4, np.nan, np.float32))
                continue
            a = np.asarray(img, dtype=np.float32)
            means.append(float(a.mean()))
            hists.append(np.histogram(a, bins=4, range=(0, 256))[0].astype(np.float32))
        return {"pixel_mean": means, "pixel_hist": np.stack(hists)}


@register_signal
class TextLenSignal(Signal):
    """Needs the basic signal (to test dependency scheduling)."""

    name: ClassVar[str] = "test_text_len"
    requires: ClassVar[tuple[str, ...]] = ("basic",)
    needs_image: ClassVar[bool] = False
    column_types: ClassVar[dict] = {"words_x2": pa.int64()}

    def __call__(self, batch):
        return {"words_x2": [None if w is None else 2 * w for w in batch["caption_num_words"]]}


class FragileOptions(SignalOptions):
    scale: float = 1.0


@register_signal
class FragileSignal(Signal):
    """Fails on every row while ``broken`` is set (a run-level problem such as a GPU gone bad), and on the
    rows whose caption contains one of ``bad_words`` (per-row faults). Class-level switches (in-process
    tests flip them to fix "the cause" without changing the signal's options); in a Ray worker they keep
    their defaults, so a caption with ``<fragile-fail>`` fails there too."""

    name: ClassVar[str] = "test_fragile"
    Options = FragileOptions
    needs_image: ClassVar[bool] = False
    column_types: ClassVar[dict] = {"fragile": pa.float64()}
    broken: ClassVar[bool] = False
    bad_words: ClassVar[tuple[str, ...]] = ("<fragile-fail>",)

    def __call__(self, batch):
        if type(self).broken:
            raise RuntimeError("device lost")
        if any(w in (t or "") for t in batch["text"] for w in type(self).bad_words):
            raise ValueError("cannot score this caption")
        return {"fragile": [None if t is None else self.options.scale * len(t) for t in batch["text"]]}


@register_signal
class NodeSignal(Signal):
    """Records the Ray node that ran it (to prove where work ran in the multi-node test)."""

    name: ClassVar[str] = "test_node"
    needs_image: ClassVar[bool] = False
    column_types: ClassVar[dict] = {"ran_on_node": pa.string()}

    def __call__(self, batch):
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        return {"ran_on_node": [node] * len(batch["uid"])}


if __name__ == "__main__":  # python scoring_helpers.py RUN_DIR DELAY SHARD...
    import os

    from altsift.config import build_config
    from altsift.pipeline.score import score

    run_dir, delay, *shards = sys.argv[1:]
    address = os.environ.get("ALTSIFT_TEST_RAY_ADDRESS")  # set: score with the Ray runner on that cluster
    ray_score = {"runner": "ray", "ray": {"address": address}} if address else {}
    cfg = build_config(
        {
            "signals": ["basic", "test_pixel_mean"],
            "test_pixel_mean": {"delay": float(delay)},
            "score": {"progress": False, "batch_size": 4, **ray_score},
        }
    )
    score(shards, run_dir, cfg.signals, cfg)
