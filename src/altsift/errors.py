"""Exception types with messages meant for users."""


class AltsiftError(Exception):
    """An error whose message is shown to the user as is (no traceback)."""


class ConfigError(AltsiftError):
    """Invalid configuration or command-line option."""


class ModelNotFoundError(AltsiftError):
    """A model spec could not be resolved to weights."""
