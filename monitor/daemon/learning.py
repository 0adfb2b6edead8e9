"""Each stream's continual learning in the daemon (:mod:`aemon.core.learning`).

One :class:`~aemon.core.learner.StreamLearner` per (partition, stream) whose model keeps
learning; its updates are fine-tuned on a thread of their own, so scoring goes on meanwhile. An
update starts once its last training window is read, ``delay`` windows before the windows it
scores: on a live stream it is ready long before they come; a stream read faster than its
updates train (a backlog, a replay) waits for them at scoring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from aemon.core.detector import Detector
from aemon.core.learner import StreamLearner
from aemon.daemon.metrics import Metrics
from aemon.daemon.routing import Models


class Learners:
    """The learners of the streams this daemon owns, and the thread their updates train on."""

    def __init__(self, models: Models, metrics: Metrics) -> None:
        self.models, self.metrics = models, metrics
        self.streams: dict[tuple[int, str], StreamLearner] = {}
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="aemon-learn")

    def push(
        self, partition: int, stream: str, model: int, index: int, window: np.ndarray
    ) -> asyncio.Future[Detector] | None:
        """Give stream ``stream``'s learner its window ``index``; the update that scores it
        (None: the trained model, or a model that does not learn)."""
        det = self.models.detectors[model]
        learning = det.learning
        if learning is None:
            return None
        key = (partition, stream)
        learner = self.streams.get(key)
        if learner is None or learner.det is not det:  # new, or its model was reloaded
            learner = self.streams[key] = StreamLearner(det, stream, learning)
        return learner.push(index, window, self._start)

    def _start(self, job: Callable[[], Detector]) -> asyncio.Future[Detector]:
        def timed() -> Detector:
            start = time.perf_counter()
            det = job()
            self.metrics.model_update_duration.observe(time.perf_counter() - start)
            self.metrics.model_updates.inc()
            return det

        return asyncio.get_running_loop().run_in_executor(self.executor, timed)

    def drop(self, partitions: list[int]) -> None:
        """Forget the learners of partitions no longer owned."""
        gone = set(partitions)
        for key in [k for k in self.streams if k[0] in gone]:
            del self.streams[key]

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
