"""Input normalisers, fitted on training data and stored in the artifact as plain numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.errors import ArtifactError

KINDS = ("none", "minmax", "zscore", "window-zscore")


@dataclass(frozen=True)
class Normaliser:
    """``(x - shift) / scale``: global min-max or z-score, or per window (``window-zscore``).

    ``minmax`` and ``zscore`` use one scalar pair fitted on the training windows (as the
    TensorFlow tutorial does); ``window-zscore`` standardises each window by its own mean and std,
    which suits streams whose level drifts.
    """

    kind: str = "none"
    shift: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, kind: str, x: np.ndarray) -> Normaliser:
        if kind not in KINDS:
            raise ValueError(f"unknown normaliser {kind!r}; choose from {', '.join(KINDS)}")
        if kind == "minmax":
            lo, hi = float(x.min()), float(x.max())
            return cls(kind, lo, max(hi - lo, 1e-12))
        if kind == "zscore":
            return cls(kind, float(x.mean()), max(float(x.std()), 1e-12))
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
        return ((x - np.float32(self.shift)) / np.float32(self.scale)).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "shift": self.shift, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Normaliser:
        kind = d.get("kind")
        if kind not in KINDS:
            raise ArtifactError(f"unknown normaliser {kind!r} in artifact")
        return cls(str(kind), float(d["shift"]), float(d["scale"]))  # type: ignore[arg-type]
