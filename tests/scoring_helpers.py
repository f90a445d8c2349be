"""Test-only signals and a runner script used as a subprocess in the resume test."""

from __future__ import annotations

import sys
import time
from typing import ClassVar

import pyarrow as pa

from altsift.signals.base import Signal, SignalOptions
from altsift.signals.registry import register_signal


class SlowOptions(SignalOptions):
    delay: float = 0.0
    batch_size: int = 4


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


if __name__ == "__main__":  # python scoring_helpers.py RUN_DIR DELAY SHARD...
    from altsift.config import build_config
    from altsift.pipeline.score import score

    run_dir, delay, *shards = sys.argv[1:]
    cfg = build_config({"signals": ["basic", "test_pixel_mean"], "test_pixel_mean": {"delay": float(delay)},
                        "score": {"progress": False, "batch_size": 4}})
    score(shards, run_dir, cfg.signals, cfg)
