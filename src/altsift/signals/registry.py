"""Name -> signal class registry (an :class:`altsift.registry.Registry`). Signal modules register on import."""

from __future__ import annotations

from altsift.registry import Registry
from altsift.signals.base import Signal

# Modules that define built-in signals. A module that fails to import (missing optional dependency)
# only makes its own signals unavailable; the registry records why and says so when one is asked for.
SIGNALS: Registry[type[Signal]] = Registry(
    "signal",
    (
        "altsift.signals.basic",
        "altsift.signals.clip",
        "altsift.signals.caption",
        "altsift.signals.sieve",
        "altsift.signals.ocr",
        "altsift.signals.parrot",
        "altsift.signals.text_removal",
        "altsift.signals.aesthetic",
    ),
)


def register_signal(cls: type[Signal]) -> type[Signal]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    return SIGNALS.register(cls)


def available_signals() -> dict[str, type[Signal]]:
    """All registered signals by name."""
    return SIGNALS.available()


def get_signal(name: str) -> type[Signal]:
    """Look a signal class up by name, with a helpful error."""
    return SIGNALS.get(name)
