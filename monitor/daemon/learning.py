"""Each stream's continual learning in the daemon (:mod:`aemon.core.learning`).

One :class:`~aemon.core.learner.StreamLearner` per (partition, stream) whose model keeps
learning; its updates are fine-tuned in processes of their own (spawned as updates come), so
scoring goes on meanwhile and training never holds the daemon's interpreter: a thread would, and
every stream's windows would wait for it. An update starts once its last training window is read,
``delay`` windows before the windows it scores: on a live stream it is ready long before they
come; a stream read faster than its updates train (a backlog, a replay) waits for them at
scoring. An update of a partition this daemon no longer owns is withdrawn while it waits for a
learning process (:meth:`Learners.drop`), so the streams it keeps are not held behind it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import dataclasses
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError

from aemon.core.detector import Detector
from aemon.core.learner import StreamLearner, Update
from aemon.daemon.learned import LearnedStore
from aemon.daemon.metrics import Metrics

log = logging.getLogger("aemon.serve")


def _started(daemon: int) -> None:
    """The learning process: it trains on one CPU thread (the daemon's scorer has the others),
    leaves Ctrl-C to the daemon (which stops it when it has drained) and ends when the daemon
    ``daemon`` (its pid) is gone, even killed."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)

    def orphaned() -> None:
        while os.getppid() == daemon:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, name="aemon-learn-parent", daemon=True).start()


def _trained(job: bytes) -> tuple[bytes, float]:
    """In the learning process: run the pickled update ``job`` (the daemon's own); its weights
    (safetensors) and seconds of training. Both ways bytes: multiprocessing's own pickler would
    send each tensor's storage as a file descriptor, and a daemon holding thousands of learned
    models ran out of them."""
    start = time.perf_counter()
    model = pickle.loads(job)().model
    return weights_of(model), time.perf_counter() - start


def weights_of(model: torch.nn.Module) -> bytes:
    """What an update keeps of its model, in the learned-models topic too: its weights
    (safetensors)."""
    return safetensors.torch.save(model.state_dict())


REFUSED = (SafetensorError, RuntimeError, ValueError, KeyError)  # weights not of the model


def _on_cpu(update: Update) -> Update:
    """``update`` as a learning process gets it: its model on the CPU, where updates train
    (:func:`~aemon.core.learner.fine_tuned`); a GPU model would start CUDA in the process."""
    det = update.det
    if det.device.type == "cpu":
        return update
    cpu = torch.device("cpu")
    return dataclasses.replace(
        update, det=dataclasses.replace(det, model=copy.deepcopy(det.model).to(cpu), device=cpu)
    )


def with_weights(det: Detector, weights: bytes) -> Detector:
    """``det`` with its model's weights replaced by ``weights`` (safetensors); one of
    :data:`REFUSED` when they are not weights of that model."""
    model = copy.deepcopy(det.model)
    model.load_state_dict(safetensors.torch.load(weights))
    return det.learned(model.eval())


