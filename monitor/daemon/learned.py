"""The learned-models topic: streams' updated weights kept in the broker, so that a daemon that
restarts, or takes a partition over, finds them instead of training them again.

An update's weights are a function of its :attr:`~aemon.core.learner.Update.key` (the trained
model's version, the stream, the update's number, a digest of the windows it trains on), so
weights found under the key are exactly those training would compute: the store changes how
soon a model is ready, never a decision. A record missing, lost or unreadable only means that
update is trained again.

Records are keyed by model version, stream and the update's number modulo the updates a restart
needs (those in effect over the windows it re-reads, and the next), so a compacted topic keeps
that many per stream, each replacing the one that many updates older; the update's full key
travels in the ``update`` header and the value is the weights in safetensors format. Every
daemon reads the whole topic at start, then follows it (a partition taken over finds what its
last owner kept), and holds it in memory: with NAB's defaults ten updates of 9.6 KB per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from aemon.core.learner import Update
from aemon.daemon.kafka import Producer, partitions_of
from aemon.daemon.publisher import partition_for
from aemon.daemon.routing import Models

log = logging.getLogger("aemon.serve")
RETRY_S = 1.0  # after the topic could not be read


def slot(update: Update, history: int) -> bytes:
    """The record key under which ``update`` is kept when a restart re-reads ``history``
    windows of its stream."""
    learning = update.det.learning
    assert learning is not None
    slots = -(-history // learning.every) + 2
    return f"{update.det.version}\x1f{update.stream}\x1f{update.number % slots}".encode()


class LearnedStore:
    """The learned-models topic as a daemon holds it: every record read (at start, then as
    other daemons add them) and the updates this daemon trains, sent on."""

    def __init__(
        self,
        topic: str,
        producer: Producer,
        open_reader: Callable[[], Any],
        models: Models,
    ) -> None:
        self.topic, self.producer, self.open_reader = topic, producer, open_reader
        self.models = models  # their history: the windows of a stream a restart re-reads
        self.kept: dict[bytes, tuple[bytes, bytes]] = {}  # slot -> (update key, weights)
        self.pending: list[tuple[bytes, bytes, bytes]] = []  # kept, not yet sent
        self._wake = asyncio.Event()
        self.partitions: list[int] = []
        self._reader: Any = None

    def get(self, update: Update) -> bytes | None:
        """The weights kept for ``update``, if any."""
        found = self.kept.get(slot(update, self.models.history))
        return found[1] if found is not None and found[0] == update.key.encode() else None

    def put(self, update: Update, weights: bytes) -> None:
        """Keep ``update``'s weights: here at once, in the topic by :meth:`send` (not awaited by
        anything that decides: a record lost is an update trained again)."""
        key, full = slot(update, self.models.history), update.key.encode()
        self.kept[key] = (full, weights)
        self.pending.append((key, full, weights))
        self._wake.set()

    async def send(self, stopping: asyncio.Event) -> None:
        """Send what :meth:`put` kept, as few record batches as fit (one partition takes one
        batch at a time), until ``stopping``; :meth:`sent` sends the rest."""
        while not stopping.is_set():
            await self._wake.wait()
            try:
                await self._send()
            except Exception as exc:  # the store is an optimisation: never stop the daemon
                log.warning("keeping learned models in %s: %s", self.topic, exc)
                await asyncio.sleep(RETRY_S)

    async def sent(self, timeout: float) -> None:
        """Send what is pending, for up to ``timeout`` s (before the producer stops)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send(), timeout)

    async def _send(self) -> None:
        self._wake.clear()
        pending, self.pending = self.pending, []
        by_partition: dict[int, list[tuple[bytes, bytes, bytes]]] = {}
        for record in pending:
            where = self.partitions[partition_for(record[0], len(self.partitions))]
            by_partition.setdefault(where, []).append(record)
        for partition, records in by_partition.items():
            batch = self.producer.create_batch()
            for key, full, weights in records:
                record = {
                    "timestamp": None,
                    "key": key,
                    "value": weights,
                    "headers": [("update", full)],
                }
                if batch.append(**record) is None:  # full: send it, start another
                    self._delivered(
                        await self.producer.send_batch(batch, self.topic, partition=partition)
                    )
                    batch = self.producer.create_batch()
                    batch.append(**record)
            self._delivered(await self.producer.send_batch(batch, self.topic, partition=partition))

    def _delivered(self, future: Any) -> None:
        future.add_done_callback(self._failed)

    @staticmethod
    def _failed(future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("learned models not kept: %r", future.exception())

    async def load(self, topics: set[str], timeout: float) -> bool:
        """Read the topic to its end (before the daemon decides anything); False, with one
        warning, when it is not among ``topics`` or cannot be read (the daemon then trains every
        update it needs)."""
        if self.topic not in topics:
            log.warning(
                "learned models not kept: no topic %s (create it, compacted); updates are "
                "trained again after a restart",
                self.topic,
            )
            return False
        try:
            self._reader = self.open_reader()
            await asyncio.wait_for(self._reader.start(), timeout)
            tps = await partitions_of(self._reader, self.topic, timeout)
            self.partitions = [tp.partition for tp in tps]
            self._reader.assign(tps)
            await self._reader.seek_to_beginning(*tps)
            await asyncio.wait_for(self._to_end(tps), timeout)
        except Exception as exc:
            log.warning(
                "learned models not kept: cannot read topic %s (%s); updates are trained again "
                "after a restart",
                self.topic,
                exc,
            )
            await self.close()
            return False
        log.info("learned models: %d kept in %s", len(self.kept), self.topic)
        return True

    async def _to_end(self, tps: list[TopicPartition]) -> None:
        while True:
            await self._read(200)
            highs = [self._reader.highwater(tp) for tp in tps]
            at = [await self._reader.position(tp) for tp in tps]
            if None not in highs and all(p >= h for p, h in zip(at, highs, strict=True)):
                return

    async def follow(self, stopping: asyncio.Event) -> None:
        """Keep reading what other daemons keep, until ``stopping``."""
        while self._reader is not None and not stopping.is_set():
            try:
                await self._read(1000)
            except Exception as exc:  # the store is an optimisation: never stop the daemon
                log.warning("reading %s: %s", self.topic, exc)
                await asyncio.sleep(RETRY_S)

    async def _read(self, timeout_ms: int) -> None:
        for records in (await self._reader.getmany(timeout_ms=timeout_ms)).values():
            for r in records:
                if r.value is None:
                    self.kept.pop(r.key, None)
                    continue
                update = dict(r.headers or ()).get("update")
                if r.key is not None and update is not None:
                    self.kept[r.key] = (update, r.value)

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()
