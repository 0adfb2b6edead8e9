"""Anomaly thresholds fitted on the scores of *normal* data only.

Methods (spec strings as the CLI takes them):

- ``mean-std:K``: mean + K standard deviations (the TensorFlow tutorial's, K = 1).
- ``quantile:Q``: the empirical Q-quantile.
- ``pot:RISK``: peaks over threshold (Siffer et al., KDD 2017): a generalised Pareto
  distribution fitted to the excesses over a high initial quantile gives the score exceeded with
  probability RISK; it extrapolates past the largest calibration score.
- ``mad:K``: robust z-score on log scores, ``exp(median + K * 1.4826 * MAD)``; outliers among the
  normal scores (mislabelled or odd beats) barely move it. The log-MAD is at least 0.1
  (``aemon.core.rates``), so near-identical scores (near-constant data) cannot collapse it
  onto the median.
- ``fitted-max:M``: the same robust log-normal's ``1 - 1/(M (n + 1))`` quantile (never below
  its median), for n calibration scores: at M = 1 the expected largest of them, the fit's
  smooth stand-in for the largest score itself. It reaches as far into the tail as n scores
  can see (farther with M > 1), where ``mad:K`` reaches a fixed distance whatever n: from a few
  dozen scores, a distance that their spread's estimate makes vary widely between trainings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from aemon.core.errors import ConfigError
from aemon.core.rates import log_normal, value_exceeded_with
from aemon.core.specs import parse_threshold

POT_INITIAL_QUANTILE = 0.98
POT_MIN_PEAKS = 10


@dataclass(frozen=True)
class Threshold:
    value: float
    method: str
    param: float
    n: int
    details: dict[str, float]

    @property
    def spec(self) -> str:
        return f"{self.method}:{self.param:g}"

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "method": self.method,
            "param": self.param,
            "n": self.n,
            "details": self.details,
        }


def check_sample_size(spec: str, n: int) -> None:
    """Refuse, before any training, a calibration set too small for ``spec``."""
    method, _ = parse_threshold(spec)
    need = 2 if method != "pot" else math.ceil(POT_MIN_PEAKS / (1 - POT_INITIAL_QUANTILE))
    if n < need:
        hint = "; use mad:K or quantile:Q, or more normal data" if method == "pot" else ""
        raise ConfigError(f"threshold {spec} needs >= {need} calibration windows, got {n}{hint}")


def pot(scores: np.ndarray, risk: float, initial_quantile: float = POT_INITIAL_QUANTILE) -> dict:
    """Peaks-over-threshold: ``z = t + sigma/gamma * ((risk * n / n_t) ** -gamma - 1)``."""
    t = float(np.quantile(scores, initial_quantile))
    peaks = scores[scores > t] - t
    if len(peaks) < POT_MIN_PEAKS:
        raise ValueError(
            f"POT needs >= {POT_MIN_PEAKS} scores above its initial quantile, got {len(peaks)}"
        )
    gamma, _, sigma = stats.genpareto.fit(peaks, floc=0.0)
    ratio = risk * len(scores) / len(peaks)
    if abs(gamma) < 1e-8:
        z = t - sigma * np.log(ratio)
    else:
        z = t + sigma / gamma * (ratio ** (-gamma) - 1.0)
    return {
        "value": float(z),
        "t": t,
        "gamma": float(gamma),
        "sigma": float(sigma),
        "peaks": len(peaks),
    }


def calibrate(scores: np.ndarray, spec: str) -> Threshold:
    """Fit the threshold named by ``spec`` on normal ``scores``."""
    method, param = parse_threshold(spec)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) < 2 or not np.isfinite(s).all():
        raise ValueError("calibration needs at least two finite scores")
    details: dict[str, float] = {}
    if method == "mean-std":
        details = {"mean": float(s.mean()), "std": float(s.std())}
        value = details["mean"] + param * details["std"]
    elif method == "quantile":
        value = float(np.quantile(s, param))
    elif method == "mad":
        details = log_normal(s)
        value = float(np.exp(details["log_median"] + param * details["log_mad"]))
    elif method == "fitted-max":
        details = log_normal(s)
        value = value_exceeded_with(details, min(0.5, 1.0 / (param * (len(s) + 1))))
    else:
        details = pot(s, param)
        value = details.pop("value")
    return Threshold(float(value), method, param, len(s), details)
