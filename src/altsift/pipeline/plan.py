"""Which signals each shard still needs, decided from the options recorded in its score table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from altsift.config import RunConfig
from altsift.errors import ConfigError
from altsift.signals.base import Resources, Signal, SignalOptions
from altsift.signals.registry import get_signal

# Options that change speed, not results: changing them does not trigger recomputation.
RUNTIME_OPTION_KEYS = frozenset({"batch_size", "device", "precision", "num_threads", "progress"})


@dataclass
class SignalPlan:
    """A signal class with validated options, inspectable before its model is loaded."""

    name: str
    cls: type[Signal]
    options: SignalOptions

    def _probe(self) -> Signal:
        # A model-less instance: required_signals()/output_columns()/needs_image read only options.
        obj = object.__new__(self.cls)
        obj.options = self.options
        return obj

    @property
    def requires(self) -> tuple[str, ...]:
        return tuple(self._probe().required_signals())

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._probe().output_columns())

    @property
    def array_columns(self) -> tuple[str, ...]:
        return tuple(self._probe().output_array_columns())

    @property
    def needs_image(self) -> bool:
        return bool(getattr(self._probe(), "needs_image", True))

    @property
    def resources(self) -> Resources:
        return self._probe().required_resources()

    def schema(self, upstream: Mapping[str, pa.DataType] | None = None) -> dict[str, pa.DataType]:
        """Declared arrow type of each output column (``upstream``: types of columns planned before)."""
        return self._probe().output_schema(upstream)

    def fingerprint(self) -> dict[str, Any]:
        fp = self.options.model_dump(mode="json", exclude=set(RUNTIME_OPTION_KEYS))
        extra = self._probe().input_fingerprint()
        if extra is not None:
            fp["_inputs"] = extra
        return fp

    def instantiate(self) -> Signal:
        return self.cls(self.options)


def plan_signals(names: list[str], cfg: RunConfig) -> list[SignalPlan]:
    """Validate options for ``names`` plus their requirements; return them in dependency order.

    A required signal's options are its requirers' ``requirement_defaults`` overlaid with the user's own
    options for it (the user's keys win). Planning runs until those defaults stop changing, so a signal
    named before its requirer (``--signals caption,sieve``) gets them too.
    """
    req_defaults: dict[str, dict[str, Any]] = {}
    for _ in range(8):
        plans, order = _plan_once(names, cfg, req_defaults)
        found: dict[str, dict[str, Any]] = {}
        for n in order:
            for dep, d in plans[n].cls.requirement_defaults.items():
                if dep in plans[n].requires:
                    found.setdefault(dep, {}).update(d)
        if found == req_defaults:
            return [plans[n] for n in order]
        req_defaults = found
    raise ConfigError("signal requirement defaults do not settle; check requirement_defaults")


def _plan_once(
    names: list[str], cfg: RunConfig, req_defaults: dict[str, dict[str, Any]]
) -> tuple[dict[str, SignalPlan], list[str]]:
    plans: dict[str, SignalPlan] = {}
    order: list[str] = []
    visiting: set[str] = set()

    def make(name: str) -> SignalPlan:
        if name not in plans:
            cls = get_signal(name)
            raw = {**req_defaults.get(name, {}), **cfg.signal_options(name)}
            try:
                opts = cls.Options.model_validate(raw)
            except Exception as e:
                raise ConfigError(f"invalid options for signal '{name}': {e}") from None
            plans[name] = SignalPlan(name, cls, opts)
        return plans[name]

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError(f"signal dependency cycle through '{name}'")
        visiting.add(name)
        for dep in make(name).requires:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for n in names:
        visit(n)
    return plans, order


def planned_schema(
    plans: list[SignalPlan], base: Mapping[str, pa.DataType] | None = None
) -> dict[str, pa.DataType]:
    """Column types of a table holding ``base`` columns plus every plan's outputs (dependency order)."""
    types: dict[str, pa.DataType] = dict(base or {})
    for p in plans:
        types.update(p.schema(types))
    return types


def needed_signals(plans: list[SignalPlan], recorded: dict[str, Any]) -> list[SignalPlan]:
    """Signals to (re)compute for a shard: missing, run with other options, or downstream of those."""
    redo: set[str] = set()
    for p in plans:  # dependency order: requirements first
        if recorded.get(p.name) != p.fingerprint() or any(d in redo for d in p.requires):
            redo.add(p.name)
    return [p for p in plans if p.name in redo]
