"""Autoencoder families, each registered by name (see :mod:`aemon.core.families.registry`).

Importing a family's module registers it; the imports below make every family buildable.
"""

from aemon.core.families import aae as aae
from aemon.core.families import conv as conv
from aemon.core.families import dense as dense
from aemon.core.families import vae as vae
from aemon.core.families.registry import FAMILIES, build

__all__ = ["FAMILIES", "build"]
