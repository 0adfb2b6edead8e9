"""Micro-batches: preallocated float32 rows plus what is needed to decide, publish and commit.

Batches come from a fixed pool; the consumer waits for a free one when scoring falls behind, so
the backlog stays in Kafka (as lag) instead of in memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from aiokafka import TopicPartition


def as_windows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Batch rows ``[n, *row shape]`` as windows of a model's input ``shape``: the rows
    themselves, or, where streams of several widths share the batch (flat rows as long as the
    widest window), the start of each row."""
    if rows.shape[1:] == shape:
        return rows
    return rows.reshape(len(rows), -1)[:, : int(np.prod(shape))].reshape(-1, *shape)


@dataclass
class Batch:
    values: np.ndarray  # [capacity, *row shape] float32, reused (Models.row_shape)
    n: int = 0
    streams: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    kafka_ts: list[float] = field(default_factory=list)
    models: list[int] = field(default_factory=list)  # each row's model (models directories)
    parts: list[int] = field(default_factory=list)  # each row's partition (sample streams)
    holds: list[int] = field(default_factory=list)  # offset its stream's history starts at
    hold_seqs: list[int | None] = field(default_factory=list)  # its seq (counted streams)
    learned: list = field(default_factory=list)  # the update scoring each row (None: trained)
    dets: list = field(default_factory=list)  # the model each row was read under (series)
    offsets: list[int] = field(default_factory=list)  # its last sample's offset (series)
    # per row (series): None, or where a restart resumes a swapped-in model's stream
    # (:class:`~aemon.daemon.swaps.Resume`, or SKIP for the windows before it)
    resumes: list = field(default_factory=list)
    # Streams whose end marker came, as (the row it comes before, partition, stream, model)
    finished: list[tuple[int, int, str, int]] = field(default_factory=list)
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # next offset per partition
    # What may be committed per partition: ``ends``, or earlier where a stream's windows, score
    # history or open event need records a restart must read again.
    commit: dict[TopicPartition, int] = field(default_factory=dict)
    epochs: dict[TopicPartition, int] = field(default_factory=dict)  # each partition's, at fetch
    # Per partition with streams whose samples carry no seq: each such stream's earliest
    # needed sample, (offset, seq), at ``commit`` (Windower.anchors), kept before it is committed
    anchors: dict[TopicPartition, dict[str, tuple[int, int]]] = field(default_factory=dict)
    pending: list[tuple] = field(default_factory=list)  # dead letters to publish with the batch
    opened: float = field(default_factory=time.monotonic)

    @property
    def capacity(self) -> int:
        return len(self.values)

    @property
    def room(self) -> int:
        """Records the batch can still take (dead letters count: they are held until sent)."""
        return self.capacity - self.n - len(self.pending)

    @property
    def full(self) -> bool:
        return self.room <= 0

    @property
    def empty(self) -> bool:
        return self.n == 0 and not self.commit and not self.pending and not self.finished

    def keep(
        self, streams: list[str], seqs: list[int], ts: list[float], kafka_ts: list[float]
    ) -> None:
        """Accept the rows just decoded after the last kept one (one entry each); the caller
        fills ``models``, ``parts`` and ``holds`` where it uses them."""
        self.streams += streams
        self.seqs += seqs
        self.ts += ts
        self.kafka_ts += kafka_ts
        self.n += len(streams)

    def _lists(self) -> tuple[list, ...]:
        return (
            self.streams,
            self.seqs,
            self.ts,
            self.kafka_ts,
            self.models,
            self.parts,
            self.holds,
            self.hold_seqs,
            self.learned,
            self.dets,
            self.offsets,
            self.resumes,
        )

    def drop(self, i: int) -> None:
        """Remove row ``i``, moving later rows up."""
        self.values[i : self.n - 1] = self.values[i + 1 : self.n]
        for lst in self._lists():
            if len(lst) > i:
                del lst[i]
        self.finished = [(r - (r > i), p, st, m) for r, p, st, m in self.finished]
        self.n -= 1

    def reset(self) -> Batch:
        self.n = 0
        for lst in (*self._lists(), self.pending, self.finished):
            lst.clear()
        self.ends.clear()
        self.commit.clear()
        self.epochs.clear()
        self.anchors.clear()
        self.opened = time.monotonic()
        return self


class Pool:
    """A fixed number of batches; :meth:`take` waits while all are in flight."""

    def __init__(self, count: int, capacity: int, shape: tuple[int, ...]) -> None:
        self._free: asyncio.Queue[Batch] = asyncio.Queue()
        self._shape = shape
        for _ in range(count):
            self._free.put_nowait(Batch(np.zeros((capacity, *shape), dtype=np.float32)))

    async def take(self) -> Batch:
        return (await self._free.get()).reset()

    def rowless(self) -> Batch:
        """A batch of no rows from outside the pool, never taken back: what the drain commits
        when it stopped waiting for a free batch (every one in flight)."""
        return Batch(np.zeros((0, *self._shape), dtype=np.float32))

    def give(self, batch: Batch) -> None:
        if batch.capacity:
            self._free.put_nowait(batch)
