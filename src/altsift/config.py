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

Configs are data, never code: YAML is read with a safe loader that also bounds the file size
(:data:`MAX_CONFIG_BYTES`), the nesting depth and the size after alias expansion (:data:`MAX_YAML_NODES`),
so a "billion laughs" file is refused in milliseconds instead of expanding to gigabytes; error messages
echo at most :data:`MAX_ECHO_CHARS` characters of any value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from altsift.errors import ConfigError

MAX_CONFIG_BYTES = (
    256 * 1024
)  # real configs are a few KB; PyYAML (even libyaml) parses ~0.2 MB/s of flow lists
MAX_YAML_NODES = 100_000  # YAML nodes after alias expansion
MAX_YAML_DEPTH = 100  # nesting levels
MAX_ECHO_CHARS = 80  # characters of a value echoed in an error message


def short(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (values in error messages can be huge)."""
    try:
        r = (
            repr(value)
            if not isinstance(value, list | dict | tuple | set) or _small(value)
            else f"<{type(value).__name__} of {len(value)} items>"
        )
    except RecursionError:
        r = f"<deeply nested {type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _small(value: Any, budget: int = 50) -> bool:
    """Whether a container has at most ``budget`` items in all, counted without expanding further."""
    stack, n = [value], 0
    while stack:
        v = stack.pop()
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list | tuple | set) else ()
        for x in items:
            n += 1
            if n > budget:
                return False
            stack.append(x)
    return True


# libyaml's loader when PyYAML was built with it (7x faster on long lists), else the pure-Python one.
_SafeBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BoundedSafeLoader(_SafeBase):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader that refuses documents whose alias expansion or nesting exceeds the limits.

    Aliases make the composed node graph a DAG; its expanded size is counted with memoisation (each node
    once), so the check itself stays linear in the document while catching exponential expansion.
    """

    max_nodes = MAX_YAML_NODES
    max_depth = MAX_YAML_DEPTH

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node, self.max_nodes, self.max_depth)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def _check_expansion(root: yaml.Node, max_nodes: int, max_depth: int) -> None:
    size: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        nid = id(node)
        if done:
            active.discard(nid)
            size[nid] = 1 + sum(size[id(c)] for c in _children(node))
            if size[nid] > max_nodes:
                raise ConfigError(f"YAML expands to more than {max_nodes} values (alias expansion); refused")
            continue
        if nid in size:
            continue
        if nid in active:
            raise ConfigError("YAML has a recursive alias (a value that contains itself); refused")
        if depth > max_depth:
            raise ConfigError(f"YAML is nested more than {max_depth} levels deep; refused")
        active.add(nid)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(node) if id(c) not in size)


