"""The daemon's learning process, without a broker (spawning it is too slow for the unit tier):
updates cross to it and back as plain bytes, so the models a daemon keeps hold nothing open, and
Ctrl-C is the daemon's to handle."""

import asyncio
import os
import signal
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import aemon
from aemon.core.detector import Detector
from aemon.daemon.learning import Learners
from aemon.daemon.metrics import Metrics
from aemon.series_detector import as_samples
from aemon.training.datasets.cut import windows_of
from tests.integration.helpers import children, until


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def learning_processes() -> list[int]:
    """The processes this one spawned for multiprocessing's workers."""
    kids = children(os.getpid())
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


def sine_learning(n: int, epochs: int = 1) -> tuple[Detector, np.ndarray, Learners]:
    """A model of a sine that learns every 20 windows on the last 40 (``epochs`` passes), ``n``
    windows of it, and learners for it (an update starts once its last training window is
    pushed)."""
    t = np.arange(400)
    frame = pd.DataFrame({"timestamp": 1_700_000_000 + 60 * t, "value": np.sin(2 * np.pi * t / 40)})
    fitted = aemon.fit_series(
        frame, epochs=2, learn_every=20, learn_span=40, learn_delay=0, learn_epochs=epochs
    )
    ((_, det),) = fitted.detectors.items()
    cut = windows_of(as_samples(frame), 8, 1, det.meta.clock)
    windows = cut.table.values.reshape(len(cut.table), *det.input_shape)[:n]
    return det, windows, Learners(Metrics())


def pushed(
    learners: Learners, det: Detector, windows: np.ndarray, stream: str = "s", partition: int = 0
) -> set:
    """``stream`` (of ``partition``, read under ``det``) given ``windows``: the updates they
    start."""
    return {learners.push(partition, stream, det, i, w) for i, w in enumerate(windows)} - {None}


def updates_trained(learners: Learners) -> float:
    return learners.metrics.registry.get_sample_value("aemon_model_updates_total") or 0.0


async def test_learned_models_hold_no_file_descriptors():
    det, windows, learners = sine_learning(41)
    try:

        async def stream(name: str) -> list:
            return [await h for h in pushed(learners, det, windows, name)]  # updates 1 and 2

        kept = await stream("s0")  # the learning process is up
        (pid,) = learning_processes()
        os.kill(pid, signal.SIGINT)  # Ctrl-C in a terminal reaches it too: it goes on
        before = open_files()
        kept += [
            d for ds in await asyncio.gather(*(stream(f"s{k}") for k in range(1, 60))) for d in ds
        ]
        assert len(kept) == 120 and all(d.model is not det.model for d in kept)
        assert open_files() - before < 10  # not one per tensor of 118 models
    finally:
        learners.close()


class Recorded:
    """A learned-models store that holds nothing yet and records what it is given to keep."""

    def __init__(self) -> None:
        self.kept: list[int] = []

    async def get(self, update, partition: int) -> None:
        return None

    def put(self, update, weights: bytes, partition: int) -> None:
        self.kept.append(update.number)


async def test_a_stop_waits_for_the_updates_still_training_and_keeps_them():
    det, windows, learners = sine_learning(81)
    learners.store = store = Recorded()  # type: ignore[assignment]
    try:
        handles = pushed(learners, det, windows)
        await until(lambda: bool(learners.training), 10, "an update in the learning process")
        assert not all(h.done() for h in handles)  # none awaited: the stop comes while they train
        await learners.settle(60)
        assert all(h.done() for h in handles) and not learners.training
        assert sorted(store.kept) == [1, 2, 3, 4]
    finally:
        learners.close()


async def test_a_stop_whose_time_is_up_ends_the_updates_still_training_at_once():
    """When the drain's time runs out with updates still training (one in the learning process,
    one queued for it), closing the learners ends them at once: the exit does not wait for
    them past ``shutdown_timeout_s``, and they are trained again after the restart."""
    det, windows, learners = sine_learning(41, epochs=30_000)  # an update trains for about 30 s
    learners.store = store = Recorded()  # type: ignore[assignment]
    handles = pushed(learners, det, windows)
    await until(lambda: bool(learning_processes()), 10, "the learning process")
    await learners.settle(1.0)  # the drain's time is up
    assert len(handles) == 2 and not any(h.done() for h in handles)
    began = time.monotonic()
    learners.close()
    assert time.monotonic() - began < 2
    await asyncio.wait(handles, timeout=5)
    assert all(h.cancelled() for h in handles) and not store.kept
    await until(lambda: not learning_processes(), 10, "the learning process gone")


