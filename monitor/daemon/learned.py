"""The learned-models topic: streams' updated weights kept in the broker, so that a daemon that
restarts, or takes a partition over, finds them instead of training them again; the anchors
of streams whose samples carry no seq, kept with each commit (:class:`Anchors`), so that it
counts those streams on from where they were; and the swap points of streams whose model was
replaced by one of other weights (:mod:`aemon.daemon.swaps`), so that it resumes them there.

An update's weights are a function of its :attr:`~aemon.core.learner.Update.key` (the trained
model's version, the stream, the update's number, a digest of the windows it trains on), so
weights found under the key are exactly those training would compute: the store changes how
soon a model is ready, never a decision. A record missing, lost or unreadable only means that
update is trained again.

Records are keyed by model version, stream and the update's number modulo the updates a restart
needs (those in effect over the windows it re-reads, and the next), so a compacted topic keeps
that many per stream, each replacing the one that many updates older; the update's full key
travels in the ``update`` header and the value is the weights in safetensors format. The topic
is partitioned alongside the input, as Kafka Streams keeps its changelogs: the updates of a
stream read from input partition ``p`` go to partition ``p`` modulo the topic's partitions. So a
daemon reads only the partitions of the input partitions it owns, each from its beginning when
it is assigned (an update wanted meanwhile waits until that partition is read to its end), then
as they grow, and holds in memory the updates there of the models it serves (with NAB's
defaults ten of 9.6 KB per stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import TopicPartition

from aemon.core.learner import Update
from aemon.daemon.kafka import Producer, partitions_of, send_batches
from aemon.daemon.metrics import Metrics
from aemon.daemon.routing import Models
from aemon.daemon.swaps import SwapPoint

log = logging.getLogger("aemon.serve")
RETRY_S = 1.0  # after the topic could not be read
READ_WAIT_S = 60.0  # the longest an update waits for its partition of the topic to be read


ANCHORS = b"anchors\x1f"  # key prefix of anchors (then whose, the input partition, its part)
# A partition's anchors go in records of at most this much JSON each (Kafka refuses records
# over 1 MB by default; 10,000 streams of 45-character names take 0.5-0.7 MB): each part under
# its own key, ``<anchors_key><partition>`` then ``<anchors_key><partition>\x1f<part>``.
ANCHOR_PART_BYTES = 256 << 10


SWAPS = b"swap\x1f"  # key prefix of swap points (then whose, the input partition, the stream)


def anchors_key(group: str, input_topic: str, prefix: bytes = ANCHORS) -> bytes:
    """The key prefix of the anchors (or, with ``prefix`` :data:`SWAPS`, the swap points) that
    consumer ``group`` keeps for ``input_topic``: a group numbers each stream from where it
    first read it, so another group's anchors (or those of another input, where stream names
    repeat) are no facts about its own count, and daemons of several groups or inputs may
    share one learned-models topic."""
    return prefix + orjson.dumps([group, input_topic]) + b"\x1f"


def version_of(key: bytes) -> bytes:
    """The model version an update's record key (:func:`slot`) begins with."""
    return key.split(b"\x1f", 1)[0]


