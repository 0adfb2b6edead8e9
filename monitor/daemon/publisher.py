"""Stage 3: publish a batch's alerts and dead letters and wait for every ack (``acks=all``).

A failed send is sent again with backoff (retriable errors, counted) or ends the daemon (a
non-retriable one). After a broker outage an acknowledgement is not trusted until the output
topics are seen to exist again (the embedded broker acknowledges and drops messages for topics it
lost): messages sent before the outage ended are sent again. A resent alert may be a duplicate;
its id is the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import murmur2

from aemon.daemon.batching import Pool
from aemon.daemon.committer import Committer
from aemon.daemon.decisions import Decided, Send, Totals
from aemon.daemon.health import Health
from aemon.daemon.kafka import BATCH_BYTES, Cluster, Producer, retriable, send_batches
from aemon.daemon.logs import Throttled
from aemon.daemon.metrics import Metrics
from aemon.daemon.stopping import pause
from aemon.daemon.supervisor import Fatal

log = logging.getLogger("aemon.serve")
TOO_LARGE = (
    f" (an output topic takes smaller record batches than the daemon's {BATCH_BYTES:,} bytes: "
    "'aemon serve --check' names it and the command that raises its max.message.bytes)"
)


@functools.lru_cache(maxsize=1 << 16)
def _keyed_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(key: bytes | None, partitions: int) -> int:
    """Kafka's default partitioner (the Java client's murmur2 for a key, any for none)."""
    return random.randrange(partitions) if key is None else _keyed_partition(key, partitions)


class Publisher:
    def __init__(
        self,
        *,
        producer: Producer,
        cluster: Cluster,
        topics: list[str],
        confirming: asyncio.Queue[Decided | None],
        pool: Pool,
        committer: Committer,
        health: Health,
        metrics: Metrics,
        stopping: asyncio.Event,
        backoff: tuple[float, float] = (0.25, 5.0),
    ) -> None:
        """``confirming``: the decided batches, in order, that :meth:`run` waits on."""
        self.producer, self.cluster, self.topics = producer, cluster, topics
        self.confirming, self.pool, self.committer = confirming, pool, committer
        self.health, self.metrics, self.stopping = health, metrics, stopping
        self.backoff = backoff
        self.verified = 0  # outages after which the output topics were seen to exist
        self.totals = Totals()  # what was decided and acknowledged since start
        self._warn = Throttled(log)

    async def run(self) -> None:
        """In batch order: wait for every ack, count, then let the committer have the offsets.
        A batch not acknowledged when the daemon stops ends the stage: nothing after it may be
        committed."""
        try:
            while (d := await self.confirming.get()) is not None:
                try:
                    if not await self.confirm(d):
                        return
                    self.metrics.decided(d)
                    self.totals.add(d)
                    self.committer.acknowledged(d.batch)
                finally:
                    self.pool.give(d.batch)
        finally:
            self.committer.close()

    async def send(self, d: Decided) -> None:
        """Hand ``d``'s messages to the producer as one record batch per topic partition (the
        partition Kafka's default partitioner picks for the key), so that a batch's alerts cost a
        future per partition instead of one each (measured: 18% of the bench's throughput)."""
        d.outages = self.health.outages
        sends: list[Send] = d.sends
        counts = {t: len(await self.producer.partitions_for(t)) for t in {s[0] for s in sends}}
        by_tp: dict[tuple[str, int], list[Send]] = {}
        for send in sends:
            topic, key = send[0], send[2]
            by_tp.setdefault((topic, partition_for(key, counts[topic])), []).append(send)
        futures = []
        for (topic, partition), group in by_tp.items():
            records = (
                {"timestamp": None, "key": key, "value": value, "headers": headers or []}
                for _, value, key, headers in group
            )
            futures += await send_batches(self.producer, topic, partition, records)
        for topic, partition, key, value in d.keeps:  # rare (swap points): one batch each
            record = {"timestamp": None, "key": key, "value": value, "headers": []}
            futures += await send_batches(self.producer, topic, partition, [record])
        d.futures = futures

    async def confirm(self, d: Decided) -> bool:
        """Wait until every message of ``d`` is acknowledged, sending again after failures;
        False when the daemon stops before that (the batch is then not committed)."""
        delay = self.backoff[0]
        while True:
            try:
                if d.futures is None:
                    await self._topics_back()
                    await self.send(d)
                for fut in d.futures or ():
                    await fut
                if d.outages != self.health.outages:  # acknowledged by a broker that came back
                    d.futures = None
                    continue
                self.health.publish_failing = None
                return True
            except Fatal:
                raise
            except Exception as exc:
                if not retriable(exc):
                    hint = TOO_LARGE if isinstance(exc, MessageSizeTooLargeError) else ""
                    raise Fatal(
                        f"publishing failed and retrying cannot help: {exc!r}{hint}"
                    ) from exc
                self._failed(exc, delay)
                _abandon(d.futures)
                d.futures = None
            if await pause(delay, self.stopping):
                return False
            delay = min(2 * delay, self.backoff[1])

    def _failed(self, exc: BaseException, delay: float) -> None:
        self.metrics.errors.labels("publish", type(exc).__name__[:40]).inc()
        self.health.publish_failing = type(exc).__name__
        self._warn.warning(f"publishing failed ({exc!r}); sending again in {delay:.1f} s")

    async def _topics_back(self) -> None:
        """After a broker outage, wait until every output topic exists again."""
        if self.verified == self.health.outages:
            return
        outages = self.health.outages
        missing = set(self.topics) - await self.cluster.topics()
        if missing:
            raise TopicsMissing(", ".join(sorted(missing)))
        self.verified = outages
        log.info("output topics present after the broker came back: %s", ", ".join(self.topics))


def _abandon(futures: list | None) -> None:
    """Sends given up on: their outcomes are read, whenever they come, so that none is logged
    as an exception nobody retrieved."""
    for fut in futures or ():
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())


class TopicsMissing(OSError):
    """Output topics absent after an outage (retriable: they may be re-created)."""

    def __str__(self) -> str:
        return f"output topics missing on the broker: {self.args[0]}"
