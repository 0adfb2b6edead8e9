"""Batch scoring off the event loop, through the same path as offline ``aemon score``.

On CUDA the normalised batch is staged in a pinned host buffer and copied with
``non_blocking=True``; on the CPU the batch's own memory is used without a copy.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from training.detector import Detector


@dataclass
class Scored:
    scores: np.ndarray  # float32 [n]
    flagged: np.ndarray  # positions of the windows above the threshold
    top: np.ndarray  # int64 [len(flagged), k]: their flattened positions with the largest error
    seconds: float

    @property
    def flags(self) -> np.ndarray:
        """``scores > threshold`` as a boolean mask."""
        mask = np.zeros(len(self.scores), dtype=bool)
        mask[self.flagged] = True
        return mask


class Scorer:
    """Owns a detector and a single worker thread; swap detectors between batches."""

    def __init__(self, detector: Detector, capacity: int, top_k: int) -> None:
        self.top_k = top_k
        self.capacity = capacity
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="aemon-score")
        self.detector = detector
        self._pinned = self._staging(detector)
        self.warm_up()

    def warm_up(self) -> None:
        """One full-size batch through the model, so the first real batch pays no start-up."""
        self.score(np.zeros((self.capacity, *self.detector.input_shape), dtype=np.float32))

    def _staging(self, detector: Detector) -> torch.Tensor | None:
        if detector.device.type != "cuda":
            return None
        shape = (self.capacity, *detector.input_shape)
        return torch.empty(shape, dtype=torch.float32, pin_memory=True)

    def swap(self, detector: Detector) -> None:
        """Use ``detector`` from the next batch on (call between batches only)."""
        if detector.input_shape != self.detector.input_shape:
            new, running = detector.input_shape, self.detector.input_shape
            raise ValueError(f"new model takes {new}, the running one {running}")
        self._pinned = self._staging(detector)
        self.detector = detector
        self.warm_up()

    def score(self, values: np.ndarray) -> Scored:
        """Score raw windows ``[n, *input_shape]`` (runs in the worker thread)."""
        start = time.perf_counter()
        det = self.detector
        x = torch.from_numpy(det.normaliser(values))
        if self._pinned is not None:
            staged = self._pinned[: len(values)]
            staged.copy_(x)
            x = staged.to(det.device, non_blocking=True)
        scores, flagged, top = det.score_tensor(x, det.threshold, self.top_k)
        return Scored(scores, flagged, top, time.perf_counter() - start)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