def _bracket_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` counted on the raw text (brackets inside strings count too:
    conservative). Checked before parsing: PyYAML's scanner is quadratic in flow nesting."""
    depth = deepest = 0
    for ch in re.sub(r"[^\[\]{}]+", "", text):
        depth = depth + 1 if ch in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def safe_yaml_load(text: str, where: str = "YAML") -> Any:
    """``yaml.safe_load`` with the size, depth and expansion bounds above; errors are ConfigError."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_CONFIG_BYTES} bytes; refused")
    if _bracket_depth(text) > MAX_YAML_DEPTH:
        raise ConfigError(f"{where} is nested more than {MAX_YAML_DEPTH} levels deep; refused")
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {_cut(str(e), 300)}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply; refused") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits (Python's int conversion limit)
        raise ConfigError(
            f"{where} holds a value that cannot be read ({_cut(str(e), 120)}); refused"
        ) from None


def _cut(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[: limit - 3] + "..."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RaySignalOptions(_Strict):
    """One signal's actor pool under Ray (``score.ray.signals.<signal>``); unset values come from the signal's
    declared ``resources`` and the cluster."""

    num_actors: int | None = Field(None, ge=1, description="actors in this signal's pool")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per actor (default: the signal's, when the cluster has GPUs)"
    )
    num_cpus: float | None = Field(None, gt=0, description="CPUs per actor (default: the signal's)")
    memory_gb: float | None = Field(
        None, ge=0, description="memory reserved per actor (default: the signal's)"
    )
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources per actor (pin to nodes)"
    )


class RayOptions(_Strict):
    """Ray scale-out: shard jobs run in Ray Data workers, each signal in its own actor pool."""

    address: str | None = Field(
        None, description="Ray cluster address (auto, ray://..., host:port); None starts a local one"
    )
    num_actors: int | None = Field(
        None,
        ge=1,
        description="actors per signal pool (default: GPU signals one per fitting GPU, CPU signals share spare CPUs)",
    )
    read_parallelism: int | None = Field(
        None,
        ge=1,
        description="shard jobs in flight (each reads, decodes and writes one shard); default max(2, 2 x the largest GPU pool)",
    )
    shard_cpus: float = Field(1.0, gt=0, description="CPUs reserved per shard job worker")
    shard_resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources per shard worker"
    )
    signals: dict[str, RaySignalOptions] = Field(
        default_factory=dict, description="per-signal pool overrides"
    )


class ScoreOptions(_Strict):
    """How ``altsift score`` runs."""

    batch_size: int = Field(64, ge=1, description="samples per batch handed to each signal")
    decode_threads: int = Field(2, ge=1, description="threads decoding images ahead of the models")
    prefetch_batches: int = Field(2, ge=0, description="decoded batches kept ready ahead of the models")
    max_image_pixels: int = Field(
        178_956_970,
        ge=1,
        description="decompression-bomb guard (PIL default x2): images whose header claims more pixels are "
        "not decoded and get status image_too_large",
    )
    max_decode_side: int | None = Field(
        4096,
        ge=1,
        description="images with a longer side are decoded at reduced scale (JPEG) or downscaled; "
        "the original size is kept; null for no limit",
    )
    max_member_bytes: int = Field(
        32 * 2**20,
        ge=1,
        description="tar members larger than this are skipped unread (status member_too_large)",
    )
    max_sample_bytes: int = Field(
        64 * 2**20,
        ge=1,
        description="members of one sample past this total are skipped unread (status sample_too_large)",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for object-store inputs (s3://, gs://, https://), e.g. "
        "{client_kwargs: {endpoint_url: 'http://127.0.0.1:9000'}} for MinIO or another S3-compatible store",
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
    verdicts: bool = Field(
        False, description="write each preset's verdict as a column of <out>.verdicts.parquet"
    )
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
    """The ``export:`` section of ``altsift run`` (the same rules as ``altsift export``)."""

    to: str | None = Field(
        None, description="output folder for the shards (never the run dir nor an input folder)"
    )
    caption_column: str | None = Field(None, description="column whose text becomes the .txt")
    shard_size: int = Field(10_000, ge=1, description="samples per output shard")
    overwrite: bool = Field(
        True,
        description="a rerun replaces the files its earlier export listed in .altsift-export.json, nothing else",
    )
    source_roots: list[str] = Field(
        default_factory=list, description="OLD=NEW prefix rewrites for shard paths recorded at scoring time"
    )


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
                    f"unknown section {short(key)}: not a config section (inputs, run_dir, signals, score, "
                    f"select, export) nor a signal ({', '.join(sorted(sigs))})"
                )
            if not isinstance(value, dict):
                raise ValueError(f"section '{key}' must be a mapping of {key} options, got {short(value)}")
            try:
                sigs[key].Options.model_validate(value)
            except ValidationError as e:
                raise ValueError(f"in section '{key}': {_format_errors(e)}") from None
        return self

    def signal_options(self, name: str) -> dict[str, Any]:
        """Raw options for signal ``name`` (validated by the signal itself)."""
        return dict((self.model_extra or {}).get(name) or {})


def _format_errors(e: ValidationError) -> str:
    errors = e.errors()
    parts = []
    for err in errors[:5]:
        loc = _cut(".".join(str(p) for p in err["loc"]) or "<root>", MAX_ECHO_CHARS)
        parts.append(
            f"{loc}: {_cut(str(err['msg']), 300)}"
            + (f" (got {short(err['input'])})" if "input" in err else "")
        )
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more error(s)")
    return "; ".join(parts)


def parse_set(items: list[str] | None) -> list[tuple[list[str], Any]]:
    """Parse ``key.path=value`` strings (value as a YAML scalar / flow collection)."""
    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY.PATH=VALUE, got {short(item)}")
        key, raw = item.split("=", 1)
        path = [p for p in key.strip().split(".") if p]
        if not path:
            raise ConfigError(f"--set has an empty key in {short(item)}")
        try:
            value = safe_yaml_load(raw, f"--set {short(key, 40)}") if raw.strip() else ""
        except ConfigError as e:
            if "refused" in str(e):
                raise
            value = raw  # not YAML: the plain string
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
    with open(p, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {p} is larger than {MAX_CONFIG_BYTES} bytes; refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    tree = safe_yaml_load(text, f"config file {p}") or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {p} must be a mapping at the top level")
    return tree


def build_config(tree: dict[str, Any], where: str = "config") -> RunConfig:
    """Validate a config tree; errors name the key and its place."""
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(f"invalid {where}: {_format_errors(e)}") from None
