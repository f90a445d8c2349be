"""Which model produced a score column, and the architecture checks of presets that assume one.

A run records every signal's options (``model``, ``backend`` ...) in the tables' schema metadata
(``altsift.signals``). From the model name, or the checkpoint's ``config.json`` /
``open_clip_config.json`` when it is a local folder, the CLIP architecture is inferred (``b32``,
``l14`` ...). DataComp metadata columns name theirs (``clip_l14_similarity_score``: OpenAI ViT-L/14).

Presets that reproduce a paper's recipe assume an architecture (DataComp's ``clip_score`` top 30% and
``image_based_intersect_clip_score``, SIEVE's fusion and Nguyen et al.'s filtering: ViT-L/14;
DataComp's ``laion2b``: ViT-B/32). They warn when the column was computed by another model or
cannot be traced; ``--set arch=...`` states the architecture explicitly and silences the warning
unless the recorded model contradicts it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

ARCH_NAMES = {"b32": "ViT-B/32", "b16": "ViT-B/16", "l14": "ViT-L/14", "l14-336": "ViT-L/14@336px",
              "h14": "ViT-H/14", "g14": "ViT-g/14", "bigg14": "ViT-bigG/14", "mini": "altsift mini CLIP"}  # fmt: skip
DATACOMP_COLUMNS = {"clip_b32_similarity_score": "b32", "clip_l14_similarity_score": "l14"}
_SIZE = {"b": "b", "base": "b", "l": "l", "large": "l", "h": "h", "huge": "h", "g": "g", "bigg": "bigg"}
_NAME_RES = (
    re.compile(r"vit[-_/]?(bigg|[blhg])[-_/]?(\d+)(?:[-_@](\d+))?", re.I),  # ViT-L-14, vit_b_32, ViT-L/14@336
    re.compile(r"vit[-_](base|large|huge)[-_]patch(\d+)(?:[-_](\d+))?", re.I),  # clip-vit-large-patch14-336
)
# (width, patch, layers) of the OpenAI / OpenCLIP vision towers
_TOWERS = {(768, 32, 12): "b32", (768, 16, 12): "b16", (1024, 14, 24): "l14", (1280, 14, 32): "h14",
           (1408, 14, 40): "g14", (1664, 14, 48): "bigg14"}  # fmt: skip


def arch_label(arch: str | None) -> str:
    return ARCH_NAMES.get(arch or "", arch or "an unknown architecture")


def arch_from_name(name: str) -> str | None:
    """``b32`` / ``l14`` ... from a model name such as ``openai/clip-vit-base-patch32`` or ``ViT-L-14``."""
    for rx in _NAME_RES:
        m = rx.search(name)
        if m:
            size = _SIZE[m.group(1).lower()]
            arch = f"{size}{m.group(2)}"
            return f"{arch}-{m.group(3)}" if m.group(3) and m.group(3) != "224" else arch
    return None


def arch_from_checkpoint(path: Path) -> tuple[str | None, str | None]:
    """(arch, sha256 of the config file) from a local checkpoint folder's config; (None, None) if none."""
    for fname in ("config.json", "open_clip_config.json", "altsift_mini.json"):
        f = path / fname
        if not f.is_file() or f.stat().st_size > 1_000_000:
            continue
        raw = f.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        if fname == "altsift_mini.json":
            return "mini", sha
        try:
            cfg = json.loads(raw)
        except ValueError:
            return None, sha
        if fname == "config.json":
            v = cfg.get("vision_config") or {}
            tower = (v.get("hidden_size"), v.get("patch_size"), v.get("num_hidden_layers"))
            size = v.get("image_size")
        else:
            v = (cfg.get("model_cfg") or {}).get("vision_cfg") or {}
            tower = (v.get("width"), v.get("patch_size"), v.get("layers"))
            size = v.get("image_size")
        arch = _TOWERS.get(tower)  # type: ignore[arg-type]
        if arch and size and size != 224:
            arch = f"{arch}-{size}"
        if arch is None and all(x is not None for x in tower):
            arch = f"vit(width={tower[0]}, patch={tower[1]}, layers={tower[2]})"
        return arch, sha
    return None, None


def _signal_columns(signal: str, opts: dict[str, Any]) -> list[str]:
    if signal == "clip":
        return ["clip_score", *((opts.get("extra_texts") or {}).values())]
    return {"aesthetic": ["aesthetic_score"], "sieve": ["sieve_score", "sieve_mean"],
            "caption": ["synthetic_caption", "synthetic_captions"]}.get(signal, [])  # fmt: skip


def column_provenance(signals: dict[str, Any], column: str) -> dict[str, Any] | None:
    """``{signal, model, backend, arch, config_sha256}`` of the model behind ``column``; None if unknown."""
    if column in DATACOMP_COLUMNS:
        arch = DATACOMP_COLUMNS[column]
        return {"signal": None, "model": f"OpenAI CLIP {arch_label(arch)} (DataComp metadata)", "backend": None,
                "arch": arch, "config_sha256": None}  # fmt: skip
    for sig, opts in signals.items():
        if not isinstance(opts, dict) or column not in _signal_columns(sig, opts):
            continue
        model = opts.get("model")
        rec: dict[str, Any] = {"signal": sig, "model": model, "backend": opts.get("backend"), "arch": None,
                               "config_sha256": None}  # fmt: skip
        if isinstance(model, str) and model:
            rec["arch"] = arch_from_name(model)
            p = Path(model).expanduser()
            try:
                if p.is_dir():
                    arch, sha = arch_from_checkpoint(p)
                    rec["arch"] = arch or rec["arch"]
                    rec["config_sha256"] = sha
            except OSError:
                pass
            if rec["arch"] is None and (opts.get("backend") == "mini" or model.startswith("mini")):
                rec["arch"] = "mini"
        return rec
    return None


def check_arch(signals: dict[str, Any], column: str, expected: str, given: str | None, who: str,
               recipe: str) -> list[str]:  # fmt: skip
    """Warnings when ``column`` was not computed by the ``expected`` architecture (see module docstring).

    ``given``: the architecture the user stated with ``--set arch=...`` (None when not stated).
    """
    prov = column_provenance(signals, column)
    actual = prov.get("arch") if prov else None
    model = prov.get("model") if prov else None
    if given is not None:
        if actual is not None and actual != given:
            return [f"{who}: arch={given} was given, but '{column}' was computed by {model} "
                    f"({arch_label(actual)})"]  # fmt: skip
        return []
    if actual == expected:
        return []
    if actual is None:
        why = f"by {model}, whose architecture could not be inferred" if model else "by an unrecorded model"
        return [f"{who}: '{column}' was computed {why}; {recipe} uses {arch_label(expected)}. "
                f"Pass --set arch={expected} (or the right one) to state it and silence this warning"]  # fmt: skip
    return [f"{who}: '{column}' was computed by {model} ({arch_label(actual)}); {recipe} uses "
            f"{arch_label(expected)}. Pass --set arch={actual} to select with it anyway (silences this "
            f"warning), or score with a {arch_label(expected)} model"]  # fmt: skip
