"""Autoencoder families, each registered by name (see :mod:`training.models.registry`)."""

from training.models import dense as dense
from training.models.registry import FAMILIES, build

__all__ = ["FAMILIES", "build"]
