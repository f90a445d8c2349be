"""YAML run configuration, validated with pydantic, plus ``--set key.path=value`` overrides.

Layout (every section optional except ``inputs`` / ``run_dir`` for ``altsift run``)::

    inputs: ["shards/{00000..00009}.tar"]     # paths, globs, brace patterns or folders
    run_dir: runs/pool
    signals: [basic, clip]
    score: {batch_size: 64, decode_threads: 2, runner: local}
    clip: {model: openai/clip-vit-base-patch32, device: auto}   # one section per signal
    select: {where: ["basic_pass"], top_fraction: {clip_score: 0.3}}
    export: {to: out/shards, caption_column: null, shard_size: 10000}

``--set clip.batch_size=64`` writes into the same tree (values parsed as YAML scalars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from altsift.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RayOptions(_Strict):
    """Ray Data scale-out: one actor pool per model signal."""

    address: str | None = None
    num_actors: int = 1
    num_gpus_per_actor: float = 0.0
    num_cpus_per_actor: float = 1.0
    read_parallelism: int = 2


class ScoreOptions(_Strict):
    """How ``altsift score`` runs."""

    batch_size: int = Field(64, ge=1, description="samples per batch handed to each signal")
    decode_threads: int = Field(2, ge=1, description="threads decoding images ahead of the models")
    prefetch_batches: int = Field(2, ge=0, description="decoded batches kept ready ahead of the models")
    max_image_pixels: int = Field(
        178_956_970, description="decompression-bomb guard (PIL default x2); larger images get status image_too_large"
    )
    max_decode_side: int | None = Field(
        4096, description="images with a longer side are downscaled after decoding (original size is kept)"
    )
    verify_images: bool = Field(
        True, description="decode every image even when no signal needs pixels, so broken images get a status"
    )
    runner: Literal["local", "ray"] = "local"
    ray: RayOptions = Field(default_factory=RayOptions)
    progress: bool = True


class SelectOptions(_Strict):
    """``select:`` of a run config (docs/select.md). ``preset`` may list several presets (AND-ed); with
    several, ``preset_options`` maps each preset name to its options. ``and``/``or``/``not``: subset
    ``.npy`` files to intersect with, add, or remove."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    where: list[str] = Field(default_factory=list, description="expressions in the --where language, AND-ed")
    top_fraction: dict[str, float] = Field(default_factory=dict)
    fuse: dict[str, float] = Field(default_factory=dict)
    preset: str | list[str] | None = None
    preset_options: dict[str, Any] = Field(default_factory=dict)
    and_: list[str] = Field(default_factory=list, alias="and")
    or_: list[str] = Field(default_factory=list, alias="or")
    not_: list[str] = Field(default_factory=list, alias="not")
    verdicts: bool = Field(False, description="write each preset's verdict as a column of <out>.verdicts.parquet")
    out: str | None = None
    overwrite: bool = Field(True, description="a rerun of `altsift run` replaces the subset its select wrote")

    @field_validator("where", mode="before")
    @classmethod
    def _one_where(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("where")
    @classmethod
    def _check_where(cls, v: list[str]) -> list[str]:
        from altsift.select.expr import check_where_syntax

        for e in v:
            try:
                check_where_syntax(e, "select.where")
            except ConfigError as err:
                raise ValueError(str(err)) from None
        return v


class ExportOptions(_Strict):
    to: str | None = None
    caption_column: str | None = None
    shard_size: int = Field(10_000, ge=1)
    overwrite: bool = Field(True, description="a rerun of `altsift run` replaces the shards its export wrote")


class RunConfig(BaseModel):
    """A whole run. Extra top-level keys must be signal names and hold that signal's options."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    inputs: list[str] = Field(default_factory=list)
    run_dir: str | None = None
    signals: list[str] = Field(default_factory=lambda: ["basic"])
    score: ScoreOptions = Field(default_factory=ScoreOptions)
    select: SelectOptions = Field(default_factory=SelectOptions)
    export: ExportOptions = Field(default_factory=ExportOptions)

    @model_validator(mode="after")
    def _check_signal_sections(self) -> RunConfig:
        from altsift.signals.registry import available_signals

        sigs = available_signals()
        for key, value in (self.model_extra or {}).items():
            if key not in sigs:
                raise ValueError(
                    f"unknown section '{key}': not a config section (inputs, run_dir, signals, score, "
                    f"select, export) nor a signal ({', '.join(sorted(sigs))})"
                )
            if not isinstance(value, dict):
                raise ValueError(f"section '{key}' must be a mapping of {key} options")
            try:
                sigs[key].Options.model_validate(value)
            except ValidationError as e:
                raise ValueError(f"in section '{key}': {_format_errors(e)}") from None
        return self

    def signal_options(self, name: str) -> dict[str, Any]:
        """Raw options for signal ``name`` (validated by the signal itself)."""
        return dict((self.model_extra or {}).get(name) or {})


def _format_errors(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}" + (f" (got {err['input']!r})" if "input" in err else ""))
    return "; ".join(parts)


def parse_set(items: list[str] | None) -> list[tuple[list[str], Any]]:
    """Parse ``key.path=value`` strings (value as a YAML scalar / flow collection)."""
    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY.PATH=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        path = [p for p in key.strip().split(".") if p]
        if not path:
            raise ConfigError(f"--set has an empty key in '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((path, value))
    return out


def apply_sets(tree: dict[str, Any], sets: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """Write parsed ``--set`` overrides into a nested dict (in place) and return it."""
    for path, value in sets:
        node = tree
        for p in path[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {'.'.join(path)}: '{p}' is not a section")
            node = nxt
        node[path[-1]] = value
    return tree


def load_config_tree(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML file into a dict (empty dict for None), with a clear error."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {p} must be a mapping at the top level")
    return tree


def build_config(tree: dict[str, Any], where: str = "config") -> RunConfig:
    """Validate a config tree; errors name the key and its place."""
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(f"invalid {where}: {_format_errors(e)}") from None
