"""Autoencoder families, each registered by name (see :mod:`training.models.registry`).

Importing a family's module registers it; the imports below make every family buildable.
"""

from training.models import aae as aae
from training.models import conv as conv
from training.models import dense as dense
from training.models import vae as vae
from training.models.registry import FAMILIES, build

__all__ = ["FAMILIES", "build"]
