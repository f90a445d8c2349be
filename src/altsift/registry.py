"""One small registry type for everything chosen by name: signals, presets and model backends.

Entries register themselves when their module is imported (``@registry.register``). A registry knows
the modules that hold its built-in entries and imports them on first use; a module that fails to import
(an optional dependency missing, or a bug) is *recorded*, never swallowed, so asking for one of its
entries names the module and the error instead of saying the name does not exist.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from altsift.errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Name -> entry, filled by the modules listed in ``modules`` when they are imported."""

    def __init__(
        self, kind: str, modules: tuple[str, ...] = (), key: Callable[[T], str] | None = None
    ) -> None:
        self.kind = kind
        self.modules = modules
        self._key = key or (lambda obj: obj.name)  # type: ignore[attr-defined]
        self._entries: dict[str, T] = {}
        self._import_errors: dict[str, str] = {}
        self._loaded = False

    def register(self, obj: T, name: str | None = None) -> T:
        """Add ``obj`` under ``name`` (default: ``obj.name``); usable as a class decorator."""
        self._entries[name or self._key(obj)] = obj
        return obj

    def load(self) -> None:
        """Import the built-in modules once, recording the ones that fail."""
        if self._loaded:
            return
        self._loaded = True
        for mod in self.modules:
            try:
                importlib.import_module(mod)
            except Exception as e:  # noqa: BLE001 - recorded and shown with the entry's name
                self._import_errors[mod] = f"{type(e).__name__}: {e}"
                log.debug("%s module %s failed to import: %s", self.kind, mod, e)

    @property
    def import_errors(self) -> dict[str, str]:
        """Modules that failed to import, with their error."""
        self.load()
        return dict(self._import_errors)

    def available(self) -> dict[str, T]:
        self.load()
        return dict(self._entries)

    def get(self, name: str) -> T:
        """The entry called ``name``, or a ConfigError listing what exists and what failed to import."""
        entries = self.available()
        if name in entries:
            return entries[name]
        msg = f"unknown {self.kind} '{name}'. Available: {', '.join(sorted(entries)) or 'none'}"
        if self._import_errors:
            msg += (
                " (modules that failed to import: "
                + "; ".join(f"{m}: {e}" for m, e in self._import_errors.items())
                + ")"
            )
        raise ConfigError(msg)

    def __contains__(self, name: str) -> bool:
        return name in self.available()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.available()))