async def test_a_revoked_partitions_queued_updates_are_withdrawn_and_the_kept_streams_wait_less():
    """Six streams of partition 0 have an update each queued for the one learning process, one
    stream of partition 1 has its update behind them; partition 0 moves to another replica.
    Its updates still waiting are withdrawn (they come as None: nothing here decides their
    windows now), so partition 1's is trained after at most the three the pool has already
    handed to its process (one training, two in its call queue) instead of after all six."""
    det, windows, learners = sine_learning(21, epochs=500)  # one update a stream, ~0.5 s each
    try:
        revoked = [h for k in range(6) for h in pushed(learners, det, windows, f"r{k}")]
        (kept,) = pushed(learners, det, windows, "k", partition=1)
        await until(lambda: len(learners.training) == 7, 10, "seven updates sent to the pool")
        learners.drop([0])
        assert isinstance(await kept, Detector)
        trained_before_it = updates_trained(learners)
        results = [await h for h in revoked]
        withdrawn = sum(r is None for r in results)
        assert withdrawn >= 3 and trained_before_it <= 4
        assert updates_trained(learners) == 7 - withdrawn and not learners.training
        assert all(isinstance(r, Detector) for r in results if r is not None)
    finally:
        learners.close()


class Held(Recorded):
    """A learned-models store whose partition is still being read: a look-up waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self.read = asyncio.Event()

    async def get(self, update, partition: int) -> None:
        await self.read.wait()


async def test_an_update_whose_partition_moves_before_it_trains_is_not_trained():
    """Dropped as it starts, or while it looks its weights up in the store."""
    det, windows, learners = sine_learning(21)
    learners.store = store = Held()  # type: ignore[assignment]
    try:
        (update,) = pushed(learners, det, windows)
        learners.drop([0])
        store.read.set()  # (a rebalance ends the wait: the partition is no longer followed)
        assert await update is None
        assert updates_trained(learners) == 0 and not store.kept and not learners.training
    finally:
        learners.close()


async def test_an_update_training_when_its_partition_is_assigned_again_is_not_trained_twice():
    """A partition forgotten and assigned back (revoked without membership, or its log reset):
    its stream's learner starts afresh from its windows read again, and its update, which the
    learning process already holds (so it was not withdrawn), is waited for, not trained
    twice."""
    det, windows, learners = sine_learning(21, epochs=2000)  # an update trains for about 2 s
    try:
        (before,) = pushed(learners, det, windows)

        def held() -> bool:
            return any(job.running() for _, job in learners.training.values())

        await until(held, 30, "the update held by the learning process")
        learners.drop([0])
        (again,) = pushed(learners, det, windows)
        await until(lambda: len(learners.training) == 2, 10, "the update started again")
        assert len({id(job) for _, job in learners.training.values()}) == 1  # one job for both
        first, second = await before, await again
        assert isinstance(first, Detector) and isinstance(second, Detector)
        assert updates_trained(learners) == 1 and not learners.jobs
        weights = first.model.state_dict()
        assert all(v.equal(weights[k]) for k, v in second.model.state_dict().items())
    finally:
        learners.close()


async def test_a_result_cut_off_by_the_stop_does_not_hold_the_exit():
    """A learning process ended while it sends an update's weights leaves part of a message in
    the pool's result pipe; the pool's thread, which the interpreter joins at exit, would wait
    for the rest forever (measured with a pool sending 1 GB: each stop during the transfer
    hung). Here the part is written into the pipe as such a process leaves it."""
    det, windows, learners = sine_learning(21)
    (update,) = pushed(learners, det, windows)
    await update  # the learning process is up, and idle
    pool = learners.executor
    os.write(pool._result_queue._writer.fileno(), struct.pack("!i", 1 << 20) + b"part")
    thread = pool._executor_manager_thread

    def reading() -> bool:  # the thread waits for the rest of the message
        frame = sys._current_frames().get(thread.ident)
        return frame is not None and frame.f_code.co_name == "_recv"

    await until(reading, 10, "the pool's thread reading the message")
    writer = pool._result_queue._writer
    learners.close()
    thread.join(10)
    alive = thread.is_alive()
    writer.close()  # (a failure here must not hold this test run's own exit)
    assert not alive
