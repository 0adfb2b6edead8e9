"""Batch scoring off the event loop, through the same path as offline ``aemon score``.

On CUDA each model's rows are staged in a pinned host buffer and copied with
``non_blocking=True``; on the CPU the batch's own memory is used without a copy. A batch may hold
windows of several models (a models directory): each model scores its own rows.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from aemon.core.detector import Detector
from aemon.daemon.batching import as_windows


def settle_heap() -> None:
    """Hide everything alive now (torch, the models, the clients) from the cyclic garbage
    collector, so that its full collections walk only what the stream allocates instead of
    stalling the loop (measured: 0.15-0.37 s a collection over the ~250k start-up objects)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass
class Scored:
    scores: np.ndarray  # float32 [n]
    flagged: np.ndarray  # positions of the windows above the fixed threshold (single model)
    top: np.ndarray  # int64 [len(flagged), k]: their flattened positions with the largest error
    seconds: float
    channels: np.ndarray | None = None  # series of several metrics: error per metric [n, c]

    @property
    def flags(self) -> np.ndarray:
        """``scores > threshold`` as a boolean mask."""
        mask = np.zeros(len(self.scores), dtype=bool)
        mask[self.flagged] = True
        return mask


class Scorer:
    """Owns the detectors and a single worker thread; swap detectors between batches."""

    def __init__(self, detectors: list[Detector], capacity: int, top_k: int) -> None:
        self.top_k = top_k
        self.capacity = capacity
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="aemon-score")
        self.detectors = list(detectors)
        # the most metrics a series model's sample carries (a swap keeps each model's)
        self.wide = max((d.meta.value_channels for d in detectors if d.meta.is_series), default=1)
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}  # CUDA staging, by model shape
        self.warm_up()

    def warm_up(self) -> None:
        """One full-size batch through each model, so the first real batch pays no start-up."""
        for det in self.detectors:
            self._score_rows(det, np.zeros((self.capacity, *det.input_shape), np.float32), None)

    def swap(self, i: int, detector: Detector) -> None:
        """Use ``detector`` as model ``i`` from the next batch on (between batches only)."""
        running = self.detectors[i].input_shape
        if detector.input_shape != running:
            raise ValueError(f"new model takes {detector.input_shape}, the running one {running}")
        self.detectors[i] = detector
        self._score_rows(detector, np.zeros((1, *running), dtype=np.float32), None)

    def add(self, detector: Detector) -> None:
        """Use ``detector`` as the next model from the next batch on (between batches only)."""
        self.detectors.append(detector)
        self._score_rows(detector, np.zeros((1, *detector.input_shape), np.float32), None)

    def _staged(self, det: Detector, values: np.ndarray) -> torch.Tensor:
        """Raw rows scaled and on the model's device (through the pinned buffer on CUDA)."""
        x = torch.from_numpy(det.inputs(values))
        if det.device.type != "cuda":
            return x
        shape = det.model_shape
        if shape not in self._pinned:
            size = (self.capacity, *shape)
            self._pinned[shape] = torch.empty(size, dtype=torch.float32, pin_memory=True)
        staged = self._pinned[shape][: len(values)]
        staged.copy_(x)
        return staged.to(det.device, non_blocking=True)

    def _score_rows(
        self, det: Detector, values: np.ndarray, threshold: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return det.score_tensor(self._staged(det, values), threshold, self.top_k)

    def score(
        self, values: np.ndarray, models: np.ndarray | None = None, learned: Sequence[Detector] = ()
    ) -> Scored:
        """Score a batch's rows ``[n, *row shape]`` (runs in the worker thread): each model's
        raw windows, :func:`as_windows`. ``models``: the model of each row, numbered on past the
        scorer's own into ``learned`` (streams' updated models); None: model 0 for all, with its
        threshold's flags and contributors."""
        start = time.perf_counter()
        if models is None:
            det = self.detectors[0]
            scores, flagged, top = self._score_rows(det, values, det.threshold)
            return Scored(scores, flagged, top, time.perf_counter() - start)
        scores = np.empty(len(values), dtype=np.float32)
        channels = None  # series of several metrics: what each contributed (NaN past a row's)
        if self.wide > 1:
            channels = np.full((len(values), self.wide), np.nan, dtype=np.float32)
        own = len(self.detectors)
        for m in np.unique(models).tolist():
            rows = np.flatnonzero(models == m)
            det = self.detectors[m] if m < own else learned[m - own]
            windows = as_windows(values[rows], det.input_shape)
            if det.meta.is_series and det.meta.value_channels > 1:
                metrics = det.meta.value_channels
                scores[rows], channels[rows, :metrics] = det.score_channels(  # type: ignore[index]
                    self._staged(det, windows)
                )
            else:
                scores[rows] = self._score_rows(det, windows, None)[0]
        none = np.empty(0, dtype=np.int64)
        seconds = time.perf_counter() - start
        return Scored(scores, none, np.empty((0, 0), dtype=np.int64), seconds, channels)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
