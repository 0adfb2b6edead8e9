"""Autoencoder families, each registered by name (see :mod:`aemon.training.models.registry`).

Importing a family's module registers it; the imports below make every family buildable.
"""

from aemon.training.models import aae as aae
from aemon.training.models import conv as conv
from aemon.training.models import dense as dense
from aemon.training.models import vae as vae
from aemon.training.models.registry import FAMILIES, build

__all__ = ["FAMILIES", "build"]
