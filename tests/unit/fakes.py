"""Fake Kafka clients for the daemon's parts (``monitor/kafka.py`` protocols): a log per
partition in memory, acks the test controls, a broker that can be made unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from aemon.daemon.kafka import Clients
from aemon.daemon.scoring import Scorer


@dataclass
class Rec:
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: list = field(default_factory=list)
    timestamp: int = 1_700_000_000_000


class FakeConsumer:
    def __init__(self, topic: str, partitions: int = 1) -> None:
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.logs: dict[TopicPartition, list[Rec]] = {tp: [] for tp in self.tps}
        self.position_of: dict[TopicPartition, int] = {tp: 0 for tp in self.tps}
        self.high: dict[TopicPartition, int] = {}  # overrides the log end the broker reports
        self.commits: list[dict[TopicPartition, int]] = []
        self.commit_error: BaseException | None = None
        self.member = True  # holds its group membership
        self.listener = None
        self.assigned: set[TopicPartition] = set()
        self.arrived = asyncio.Event()
        self.polled: int | None = None
        self.offsets_lost = False
        self.refreshes = 0  # metadata requests the daemon asked for

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def subscribe(self, topics, listener) -> None:
        self.listener = listener
        self.assigned = set(self.tps)
        self.joined = asyncio.ensure_future(listener.on_partitions_assigned(list(self.tps)))

    def produce(self, tp_index: int, values: list[bytes]) -> None:
        tp = self.tps[tp_index]
        for v in values:
            self.logs[tp].append(Rec(len(self.logs[tp]), v, b"k"))
        self.arrived.set()

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict:
        await asyncio.sleep(0)  # as aiokafka's: other tasks run while a fetch is out
        self.polled = int(time.time() * 1000)
        out = {}
        for tp in sorted(self.assigned):
            recs = self.logs[tp][self.position_of[tp] : self.position_of[tp] + max_records]
            if recs:
                out[tp] = recs
                self.position_of[tp] += len(recs)
                max_records -= len(recs)
        if not out:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout_ms / 1000)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append(dict(offsets))

    def in_group(self) -> bool:
        return self.member

    async def refresh(self) -> None:
        self.refreshes += 1

    def last_commit(self, tp: TopicPartition) -> int | None:
        last = [c[tp] for c in self.commits if tp in c]
        return last[-1] if last else None

    async def committed(self, tp: TopicPartition) -> int | None:
        """What the broker holds (``lost``: a broker that came back without it)."""
        return None if self.offsets_lost else self.last_commit(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp, len(self.logs[tp]))

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.polled

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def position(self, tp: TopicPartition) -> int:
        return self.position_of[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position_of[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.position_of[tp] = 0

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.position_of[tp] = len(self.logs[tp])


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def append(self, **record) -> object:
        self.records.append(record)
        return object()


class FakeProducer:
    """Each ``send_batch`` returns a future; ``auto`` acks at once, else the test calls
    :meth:`ack`. ``fail`` (a list of exceptions) fails the next sends, one each."""

    def __init__(self) -> None:
        self.auto = True
        self.fail: list[BaseException] = []
        self.pending: list[tuple[asyncio.Future, str, FakeBatch]] = []
        self.acked: dict[str, list[dict]] = {}
        self.sent_to: list[tuple[str, int]] = []  # each batch's topic and partition

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future:
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self.sent_to.append((topic, partition))
        if self.fail:
            fut.set_exception(self.fail.pop(0))
        else:
            self.pending.append((fut, topic, batch))
            if self.auto:
                self.ack()
        return fut

    def ack(self) -> None:
        for fut, topic, batch in self.pending:
            if not fut.done():
                fut.set_result(None)
                self.acked.setdefault(topic, []).extend(batch.records)
        self.pending.clear()

    def values(self, topic: str) -> list[dict]:
        return [orjson.loads(r["value"]) for r in self.acked.get(topic, [])]


class FakeCluster:
    def __init__(self, topics: set[str]) -> None:
        self.present = set(topics)
        self.reachable = True
        self.settings: dict[str, dict[str, str]] = {}  # topic -> setting -> value

    async def close(self) -> None:
        pass

    async def topics(self) -> set[str]:
        if not self.reachable:
            raise KafkaConnectionError("fake broker down")
        return set(self.present)

    async def configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        return {t: self.settings[t] for t in topics if t in self.settings}


def fake_clients(input_topic: str, outputs: list[str], partitions: int = 1) -> Clients:
    return Clients(
        FakeConsumer(input_topic, partitions),
        FakeProducer(),
        FakeCluster({input_topic, *outputs}),
    )


def failing_scorer(after: int) -> type[Scorer]:
    """A scorer that raises once it has been given more than ``after`` windows (a stage failure
    injected from outside the daemon: ``Service(settings, scorer=failing_scorer(n))``)."""

    class FailingScorer(Scorer):
        given = 0

        def score(self, values, models=None):
            self.given += len(values)
            if self.given > after:
                raise RuntimeError(f"injected scoring fault after {after} windows")
            return super().score(values, models)

    return FailingScorer


class Gate:
    """Holds every batch given to a :func:`gated_scorer` until opened (a busy scorer)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = 0  # windows given to the scorer so far

    def close(self) -> None:
        self.open.clear()


def gated_scorer(gate: Gate) -> type[Scorer]:
    """A scorer that waits for ``gate`` to open before scoring each batch (at most 10 s)."""

    class GatedScorer(Scorer):
        def score(self, values, models=None):
            gate.entered += len(values)
            if not gate.open.wait(10):
                raise RuntimeError("the gated scorer was never opened")
            return super().score(values, models)

    return GatedScorer
