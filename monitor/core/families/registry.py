"""Families by name, so that the CLI and the artifact loader build any of them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aemon.core.errors import ArtifactError
from aemon.core.families.base import Autoencoder

FAMILIES: dict[str, type[Autoencoder]] = {}

T = TypeVar("T", bound=type[Autoencoder])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a family buildable by ``name``."""

    def wrap(cls: T) -> T:
        FAMILIES[name] = cls
        return cls

    return wrap


def build(family: str, hparams: dict[str, object]) -> Autoencoder:
    """A fresh model of ``family`` with ``hparams`` (as stored in an artifact)."""
    if family not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise ArtifactError(f"unknown model family {family!r} (known: {known})")
    try:
        return FAMILIES[family](**hparams)
    except (TypeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"bad hyper-parameters for {family!r}: {exc}") from None
