"""altsift: score web image-text pairs once, select many times, export DataComp-compatible subsets.

The Python API (``altsift.score``, ``altsift.open_run``, ``Run.select`` / ``.export`` / ``.report``) is
loaded on first use, so ``import altsift`` stays light (no numpy, pandas or models until you call them).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("altsift")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# Not ``select`` / ``report`` / ``signals``: those names are subpackages (use ``run.select()``, ``run.report()``).
__all__ = [
    "AltsiftError",
    "ConfigError",
    "EnvironmentIOError",
    "ExitCode",
    "IncompleteError",
    "Run",
    "Subset",
    "__version__",
    "build_run_config",
    "export",
    "list_presets",
    "list_signals",
    "open_run",
    "score",
    "score_pairs",
]
_ERRORS = frozenset({"AltsiftError", "ConfigError", "EnvironmentIOError", "ExitCode", "IncompleteError"})

if TYPE_CHECKING:
    from altsift.api import (
        Run,
        Subset,
        build_run_config,
        export,
        list_presets,
        list_signals,
        open_run,
        score,
        score_pairs,
    )
    from altsift.errors import AltsiftError, ConfigError, EnvironmentIOError, ExitCode, IncompleteError


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        return getattr(import_module("altsift.errors"), name)
    if name in __all__:
        return getattr(import_module("altsift.api"), name)
    raise AttributeError(f"module 'altsift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
