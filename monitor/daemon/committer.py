"""Stage 4: commit the offsets of acknowledged batches, and the lag gauges.

Batches arrive in order, so a committed offset never passes an undecided message. Commits
coalesce under load (one in flight at a time). What may be committed is the ledger's answer
(:meth:`Ledger.committable`: owned, from the current epoch, answered after any outage, never past
the log end, which is reported as a lost log instead); the committer adds the last rule, that a
commit is only made while the consumer holds its group membership.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition

from aemon.daemon.batching import Batch
from aemon.daemon.kafka import Consumer, retriable
from aemon.daemon.learned import Anchors
from aemon.daemon.ledger import Ledger
from aemon.daemon.metrics import Metrics
from aemon.daemon.supervisor import Fatal

log = logging.getLogger("aemon.serve")


class Committer:
    def __init__(
        self,
        *,
        consumer: Consumer,
        ledger: Ledger,
        metrics: Metrics,
        timeout_s: float,
        lost: Callable[[str, str], None],
        anchors: Anchors,
    ) -> None:
        """``lost(reason, detail)``: report a lost input log (the watch's); ``anchors``: where
        a commit's anchors are kept before it is made."""
        self.consumer, self.ledger, self.metrics = consumer, ledger, metrics
        self.timeout_s, self.lost, self.anchors = timeout_s, lost, anchors
        self._batches = 0
        self._wanted = asyncio.Event()
        self._closed = False

    def acknowledged(self, batch: Batch) -> None:
        """Every message of ``batch`` is acknowledged (the publisher): commit its offsets."""
        self.ledger.acknowledged(batch.commit, batch.ends, batch.epochs, batch.anchors)
        self._batches += 1
        self._wanted.set()

    def close(self) -> None:
        """No more batches: commit what is acknowledged, then end :meth:`run`."""
        self._closed = True
        self._wanted.set()

    async def run(self) -> None:
        while True:
            if not self._batches:
                if self._closed:
                    return
                await self._wanted.wait()
                self._wanted.clear()
                continue
            batches, self._batches = self._batches, 0
            await self.commit()
            self.ledger.settled(batches)

    async def commit(self) -> None:
        answer = self.ledger.committable(self.consumer.highwater, self.consumer.last_poll_timestamp)
        for tp, detail in answer.past_end:
            self.lost("past_end", f"{tp.topic}/{tp.partition}: {detail}")
        offsets = answer.offsets
        if not offsets:
            return
        if not self.consumer.in_group():
            # A commit now would not be a member's: a fresh group (a broker that lost its
            # state) would accept it into a new log. The messages are decided; a restart or the
            # next owner decides them again (same alert ids).
            log.warning("not committing %d partition(s): group membership lost", len(offsets))
            return
        await self._keep_anchors(offsets, answer.anchors)
        if not offsets:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), self.timeout_s)
        except Exception as exc:  # not fatal: the messages are decided, a commit comes next batch
            name = type(exc).__name__
            self.metrics.errors.labels("commit", name[:40]).inc()
            if "Authorization" in name:
                raise Fatal(f"the group may not commit offsets: {exc!r}") from exc
            if name == "UnknownTopicOrPartitionError":
                for tp in offsets:
                    self.lost(
                        "past_end",
                        f"{tp.topic}/{tp.partition}: the broker does not know the partition",
                    )
            level = logging.INFO if retriable(exc) or name == "CommitFailedError" else logging.WARN
            log.log(level, "commit of %d partition(s) failed: %r", len(offsets), exc)
            return
        self.ledger.committed(offsets)
        self.update_lag()

    async def _keep_anchors(
        self,
        offsets: dict[TopicPartition, int],
        anchors: dict[TopicPartition, dict[str, tuple[int, int]]],
    ) -> None:
        """Keep the anchors of the partitions to commit that have them (the intake takes
        them at most once a second), all at once: a flush's commit waits for one round trip,
        not one a partition. A partition whose anchors are not kept is left out of this commit
        (it stays acknowledged for the next)."""
        store = self.anchors.store
        if store is None:  # not kept anywhere: committed as they are
            return
        due = [tp for tp in anchors if tp in offsets]
        kept = await asyncio.gather(
            *(self._kept(store.keep_anchors(tp.partition, offsets[tp], anchors[tp])) for tp in due)
        )
        for tp, ok in zip(due, kept, strict=True):
            if not ok:
                del offsets[tp]

    async def _kept(self, keeping: Awaitable[bool]) -> bool:
        try:
            return await asyncio.wait_for(keeping, self.timeout_s)
        except TimeoutError:
            log.info(
                "anchors not kept within %g s: not committing their partition yet", self.timeout_s
            )
            return False

    async def find_baselines(self) -> None:
        """Lag before a partition's first commit counts from where its consumption starts, so
        that partitions not fetched yet are not left out of the gauge at start-up."""
        for tp in self.ledger.needs_baseline():
            try:
                offset = await asyncio.wait_for(self.consumer.position(tp), 2)
            except Exception:  # not assigned any more, or the broker is away: next time
                return
            self.ledger.set_baseline(tp, offset)

    def update_lag(self) -> None:
        """Lag: messages not decided yet; re-read: decided, but kept uncommitted for a restart."""
        for tp in self.ledger.assigned:
            high = self.consumer.highwater(tp)
            done = self.ledger.done(tp)
            labels = (tp.topic, str(tp.partition))
            if high is not None and done is not None:
                self.metrics.consumer_lag.labels(*labels).set(max(0, high - done))
            kept = self.ledger.kept(tp)
            if kept is not None:
                self.metrics.reread.labels(*labels).set(kept)
