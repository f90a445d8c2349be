"""Preset ``parrot_text_filter``: the text-oriented filter of Lin et al. 2023 (§8, the 100M LAION subset).

Steps, in order (each row must pass all):
  1. no spotted text: ``has_text == False`` (rows without an OCR result are dropped);
  2. ``clip_score > clip_threshold`` (0.3; the paper's CLIP model is presumably OpenAI ViT-B/32);
  3. ``aesthetic_score > aesthetic_threshold`` (4.5 per the README; the paper text says 0.45). Set the
     threshold to null to skip the step when no aesthetic predictor was run;
  4. dedup within clusters: among survivors of 1-3, inside each ``cluster_id`` (``altsift cluster``),
     rows are visited by decreasing ``clip_score`` and a row is dropped when its CLIP image embedding
     (``arrays/clip_image_emb``) has cosine >= ``dedup_threshold`` with an already kept row of the same
     cluster. The paper's exact dedup criterion is UNVERIFIED ("deduplication using CLIP features
     similarity based cluster labels"); this greedy rule and 0.95 are our choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from altsift.errors import ConfigError
from altsift.models.base import l2_normalize
from altsift.select.base import Pool, Preset, PresetOptions, Selection, Step, register_preset


class ParrotTextFilterOptions(PresetOptions):
    drop_text: bool = Field(True, description="drop images in which the spotter found any text")
    clip_column: str = Field("clip_score", description="CLIP score column")
    clip_threshold: float | None = Field(0.3, description="keep clip_score > this (null: skip)")
    aesthetic_column: str = "aesthetic_score"
    aesthetic_threshold: float | None = Field(4.5, description="keep aesthetic_score > this (null: skip)")
    dedup: bool = Field(True, description="near-duplicate removal within clusters")
    cluster_column: str = "cluster_id"
    embedding: str = Field("clip_image_emb", description="array of CLIP image embeddings used for dedup")
    dedup_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="cosine at/above which two images are duplicates"
    )


def dedup_within_clusters(
    emb: np.ndarray, clusters: np.ndarray, scores: np.ndarray, threshold: float, block: int = 1024
) -> np.ndarray:
    """Greedy near-duplicate removal per cluster, best score first; returns a keep mask (len = rows).

    Rows with NaN scores are visited last; their embeddings must be finite.
    """
    n = len(clusters)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    emb = l2_normalize(np.asarray(emb, np.float32))
    order = np.lexsort((np.arange(n), -np.nan_to_num(scores, nan=-np.inf)))
    cl_sorted = clusters[order]
    for c in pd.unique(cl_sorted):
        rows = order[cl_sorted == c]  # this cluster, best score first
        kept: list[int] = []
        kept_emb = np.zeros((0, emb.shape[1]), np.float32)
        for s in range(0, len(rows), block):
            chunk = rows[s : s + block]
            e = emb[chunk]
            dup_prev = (e @ kept_emb.T).max(axis=1) >= threshold if len(kept) else np.zeros(len(chunk), bool)
            sims = e @ e.T
            new: list[int] = []
            for j in range(len(chunk)):
                if dup_prev[j] or any(sims[j, k] >= threshold for k in new):
                    continue
                new.append(j)
            kept.extend(chunk[new].tolist())
            kept_emb = np.concatenate([kept_emb, e[new]])
        keep[kept] = True
    return keep


@register_preset
class ParrotTextFilter(Preset):
    """No embedded text, CLIP > 0.3, aesthetic > 4.5, dedup within k-means clusters (Lin et al. 2023)."""

    name = "parrot_text_filter"
    Options = ParrotTextFilterOptions
    options: ParrotTextFilterOptions

    def needed_columns(self) -> tuple[str, ...]:
        o = self.options
        cols = ["has_text"] if o.drop_text else []
        if o.clip_threshold is not None or o.dedup:
            cols.append(o.clip_column)
        if o.aesthetic_threshold is not None:
            cols.append(o.aesthetic_column)
        if o.dedup:
            cols.append(o.cluster_column)
        return tuple(cols)

    def apply(self, pool: Pool) -> Selection:
        o = self.options
        n = len(pool)
        mask = np.ones(n, dtype=bool)
        steps: list[Step] = []

        def step(name: str, cond: np.ndarray, kind: str = "where", **fields: object) -> None:
            nonlocal mask
            mask = mask & cond
            steps.append(Step(name, kind, kept_alone=int(cond.sum()), kept_cumulative=int(mask.sum()),
                              **fields))  # type: ignore[arg-type]  # fmt: skip

        if o.drop_text:
            if not pool.has("has_text"):
                raise ConfigError("parrot_text_filter needs 'has_text': score with the 'ocr' signal")
            ht_valid = pool.boolean("has_text", null=True) != pool.boolean("has_text", null=False)
            step("no embedded text (has_text == False)", ~pool.boolean("has_text", null=True) & ~ht_valid,
                 column="has_text", op="==", detail={"expression": "has_text == false"})  # fmt: skip
        if o.clip_threshold is not None:
            v = pool.numeric(o.clip_column)
            step(f"{o.clip_column} > {o.clip_threshold:g}", np.nan_to_num(v, nan=-np.inf) > o.clip_threshold,
                 "threshold", column=o.clip_column, op=">", threshold=o.clip_threshold)  # fmt: skip
        if o.aesthetic_threshold is not None:
            if not pool.has(o.aesthetic_column):
                raise ConfigError(
                    f"parrot_text_filter needs '{o.aesthetic_column}' (signal 'aesthetic'); "
                    "set preset option aesthetic_threshold=null to skip this step"
                )
            v = pool.numeric(o.aesthetic_column)
            step(f"{o.aesthetic_column} > {o.aesthetic_threshold:g}",
                 np.nan_to_num(v, nan=-np.inf) > o.aesthetic_threshold, "threshold", column=o.aesthetic_column,
                 op=">", threshold=o.aesthetic_threshold)  # fmt: skip
        if o.dedup:
            if not pool.has(o.cluster_column):
                raise ConfigError(
                    f"parrot_text_filter needs '{o.cluster_column}': run `altsift cluster RUN_DIR` first "
                    "(or set preset option dedup=false)"
                )
            idx = np.flatnonzero(mask)
            keep = np.zeros(n, dtype=bool)
            if len(idx):
                emb = pool.array(o.embedding)
                if len(emb) != n:
                    raise ConfigError(f"array '{o.embedding}' has {len(emb)} rows; the pool has {n}")
                clusters = pool.column(o.cluster_column).to_numpy()[idx]
                scores = pool.numeric(o.clip_column)[idx]
                keep[idx] = dedup_within_clusters(np.asarray(emb[idx]), clusters, scores, o.dedup_threshold)
            kept_before = int(mask.sum())
            mask = mask & keep
            steps.append(
                Step(
                    f"dedup within {o.cluster_column} (cosine >= {o.dedup_threshold:g})",
                    "preset",
                    column=o.cluster_column,
                    kept_alone=None,
                    kept_cumulative=int(mask.sum()),
                    detail={"removed_duplicates": kept_before - int(mask.sum()), "criterion": "UNVERIFIED (ours)",
                            "dedup_threshold": o.dedup_threshold},
                )
            )  # fmt: skip
        return Selection(mask=mask, steps=steps)
