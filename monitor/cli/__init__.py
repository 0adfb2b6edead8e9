"""The ``aemon`` command: the parsers (light, imported at once) and each command's code (imported
only when it runs)."""

from aemon.cli.main import main

__all__ = ["main"]
