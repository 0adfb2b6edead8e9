"""Input normalisers, fitted on training data and stored in the artifact as plain numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aemon.core.errors import ArtifactError
from aemon.core.specs import NORMALISERS

CLIP = 1e6  # normalised values are clipped to +-CLIP
ROBUST_FLOOR = 1e-3  # the robust scale is at least this fraction of the level (never zero)


@dataclass(frozen=True)
class Normaliser:
    """``(x - shift) / scale``: global min-max or z-score, or per window (``window-zscore``).

    ``minmax`` and ``zscore`` use one scalar pair fitted on the training windows (as the
    TensorFlow tutorial does); ``robust`` centres on the median and scales by the 5-95%
    range, or where most values are one value (a mostly-zero series, a noiseless one's
    distances from its daily profile) by the whole range of its excursions, never less than
    0.1% of the level, so such series do not blow up, whatever their units (a metric near 1e-6
    that moves by 1e-7 is scaled by its moves, not by a fixed 0.001 that would hide them); one
    that never moves, whose units nothing says, by 0.1% of its level and at least 0.001;
    ``window-zscore`` standardises each window by its own mean and std, which suits streams
    whose level drifts.

    Multichannel windows ``[n, channels, length]`` fitted with ``per_channel``: one pair per
    channel (``shift`` and ``scale`` are then tuples), so metrics whose units differ by 10^8
    each count alike. ``level_from`` names, per channel, the channel whose median is the level
    its robust floor is a fraction of (a channel in another's units, such as a value's distance
    from its daily profile, takes that one's); by default each channel's own.
    """

    kind: str = "none"
    shift: float | tuple[float, ...] = 0.0
    scale: float | tuple[float, ...] = 1.0

    @classmethod
    def fit(
        cls,
        kind: str,
        x: np.ndarray,
        per_channel: bool = False,
        level_from: Sequence[int] | None = None,
    ) -> Normaliser:
        if kind not in NORMALISERS:
            raise ValueError(f"unknown normaliser {kind!r}; choose from {', '.join(NORMALISERS)}")
        x = np.asarray(x, dtype=np.float64)  # float32 sums of squares overflow past ~1e19
        if per_channel and x.ndim == 3 and kind in ("minmax", "zscore", "robust"):
            medians = np.median(x, axis=(0, 2))  # each channel's, once
            sources = range(x.shape[1]) if level_from is None else level_from
            pairs = [cls._fit_one(kind, x[:, c], float(medians[s])) for c, s in enumerate(sources)]
            return cls(kind, tuple(p.shift for p in pairs), tuple(p.scale for p in pairs))  # type: ignore[misc]
        return cls._fit_one(kind, x)

    @classmethod
    def _fit_one(cls, kind: str, x: np.ndarray, level: float | None = None) -> Normaliser:
        """One pair for every value of ``x``; ``level`` (default: the median of ``x``) is what
        the robust floor is a fraction of."""
        if kind == "minmax":
            lo, hi = float(x.min()), float(x.max())
            return cls(kind, lo, max(hi - lo, 1e-12))
        if kind == "zscore":
            return cls(kind, float(x.mean()), max(float(x.std()), 1e-12))
        if kind == "robust":
            med = float(np.median(x))
            level = abs(med if level is None else level)
            spread = float(np.quantile(x, 0.95) - np.quantile(x, 0.05))
            floor = ROBUST_FLOOR * level
            if spread <= floor:  # mostly one value: scale by the excursions from it
                spread = float(x.max() - x.min())
            if spread <= 0:  # one value: nothing says its units, so at least 0.001
                return cls(kind, med, ROBUST_FLOOR * max(level, 1.0))
            return cls(kind, med, max(spread, floor))
        return cls(kind)

    def _pair(self, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """Shift and scale shaped to broadcast over ``[n, channels, length]`` (or scalars)."""
        shape = (-1, 1) if isinstance(self.shift, tuple) else ()
        return (
            np.asarray(self.shift, dtype=dtype).reshape(shape),
            np.asarray(self.scale, dtype=dtype).reshape(shape),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Normalise a float32 batch ``[n, ...]``; ``none`` returns ``x`` itself, not a copy."""
        if self.kind == "none":
            return x
        if self.kind == "window-zscore":
            flat = x.reshape(len(x), -1)
            mean = flat.mean(axis=1, keepdims=True)
            std = np.maximum(flat.std(axis=1, keepdims=True), 1e-6)
            return ((flat - mean) / std).reshape(x.shape).astype(np.float32)
        shift, scale = self._pair(np.float32)
        out = (x - shift) / scale
        # Values far outside anything seen in training stay huge but finite, so every score is.
        return np.clip(out, -CLIP, CLIP).astype(np.float32)

    def inverse(self, z: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Normalised ``z`` back in the units of ``raw``, the windows it was computed from
        (``window-zscore`` undoes each window's own mean and std)."""
        if self.kind == "none":
            return z
        if self.kind == "window-zscore":
            flat = raw.reshape(len(raw), -1).astype(np.float64)
            mean = flat.mean(axis=1, keepdims=True)
            std = np.maximum(flat.std(axis=1, keepdims=True), 1e-6)
            return (z.reshape(len(z), -1) * std + mean).reshape(z.shape)
        shift, scale = self._pair(np.float64)
        return z.astype(np.float64) * scale + shift

    def to_dict(self) -> dict[str, object]:
        listed = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
        return {"kind": self.kind, "shift": listed(self.shift), "scale": listed(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Normaliser:
        kind = d.get("kind")
        if kind not in NORMALISERS:
            raise ArtifactError(f"unknown normaliser {kind!r} in artifact")
        try:
            shift, scale = (_numbers(d[k]) for k in ("shift", "scale"))
        except (KeyError, TypeError, ValueError):
            raise ArtifactError("normaliser: shift and scale must be numbers") from None
        a, b = np.atleast_1d(shift), np.atleast_1d(scale)
        if a.shape != b.shape or not (
            np.isfinite(a).all() and np.isfinite(b).all() and b.min() > 0
        ):
            raise ArtifactError(f"normaliser: shift {shift} and scale {scale} must be finite")
        return cls(str(kind), shift, scale)

    @property
    def channels(self) -> int | None:
        """The channels of a per-channel normaliser (None: one pair for every value)."""
        return len(self.shift) if isinstance(self.shift, tuple) else None


def _numbers(v: object) -> float | tuple[float, ...]:
    """A number or a non-empty list of numbers, as floats (booleans refused)."""
    if isinstance(v, list) and v and not any(isinstance(x, bool) for x in v):
        return tuple(float(x) for x in v)
    if isinstance(v, bool | list):
        raise TypeError("not a number")
    return float(v)  # type: ignore[arg-type]
