"""Name -> signal class registry. Signal modules register themselves on import."""

from __future__ import annotations

import importlib

from altsift.errors import ConfigError
from altsift.signals.base import Signal

_SIGNALS: dict[str, type[Signal]] = {}

# Modules that define built-in signals. A module that fails to import (missing optional
# dependency) only makes its own signals unavailable.
_BUILTIN_MODULES = (
    "altsift.signals.basic",
    "altsift.signals.clip",
    "altsift.signals.caption",
    "altsift.signals.sieve",
    "altsift.signals.ocr",
    "altsift.signals.parrot",
    "altsift.signals.text_removal",
    "altsift.signals.aesthetic",
)
_IMPORT_ERRORS: dict[str, str] = {}
_loaded = False


def register_signal(cls: type[Signal]) -> type[Signal]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _SIGNALS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # module not written yet, or optional dependency missing
            _IMPORT_ERRORS[mod] = str(e)


def available_signals() -> dict[str, type[Signal]]:
    """All registered signals by name."""
    _load_builtins()
    return dict(_SIGNALS)


def get_signal(name: str) -> type[Signal]:
    """Look a signal class up by name, with a helpful error."""
    sigs = available_signals()
    if name not in sigs:
        hint = "; ".join(f"{m}: {e}" for m, e in _IMPORT_ERRORS.items())
        raise ConfigError(
            f"unknown signal '{name}'. Available: {', '.join(sorted(sigs)) or 'none'}"
            + (f" (modules that failed to import: {hint})" if hint else "")
        )
    return sigs[name]