def slot(update: Update, history: int) -> bytes:
    """The record key under which ``update`` is kept when a restart re-reads ``history``
    windows of its stream."""
    learning = update.det.learning
    assert learning is not None
    slots = -(-history // learning.every) + 2
    return f"{update.det.version}\x1f{update.stream}\x1f{update.number % slots}".encode()


class LearnedStore:
    """The learned-models topic as a daemon holds it: the partitions of the input partitions it
    owns, read from their beginning and followed, and the updates this daemon trains, sent on."""

    def __init__(
        self,
        topic: str,
        producer: Producer,
        open_reader: Callable[[], Any],
        models: Models,
        metrics: Metrics,
        wait_s: float = READ_WAIT_S,
        part_bytes: int = ANCHOR_PART_BYTES,
        *,
        group: str,
        input_topic: str,
    ) -> None:
        """``wait_s``: how long an update waits for its partition to be read before it is
        trained instead; ``part_bytes``: the most JSON in one record of anchors; ``group`` and
        ``input_topic``: whose anchors are this daemon's (:func:`anchors_key`)."""
        self.topic, self.producer, self.open_reader = topic, producer, open_reader
        self.anchors_key = anchors_key(group, input_topic)
        self.swaps_key = anchors_key(group, input_topic, SWAPS)
        self.part_bytes = part_bytes
        self.models = models  # their history: the windows of a stream a restart re-reads
        self.held, self.wait_s = metrics.learned_bytes, wait_s
        self.partitions = 0  # the topic's
        # per partition of the topic this daemon follows: slot -> (update key, weights)
        self.kept: dict[int, dict[bytes, tuple[bytes, bytes]]] = {}
        self.read: dict[int, asyncio.Event] = {}  # the partitions followed: set once read to end
        self.pending: list[tuple[int, dict[str, Any]]] = []  # (partition, record) not yet sent
        self._wake, self._moved = asyncio.Event(), asyncio.Event()
        self._next: dict[int, int] = {}  # the offset to read next, per partition followed
        # per input partition, its counted streams' anchors (Windower.anchors) as read or as
        # this daemon kept them: stream -> (the commit they were kept for, offset, seq)
        self.anchors: dict[int, dict[str, tuple[int, int, int]]] = {}
        # per input partition, the latest swap point read of each stream (aemon.daemon.swaps)
        self.swaps: dict[int, dict[str, SwapPoint]] = {}
        self._reader: Any = None
        self._shared_warned = False
        self._served: set[bytes] = set()  # the versions served when records were last read

    def partition_of(self, partition: int) -> int:
        """The topic's partition that keeps the updates of input partition ``partition``."""
        return partition % self.partitions

    def own(self, partitions: Iterable[int]) -> None:
        """Follow the partitions that keep the updates of input ``partitions`` (all this daemon
        owns, after a rebalance): one newly wanted is read from its beginning, one no longer
        wanted is forgotten."""
        if not self.partitions:
            return
        partitions = list(partitions)
        if not self._shared_warned and any(p >= self.partitions for p in partitions):
            self._shared_warned = True
            log.warning(
                "learned models: %s has %d partition(s), fewer than the input: this daemon also "
                "holds updates of streams it does not own (give it the input's partition count)",
                self.topic,
                self.partitions,
            )
        wanted = {self.partition_of(p) for p in partitions}
        for p in [p for p in self.anchors if self.partition_of(p) not in wanted]:
            del self.anchors[p]
        for p in [p for p in self.swaps if self.partition_of(p) not in wanted]:
            del self.swaps[p]
        for gone in set(self.read) - wanted:
            self.read.pop(gone).set()  # an update waiting for it is trained instead
            self.held.dec(sum(len(weights) for _, weights in self.kept.pop(gone, {}).values()))
            self._next.pop(gone, None)
        for new in wanted - set(self.read):
            self.read[new] = asyncio.Event()
        self._moved.set()

    async def get(self, update: Update, partition: int) -> bytes | None:
        """The weights kept for ``update`` of a stream of input ``partition``, if any (once
        that partition's records are read, or after ``wait_s``)."""
        where = self.partition_of(partition)
        if await self._read_to_end(where) is None:  # not followed: not this daemon's partition
            return None
        found = self.kept.get(where, {}).get(slot(update, self.models.history))
        return found[1] if found is not None and found[0] == update.key.encode() else None

    async def _read_to_end(self, where: int) -> bool | None:
        """Whether the topic's partition ``where`` is read to its end, waiting up to ``wait_s``
        for it (None: not followed)."""
        ready = self.read.get(where)
        if ready is None:
            return None
        if not ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), self.wait_s)
        return ready.is_set()

    async def anchors_of(self, partition: int) -> dict[str, tuple[int, int]]:
        """The anchors kept for input ``partition`` (once its part of the topic is read, or
        after ``wait_s``; none where nothing was kept)."""
        if await self._read_to_end(self.partition_of(partition)) is False:
            log.warning(
                "anchors of partition %d not read from %s in %g s: its streams without seq "
                "are counted again from where the partition is re-read",
                partition,
                self.topic,
                self.wait_s,
            )
        return {s: (o, q) for s, (_, o, q) in self.anchors.get(partition, {}).items()}

    async def keep_anchors(
        self, partition: int, commit: int, anchors: dict[str, tuple[int, int]]
    ) -> bool:
        """Keep input ``partition``'s anchors for its commit at ``commit`` (acknowledged by
        the broker when True: only then may that commit be made)."""
        records = [
            {"timestamp": None, "key": key, "value": value, "headers": []}
            for key, value in self._anchor_records(partition, commit, anchors)
        ]
        try:
            for future in await send_batches(
                self.producer, self.topic, self.partition_of(partition), records
            ):
                await future
        except Exception as exc:
            log.warning(
                "anchors of partition %d not kept (%r): not committing it yet", partition, exc
            )
            return False
        self._anchored(partition, commit, anchors)  # the topic may be read back later
        held = self.anchors.get(partition, {})
        for stream in [s for s, (_, o, _) in held.items() if o < commit and s not in anchors]:
            del held[stream]  # an ended stream's, or one read back from before its end
        return True

    def _anchor_records(
        self, partition: int, commit: int, anchors: dict[str, tuple[int, int]]
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) of the records that keep ``anchors``: as few as hold at most
        ``part_bytes`` of JSON each (``{"commit": c, "anchors": {stream: [offset, seq]}}``),
        each entry encoded once."""
        head = b'{"commit":%d,"anchors":{' % commit
        parts: list[list[bytes]] = [[]]
        size = len(head) + 2  # and the closing braces
        for stream, (offset, seq) in anchors.items():
            entry = orjson.dumps(stream) + b":[%d,%d]" % (offset, seq)
            if size + len(entry) + 1 > self.part_bytes and parts[-1]:
                parts.append([])
                size = len(head) + 2
            parts[-1].append(entry)
            size += len(entry) + 1  # and its comma
        key = self.anchors_key + str(partition).encode()
        return [
            (key + (b"\x1f%d" % i if i else b""), head + b",".join(part) + b"}}")
            for i, part in enumerate(parts)
        ]

    def put(self, update: Update, weights: bytes, partition: int) -> None:
        """Keep ``update``'s weights (of a stream of input ``partition``): here at once, in the
        topic by :meth:`send` (not awaited by anything that decides: a record lost is an update
        trained again)."""
        where, key = self.partition_of(partition), slot(update, self.models.history)
        full = update.key.encode()
        if where in self.read:
            self._keep(where, key, (full, weights))
        record = {"timestamp": None, "key": key, "value": weights, "headers": [("update", full)]}
        self.pending.append((where, record))
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
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for where, record in pending:
            by_partition.setdefault(where, []).append(record)
        for partition, records in by_partition.items():
            for future in await send_batches(self.producer, self.topic, partition, records):
                future.add_done_callback(self._failed)

    @staticmethod
    def _failed(future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("learned models not kept: %r", future.exception())

    async def load(self, topics: set[str], timeout: float) -> bool:
        """Open the topic (before the daemon joins its group); False, with one warning, when it
        is not among ``topics`` or cannot be read (the daemon then trains every update it
        needs)."""
        if self.topic not in topics:
            log.warning(
                "learned models and anchors not kept: no topic %s (create it, compacted: "
                "'aemon serve --check' prints the command); "
                "after a restart updates are trained again, and streams whose samples carry no "
                "seq are counted again from where they are re-read",
                self.topic,
            )
            return False
        try:
            self._reader = self.open_reader()
            await asyncio.wait_for(self._reader.start(), timeout)
            self.partitions = len(await partitions_of(self._reader, self.topic, timeout))
        except Exception as exc:
            log.warning(
                "learned models and anchors not kept: cannot read topic %s (%s); after a "
                "restart updates are trained again, and streams without seq counted again",
                self.topic,
                exc,
            )
            await self.close()
            return False
        return True

    async def follow(self) -> None:
        """Read the partitions :meth:`own` names (until cancelled: a daemon that drains may
        still wait for one)."""
        while self._reader is not None:
            try:
                if self._moved.is_set():
                    await self._reassign()
                if not self.read:
                    await self._moved.wait()
                    continue
                await self._read(200)
            except Exception as exc:  # the store is an optimisation: never stop the daemon
                log.warning("reading %s: %s", self.topic, exc)
                await asyncio.sleep(RETRY_S)

    def _keep(self, partition: int, key: bytes, record: tuple[bytes, bytes] | None) -> None:
        """Hold ``record`` (update key, weights) under ``key`` of ``partition``; None: forget
        it (a tombstone, or a record without its update key)."""
        kept = self.kept.setdefault(partition, {})
        old = kept.pop(key, None)
        if old is not None:
            self.held.dec(len(old[1]))
        if record is not None:
            kept[key] = record
            self.held.inc(len(record[1]))

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    async def _reassign(self) -> None:
        """Read what :meth:`own` says: partitions kept go on where they were, new ones start
        at their beginning."""
        self._moved.clear()
        self._reader.assign([self._tp(p) for p in sorted(self.read)])
        for p, offset in self._next.items():
            self._reader.seek(self._tp(p), offset)
        new = [self._tp(p) for p in self.read if p not in self._next]
        if new:
            await self._reader.seek_to_beginning(*new)

    async def _read(self, timeout_ms: int) -> None:
        fetched = await self._reader.getmany(timeout_ms=timeout_ms)
        if self._moved.is_set():  # fetched for partitions since changed: read again after them
            return
        if any(fetched.values()):  # (the versions served: a pass over the models)
            served = self._serving({v.encode() for v in self.models.versions})
            for tp, records in fetched.items():
                p = tp.partition
                for r in records:
                    self._next[p] = r.offset + 1
                    self._take(p, r.key, r.value, r.headers, served)
        assigned = self._reader.assignment()
        for p, ready in list(self.read.items()):
            tp = self._tp(p)
            if ready.is_set() or tp not in assigned:
                continue
            high = self._reader.highwater(tp)
            if high is not None and await self._reader.position(tp) >= high:
                self._next.setdefault(p, high)
                ready.set()
                kept = len(self.kept.get(p, {}))
                log.info("learned models: %d kept in %s, partition %d", kept, self.topic, p)

    def _serving(self, served: set[bytes]) -> set[bytes]:
        """``served``, the versions of the models served now; where a model was replaced since
        the last records read (this daemon's next update is one), its updates held are let go
        (never looked up again)."""
        if served != self._served:
            self._served = served
            for partition, kept in self.kept.items():
                for key in [k for k in kept if version_of(k) not in served]:
                    self._keep(partition, key, None)
        return served

    def _take(
        self,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] | None,
        served: set[bytes],
    ) -> None:
        """A record read from the topic's ``partition``: anchors, or an update's weights, held
        where its model's version is among those ``served`` (others are a replaced model's, or
        another deployment's that shares the topic: never looked up here, so not held)."""
        if key is None:
            return
        if key.startswith(ANCHORS):
            self._read_anchors(key, value)
        elif key.startswith(SWAPS):
            self._read_swap(key, value)
        elif version_of(key) in served:
            update = dict(headers or ()).get("update")
            usable = value is not None and update is not None
            self._keep(partition, key, (update, value) if usable else None)
        elif key in self.kept.get(partition, ()):  # kept by :meth:`put` after a swap replaced it
            self._keep(partition, key, None)

    def _read_anchors(self, key: bytes, value: bytes | None) -> None:
        if not key.startswith(self.anchors_key):
            return  # another group's, or kept for another input
        try:
            partition = int(key[len(self.anchors_key) :].split(b"\x1f")[0])  # then its part
            doc = orjson.loads(value or b"null")
            kept = {str(s): (int(o), int(q)) for s, (o, q) in doc["anchors"].items()}
            commit = int(doc["commit"])
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("unreadable anchors in %s (%r): left out", self.topic, exc)
            return
        self._anchored(partition, commit, kept)

    def swap_record(
        self, partition: int, stream: str, point: SwapPoint
    ) -> tuple[str, int, bytes, bytes]:
        """(topic, partition, key, value) of the record that keeps ``point``, the swap point
        of ``stream`` of input ``partition`` (published with the batch it was met in)."""
        key = self.swaps_key + b"%d\x1f" % partition + stream.encode()
        return self.topic, self.partition_of(partition), key, point.to_json()

    def _read_swap(self, key: bytes, value: bytes | None) -> None:
        if not key.startswith(self.swaps_key) or value is None:
            return  # another group's, or kept for another input
        try:
            partition, stream = key[len(self.swaps_key) :].split(b"\x1f", 1)
            point = SwapPoint.from_json(value)
            self.swaps.setdefault(int(partition), {})[stream.decode()] = point
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("unreadable swap point in %s (%r): left out", self.topic, exc)

    def _anchored(self, partition: int, commit: int, anchors: dict[str, tuple[int, int]]) -> None:
        """Hold each stream's anchor kept for ``commit`` of input ``partition`` unless a newer
        one is held (this daemon's own, read back from the topic after it kept later ones).
        Any anchor is a fact about its stream (the sample at that offset is its seq-th), so
        parts of different commits may be held together."""
        held = self.anchors.setdefault(partition, {})
        for stream, (offset, seq) in anchors.items():
            old = held.get(stream)
            if old is None or commit >= old[0]:
                held[stream] = (commit, offset, seq)

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()


class Anchors:
    """Where the anchors of streams whose samples carry no seq are kept
    (:meth:`~aemon.core.windowing.Windower.anchors`): the learned-models topic once it is open
    (``store``), else nowhere, and a restart then counts such streams again from where it
    re-reads (decided again under other seqs)."""

    def __init__(self) -> None:
        self.store: LearnedStore | None = None
