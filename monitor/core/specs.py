"""The vocabularies of the command-line options and their ``KIND:NUMBER`` values.

Importable without torch or numpy: the CLI's parser (and so ``aemon --help``) reads them, and the
modules that act on an option (calibration, noise, normalise, the dense family) take their names
from here.
"""

from __future__ import annotations

THRESHOLD_METHODS = ("mean-std", "quantile", "pot", "mad", "fitted-max")
NOISE_KINDS = ("gaussian", "saltpepper", "mask")
NORMALISERS = ("none", "minmax", "zscore", "robust", "window-zscore")
DATASETS = ("digits", "mnist", "fashion-mnist")
CLOCK_CHOICES = ("auto", "on", "week", "off")  # --time-of-day: the clock series models see
# --missing: a sample CSV's row with a missing value is refused with its line, or left out
MISSING_RULES = ("refuse", "skip")
# activation name -> the torch.nn class that implements it
ACTIVATIONS = {
    "relu": "ReLU",
    "gelu": "GELU",
    "elu": "ELU",
    "tanh": "Tanh",
    "leaky_relu": "LeakyReLU",
}


def split_spec(spec: str, kinds: tuple[str, ...], usage: str, number: str) -> tuple[str, float]:
    """``"quantile:0.99"`` -> ``("quantile", 0.99)``, the kind one of ``kinds``.

    Errors read ``"{usage} {kinds}"`` and ``"{number} 'x' is not a number"``.
    """
    kind, _, raw = spec.partition(":")
    if kind not in kinds or not raw:
        raise ValueError(f"{usage} {', '.join(kinds)}")
    try:
        return kind, float(raw)
    except ValueError:
        raise ValueError(f"{number} {raw!r} is not a number") from None


def parse_threshold(spec: str) -> tuple[str, float]:
    """``"quantile:0.99"`` -> ``("quantile", 0.99)``, validated."""
    usage = "threshold must be METHOD:PARAM with METHOD in"
    method, param = split_spec(spec, THRESHOLD_METHODS, usage, "threshold parameter")
    if method in ("quantile", "pot") and not 0 < param < 1:
        raise ValueError(f"{method} takes a probability in (0, 1), got {param}")
    if method in ("mean-std", "mad") and not 0 <= param < float("inf"):
        raise ValueError(f"{method} takes a finite K >= 0, got {param}")
    if method == "fitted-max" and not 0 < param < float("inf"):
        raise ValueError(f"{method} takes a finite M > 0, got {param}")
    return method, param


def parse_denoise(spec: str) -> tuple[str, float]:
    """``"gaussian:0.2"`` -> ``("gaussian", 0.2)``, validated."""
    usage = "denoise spec must be KIND:AMOUNT with KIND in"
    kind, amount = split_spec(spec, NOISE_KINDS, usage, "denoise amount")
    if (kind == "gaussian" and not 0 < amount < float("inf")) or (
        kind != "gaussian" and not 0 < amount < 1
    ):
        raise ValueError(f"{kind} takes {'SIGMA > 0' if kind == 'gaussian' else 'P in (0, 1)'}")
    return kind, amount
