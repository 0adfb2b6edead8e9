"""Input normalisers, fitted on training data and stored in the artifact as plain numbers."""

from __future__ import annotations

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
    range, never less than 0.1% of the level, so near-constant or mostly-zero series do not
    blow up; ``window-zscore`` standardises each window by its own mean and std,
    which suits streams whose level drifts.
    """

    kind: str = "none"
    shift: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, kind: str, x: np.ndarray) -> Normaliser:
        if kind not in NORMALISERS:
            raise ValueError(f"unknown normaliser {kind!r}; choose from {', '.join(NORMALISERS)}")
        x = np.asarray(x, dtype=np.float64)  # float32 sums of squares overflow past ~1e19
        if kind == "minmax":
            lo, hi = float(x.min()), float(x.max())
            return cls(kind, lo, max(hi - lo, 1e-12))
        if kind == "zscore":
            return cls(kind, float(x.mean()), max(float(x.std()), 1e-12))
        if kind == "robust":
            med = float(np.median(x))
            spread = float(np.quantile(x, 0.95) - np.quantile(x, 0.05))
            return cls(kind, med, max(spread, ROBUST_FLOOR * max(abs(med), 1.0)))
        return cls(kind)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Normalise a float32 batch ``[n, ...]``; ``none`` returns ``x`` itself, not a copy."""
        if self.kind == "none":
            return x
        if self.kind == "window-zscore":
            flat = x.reshape(len(x), -1)
            mean = flat.mean(axis=1, keepdims=True)
            std = np.maximum(flat.std(axis=1, keepdims=True), 1e-6)
            return ((flat - mean) / std).reshape(x.shape).astype(np.float32)
        out = (x - np.float32(self.shift)) / np.float32(self.scale)
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
        return z.astype(np.float64) * self.scale + self.shift

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "shift": self.shift, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Normaliser:
        kind = d.get("kind")
        if kind not in NORMALISERS:
            raise ArtifactError(f"unknown normaliser {kind!r} in artifact")
        try:
            shift, scale = float(d["shift"]), float(d["scale"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise ArtifactError("normaliser: shift and scale must be numbers") from None
        if not (np.isfinite(shift) and np.isfinite(scale) and scale > 0):
            raise ArtifactError(f"normaliser: shift {shift} and scale {scale} must be finite")
        return cls(str(kind), shift, scale)
