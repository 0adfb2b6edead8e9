"""A loaded artifact ready to score: normalise, reconstruct, reduce to one score per window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aemon.training.artifact import load_model
from aemon.training.device import autocast, pick_device
from aemon.training.models.base import Autoencoder
from aemon.training.normalise import Normaliser


@dataclass
class Detector:
    model: Autoencoder
    meta: dict
    normaliser: Normaliser
    device: torch.device
    amp: bool = False

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", amp: bool = False) -> Detector:
        """Load and verify an artifact; ``amp`` enables autocast when scoring on CUDA."""
        model, meta = load_model(path)
        dev = pick_device(device)
        return cls(model.to(dev), meta, Normaliser.from_dict(meta["normaliser"]), dev, amp)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["input"]["shape"])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"]["value"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def version(self) -> str:
        return str(self.meta["model_version"])

    def errors_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Per-element error of a normalised batch already on the device (float32)."""
        with torch.inference_mode(), autocast(self.device, self.amp):
            return self.model.errors(x, self.meta["score"]).float()

    def score_tensor(
        self, x: torch.Tensor, threshold: float | None = None, top_k: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score a normalised batch on the device: the one scoring path, offline and online.

        Returns the scores; with a ``threshold``, also the positions of the windows above it and,
        for those windows only, the ``top_k`` flattened positions that contribute most.
        """
        err = self.errors_tensor(x).flatten(1)
        scores = err.mean(1).cpu().numpy()
        if threshold is None:
            return scores, np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.int64)
        flagged = np.flatnonzero(scores > threshold)
        if top_k and flagged.size:
            rows = torch.from_numpy(flagged).to(err.device)
            top = err[rows].topk(min(top_k, err.shape[1]), dim=1).indices.cpu().numpy()
        else:
            top = np.empty((flagged.size, 0), dtype=np.int64)
        return scores, flagged, top

    def score(self, values: np.ndarray, batch: int = 4096) -> np.ndarray:
        """One score per window of raw ``values`` ``[n, *input_shape]``, as float32."""
        x = self.normaliser(np.ascontiguousarray(values, dtype=np.float32))
        out = np.empty(len(x), dtype=np.float32)
        for i in range(0, len(x), batch):
            out[i : i + batch] = self.score_tensor(
                torch.from_numpy(x[i : i + batch]).to(self.device)
            )[0]
        return out
