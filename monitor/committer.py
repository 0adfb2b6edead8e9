"""Stage 4: commit the offsets of acknowledged batches, and the lag gauges.

Batches arrive in order, so a committed offset never passes an undecided message. Commits
coalesce under load (one in flight at a time). An offset is committed only for a partition this
member owns, from the epoch it was fetched in (a partition revoked, or whose log was lost, starts
a new epoch), while the consumer holds its group membership, and never past the log end the
broker last reported: an offset beyond it means the log was lost or reset, which is reported
instead of committed. After a broker outage a partition's offsets wait until a fetch answered
after the outage has said where its log ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import TopicPartition

from aemon.batching import Batch
from aemon.kafka import Clients, retriable
from aemon.metrics import Metrics
from aemon.supervisor import Fatal

log = logging.getLogger("aemon.serve")


class Committer:
    def __init__(
        self,
        clients: Clients,
        metrics: Metrics,
        timeout_s: float,
        on_done: Callable[[int], None],
        on_past_end: Callable[[TopicPartition, str], None],
    ) -> None:
        self.clients, self.metrics, self.timeout_s = clients, metrics, timeout_s
        self.on_done, self.on_past_end = on_done, on_past_end
        self.epochs: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.baseline: dict[TopicPartition, int] = {}  # lag before a first commit: first fetched
        self._pending: dict[TopicPartition, int] = {}
        self._batches = 0
        self._wanted = asyncio.Event()
        self._closed = False
        self.last_commit: float | None = None  # monotonic, for the benchmark
        self.fresh_after_ms: int | None = None  # after an outage: fetches older than this

    def outage_ended(self) -> None:
        """The broker is back: what it said before about log ends is not evidence any more."""
        self.fresh_after_ms = int(time.time() * 1000)

    def epoch(self, tp: TopicPartition) -> int:
        return self.epochs.get(tp, 0)

    def acknowledged(self, batch: Batch) -> None:
        """Every message of ``batch`` is acknowledged: its offsets may be committed."""
        for tp, offset in batch.commit.items():
            if batch.epochs.get(tp, 0) == self.epoch(tp):
                self._pending[tp] = offset
        self._batches += 1
        self._wanted.set()

    def close(self) -> None:
        """No more batches: commit what is pending, then end :meth:`run`."""
        self._closed = True
        self._wanted.set()

    def forget(self, tps: list[TopicPartition], revoked: bool = True) -> None:
        """Partitions revoked (or their log lost: ``revoked=False``): offsets fetched before now
        are never committed."""
        for tp in tps:
            self.epochs[tp] = self.epoch(tp) + 1
            self._pending.pop(tp, None)
            self.committed.pop(tp, None)
            self.baseline.pop(tp, None)
            if revoked:
                self.assigned.discard(tp)
                self.metrics.forget_lag(tp.topic, tp.partition)

    async def run(self) -> None:
        while True:
            if not self._batches:
                if self._closed:
                    return
                await self._wanted.wait()
                self._wanted.clear()
                continue
            offsets, batches = dict(self._pending), self._batches
            self._pending.clear()
            self._batches = 0
            await self.commit(offsets)
            self.on_done(batches)

    def _committable(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        out = {}
        for tp, offset in offsets.items():
            if tp not in self.assigned or offset <= self.committed.get(tp, -1):
                continue
            if self.fresh_after_ms is not None and (
                (self.clients.consumer.last_poll_timestamp(tp) or 0) < self.fresh_after_ms
            ):
                self._pending.setdefault(tp, offset)  # held until a fetch answers
                continue
            high = self.clients.consumer.highwater(tp)
            if high is not None and offset > high:
                self.on_past_end(tp, f"offset {offset} is past the log end {high}")
                continue
            out[tp] = offset
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        offsets = self._committable(offsets)
        if not offsets:
            return
        if not self.clients.in_group():
            # A commit now would not be a member's: a fresh group (a broker that lost its
            # state) would accept it into a new log. The messages are decided; a restart or the
            # next owner decides them again (same alert ids).
            log.warning("not committing %d partition(s): group membership lost", len(offsets))
            return
        try:
            await asyncio.wait_for(self.clients.consumer.commit(offsets), self.timeout_s)
        except Exception as exc:  # not fatal: the messages are decided, a commit comes next batch
            name = type(exc).__name__
            self.metrics.errors.labels("commit", name[:40]).inc()
            if "Authorization" in name:
                raise Fatal(f"the group may not commit offsets: {exc!r}") from exc
            if name == "UnknownTopicOrPartitionError":
                for tp in offsets:
                    self.on_past_end(tp, "the broker does not know the partition")
            level = logging.INFO if retriable(exc) or name == "CommitFailedError" else logging.WARN
            log.log(level, "commit of %d partition(s) failed: %r", len(offsets), exc)
            return
        self.committed.update(offsets)
        self.last_commit = time.monotonic()
        self.update_lag()

    async def find_baselines(self) -> None:
        """Lag before a partition's first commit counts from where its consumption starts, so
        that partitions not fetched yet are not left out of the gauge at start-up."""
        for tp in list(self.assigned):
            if tp not in self.committed and tp not in self.baseline:
                try:
                    self.baseline[tp] = await asyncio.wait_for(
                        self.clients.consumer.position(tp), 2
                    )
                except Exception:  # not assigned any more, or the broker is away: next time
                    return

    def update_lag(self) -> None:
        for tp in list(self.assigned):
            high = self.clients.consumer.highwater(tp)
            done = self.committed.get(tp, self.baseline.get(tp))
            if high is not None and done is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - done)
                )
