"""Errors the CLI reports as one clear line instead of a traceback."""


class AemonError(Exception):
    """Base class: the message is complete and meant for the user."""


class DataError(AemonError):
    """A data file is missing, malformed or holds values we refuse (NaN, inf, wrong width)."""


class ArtifactError(AemonError):
    """A model artifact is missing, corrupt, tampered with or of an unknown kind."""


class ConfigError(AemonError):
    """A setting is missing, out of range or of the wrong type."""