class Learners:
    """The learners of the streams this daemon owns, and the processes their updates train in."""

    def __init__(self, metrics: Metrics, processes: int = 1) -> None:
        self.metrics = metrics
        self.store: LearnedStore | None = None  # where updates' weights are kept (None: nowhere)
        self.streams: dict[tuple[int, str], StreamLearner] = {}
        # updates in (or queued for) a learning process: their input partition and job there
        self.training: dict[asyncio.Task, tuple[int, concurrent.futures.Future]] = {}
        self.jobs: dict[str, concurrent.futures.Future] = {}  # the same jobs by update key
        self.drops: collections.Counter[int] = collections.Counter()  # each partition's drops
        self.executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_started,
            initargs=(os.getpid(),),
        )

    def push(
        self, partition: int, stream: str, det: Detector, index: int, window: np.ndarray
    ) -> asyncio.Future[Detector | None] | None:
        """Give stream ``stream``'s learner its window ``index``, read under model ``det``; the
        update that scores it (None: the trained model, or a model that does not learn). The
        update comes as None when it was withdrawn (:meth:`drop`): the window's partition is
        no longer owned."""
        learning = det.learning
        if learning is None:
            return None
        key = (partition, stream)
        learner = self.streams.get(key)
        if learner is not None and learner.det is not det:  # its model was swapped in since
            if learner.det.meta.scoring == det.meta.scoring:  # only its threshold or rule: on
                learner.det = det
            else:  # another model: it learns afresh, from the windows that come
                learner = None
        if learner is None:
            learner = self.streams[key] = StreamLearner(det, stream, learning)
        return learner.push(index, window, functools.partial(self._start, det, partition))

    def _start(
        self, det: Detector, partition: int, update: Update
    ) -> asyncio.Future[Detector | None]:
        """The learned detector of ``update`` (of a stream of input ``partition``), to come."""
        return asyncio.ensure_future(self._learned(det, partition, update, self.drops[partition]))

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the updates still training (a stop: each one done is
        kept, not trained again after the restart)."""
        if self.training and timeout > 0:
            await asyncio.wait(list(self.training), timeout=timeout)

    async def _learned(
        self, det: Detector, partition: int, update: Update, drops: int
    ) -> Detector | None:
        """Its weights kept in the store, else trained in a learning process (and then kept);
        None: withdrawn before it trained (:meth:`drop`; ``drops``: the partition's drops when
        it started)."""
        kept = await self.store.get(update, partition) if self.store is not None else None
        if kept is not None:
            try:
                learned = with_weights(det, kept)
            except REFUSED as exc:
                log.warning("kept weights of %s refused (%s); training them", update.stream, exc)
            else:
                self.metrics.model_updates_restored.inc()
                return learned
        if self.drops[partition] != drops:  # dropped since it started
            return None
        task, key = asyncio.current_task(), update.key
        assert task is not None  # the task :meth:`_start` made
        # The same update may be training for the learner this stream had before its partition
        # was forgotten and assigned back (revoked without membership, or its log reset): it is
        # waited for, not trained twice.
        job = self.jobs.get(key)
        if job is None or job.cancelled():
            job = self.jobs[key] = self.executor.submit(_trained, pickle.dumps(_on_cpu(update)))
        self.training[task] = (partition, job)
        try:
            try:
                weights, seconds = await asyncio.wrap_future(job)
            except asyncio.CancelledError:
                if task.cancelling():  # the stop's (:meth:`close`)
                    raise
                return None  # withdrawn by :meth:`drop`
            if self.jobs.get(key) is job:  # the first of those waiting for it keeps it
                self.metrics.model_update_duration.observe(seconds)
                self.metrics.model_updates.inc()
                if self.store is not None:
                    self.store.put(update, weights, partition)
        finally:
            del self.training[task]
            if job.done() and self.jobs.get(key) is job:
                del self.jobs[key]
        return with_weights(det, weights)

    def end(self, partition: int, stream: str) -> None:
        """Forget the learner of a stream that ended (its end marker): a later sample starts
        it afresh, from the trained model."""
        self.streams.pop((partition, stream), None)

    def drop(self, partitions: list[int]) -> None:
        """Forget the learners of partitions no longer owned, and withdraw their updates still
        waiting for a learning process (those windows are not decided here any more, and the
        streams kept would wait behind them); one already training finishes and is kept, for
        whoever owns its partition now to find."""
        gone = set(partitions)
        for key in [k for k in self.streams if k[0] in gone]:
            del self.streams[key]
        self.drops.update(gone)
        withdrawn = sum(job.cancel() for job in {j for p, j in self.training.values() if p in gone})
        if withdrawn:
            log.info("withdrew %d queued update(s) of partitions no longer owned", withdrawn)

    def close(self) -> None:
        """Stop the learning processes at once, an update still training included (the drain
        has waited for it as long as it may; it is trained again after the restart): waiting
        here would hold the exit past ``shutdown_timeout_s``."""
        for task in self.training:  # their results will not come
            task.cancel()
        pool = self.executor  # its processes and result pipe are private (no terminate before 3.14)
        processes, results = list((pool._processes or {}).values()), pool._result_queue
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        # This process holds the result pipe's last writer now: closed, a result cut off mid-way
        # ends there, where the pool's thread (which the exit joins) would wait for the rest.
        if results is not None:
            results._writer.close()
