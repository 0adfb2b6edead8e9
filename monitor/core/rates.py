"""False-alarm rates of a series model: a log-normal fitted robustly to its calibration scores
(median and scaled MAD of the logs, kept in the artifact's threshold), which extrapolates past
the largest of them."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from aemon.core.errors import ConfigError

LOG_MAD_FLOOR = 0.1  # scores within about 10% of each other count as equal
_NORMAL = NormalDist()


def log_normal(scores: np.ndarray) -> dict[str, float]:
    """``{"log_median", "log_mad"}`` of calibration scores."""
    logs = np.log(np.maximum(np.asarray(scores, dtype=np.float64), 1e-12))
    med = float(np.median(logs))
    mad = max(1.4826 * float(np.median(np.abs(logs - med))), LOG_MAD_FLOOR)
    return {"log_median": med, "log_mad": mad}


def exceed_probability(fit: dict[str, float], value: float) -> float:
    """Chance that a normal window scores above ``value``."""
    z = (math.log(max(value, 1e-12)) - fit["log_median"]) / fit["log_mad"]
    return 1.0 - _NORMAL.cdf(z)


def value_exceeded_with(fit: dict[str, float], probability: float) -> float:
    """The score a normal window exceeds with ``probability`` (in (0, 1))."""
    return math.exp(fit["log_median"] + fit["log_mad"] * _NORMAL.inv_cdf(1.0 - probability))


def check_rate(rate: object, name: str) -> None:
    """Refuse a false-alarm rate that is not a finite number > 0 (``name``: as the user gave
    it, a flag or a parameter)."""
    if not (isinstance(rate, int | float) and 0 < rate < math.inf):
        raise ConfigError(f"{name} must be a number > 0, got {rate!r}")
