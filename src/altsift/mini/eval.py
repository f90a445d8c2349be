"""Downstream evaluation on the clean held-out sets, and the text-spotting probe.

Metrics (all on clean images the pool never contains):
  - ``zs_acc``: 48-way zero-shot classification of single objects (chance 2.1%), each class embedded as the
    normalised mean over a prompt ensemble ("a small red circle on stripes", ...: sizes x textures);
  - ``zs_colour_acc`` / ``zs_shape_acc``: share of those predictions with the right colour / shape (chance
    1/8 and 1/6);
  - ``zs_acc_word``: the same scenes with a random word rendered in them (typographic distraction);
  - ``binding_acc``: two big objects on a plain background, "a big red circle and a big blue star" vs the
    colour-swapped caption (chance 50%);
  - ``i2t_r1`` / ``t2i_r1``: retrieval recall@1 over the clean retrieval set (full captions); a hit is any
    item with the same caption string, so duplicate captions are not penalised.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from altsift.mini.world import SHAPES, ProbeSet, TestSets


class ArrayEncoder(Protocol):
    def encode_arrays(self, images: np.ndarray) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def zeroshot_accuracy(img: np.ndarray, cls: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose most similar class embedding is their label."""
    return float(np.mean((img @ cls.T).argmax(1) == np.asarray(labels)))


def retrieval_r1(img: np.ndarray, txt: np.ndarray, texts: list[str]) -> tuple[float, float]:
    """(image->text, text->image) recall@1 for row-aligned embeddings; equal caption strings count as hits."""
    _, group = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    sim = img @ txt.T
    i2t = float(np.mean(group[sim.argmax(1)] == group))
    t2i = float(np.mean(group[sim.argmax(0)] == group))
    return i2t, t2i


def pair_accuracy(img: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """Share of rows where the image is closer to ``pos`` than to ``neg`` (row-aligned)."""
    return float(np.mean((img * pos).sum(1) > (img * neg).sum(1)))


def _unique_texts(enc: Any, texts: list[str]) -> np.ndarray:
    uniq, inv = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    return enc.encode_texts(list(uniq))[inv]


def class_embeddings(enc: Any, classes: list[str], templates: list[str]) -> np.ndarray:
    """Prompt-ensembled class embeddings: mean of the normalised template embeddings, renormalised."""
    t = len(templates)
    emb = enc.encode_texts([tpl.format(c) for c in classes for tpl in templates]).reshape(len(classes), t, -1)
    m = emb.mean(1)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def evaluate(enc: ArrayEncoder, tests: TestSets) -> dict[str, float]:
    """All downstream metrics for an encoder exposing ``encode_arrays`` / ``encode_texts``."""
    cls = class_embeddings(enc, [c.removeprefix("a ") for c in tests.zs_classes], tests.zs_templates)
    zs_img = enc.encode_arrays(tests.zs_images)
    zs = zeroshot_accuracy(zs_img, cls, tests.zs_labels)
    # the 48 classes are colour-major ("a {colour} {shape}"): which half of the answer is right
    pred, lab, n_shapes = (zs_img @ cls.T).argmax(1), np.asarray(tests.zs_labels), len(SHAPES)
    zsw = zeroshot_accuracy(enc.encode_arrays(tests.zs_word_images), cls, tests.zs_labels)
    bind_img = enc.encode_arrays(tests.bind_images)
    bind = pair_accuracy(
        bind_img, _unique_texts(enc, tests.bind_true), _unique_texts(enc, tests.bind_swapped)
    )
    i2t, t2i = retrieval_r1(
        enc.encode_arrays(tests.ret_images), _unique_texts(enc, tests.ret_texts), tests.ret_texts
    )
    return {"zs_acc": zs, "zs_acc_word": zsw, "binding_acc": bind, "i2t_r1": i2t, "t2i_r1": t2i,
            "zs_colour_acc": float(np.mean(pred // n_shapes == lab // n_shapes)),
            "zs_shape_acc": float(np.mean(pred % n_shapes == lab % n_shapes))}  # fmt: skip


def text_probe(enc: ArrayEncoder, probe: ProbeSet, words: list[str]) -> dict[str, float]:
    """With/without-word probe: does the model match an image to the bare word rendered in it?

    ``gap`` = mean cos(A, "W") - cos(B, "W") where A shows word W and B is the same scene without it;
    ``word_top1`` = share of A whose most similar word (of ``words``) is W; ``word_beats_caption`` = share
    of A where "W" scores above the faithful caption.
    """
    a, b = enc.encode_arrays(probe.with_word), enc.encode_arrays(probe.without_word)
    wemb = enc.encode_texts(list(words))
    widx = np.array([words.index(w) for w in probe.words])
    w = wemb[widx]
    cap = _unique_texts(enc, probe.captions)
    cos_a, cos_b = (a * w).sum(1), (b * w).sum(1)
    return {
        "cos_with_word": float(cos_a.mean()),
        "cos_without_word": float(cos_b.mean()),
        "gap": float((cos_a - cos_b).mean()),
        "word_top1": float(np.mean((a @ wemb.T).argmax(1) == widx)),
        "word_top1_chance": 1.0 / len(words),
        "word_beats_caption": float(np.mean(cos_a > (a * cap).sum(1))),
        "cos_caption_with_word": float((a * cap).sum(1).mean()),
        "cos_caption_without_word": float((b * cap).sum(1).mean()),
    }


def caption_metrics(predicted: list[str], reference: list[str]) -> dict[str, float]:
    """Exact match and mean word-F1 (bag of words) of predicted vs reference captions."""
    exact, f1 = [], []
    for p, r in zip(predicted, reference, strict=True):
        exact.append(p.strip() == r.strip())
        pw, rw = p.split(), r.split()
        common = sum(min(pw.count(w), rw.count(w)) for w in set(pw))
        prec = common / len(pw) if pw else 0.0
        rec = common / len(rw) if rw else 0.0
        f1.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"exact": float(np.mean(exact)), "word_f1": float(np.mean(f1))}
