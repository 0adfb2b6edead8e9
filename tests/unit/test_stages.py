"""Each stage of the daemon built alone, by keyword, with the fake Kafka clients and the ledger:
none starts a Service, loads a model or opens a port."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from aemon.core.windowing import Windower
from aemon.daemon.batching import Batch, Pool
from aemon.daemon.codec import Limits
from aemon.daemon.committer import Committer
from aemon.daemon.decisions import Decided
from aemon.daemon.health import Health
from aemon.daemon.intake import Intake
from aemon.daemon.learned import Anchors
from aemon.daemon.ledger import Ledger
from aemon.daemon.metrics import Metrics
from aemon.daemon.publisher import Publisher
from aemon.daemon.rebalance import Rebalance
from aemon.daemon.routing import Takes
from aemon.daemon.score_stage import ScoreStage
from aemon.daemon.scoring import Scored
from aemon.daemon.supervisor import Fatal
from aemon.daemon.watch import BrokerWatch
from tests.unit.fakes import FakeCluster, FakeConsumer, FakeProducer, Rec

TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)


class OneModel:
    """What the intake asks of the models: one model serves every stream."""

    single = True

    def index(self, stream: str) -> int:
        return 0


class NoDecisions:
    windower = None

    def drop(self, partitions: list[int]) -> tuple[int, int]:
        return 0, 0


def window(seq: int) -> bytes:
    return orjson.dumps({"stream": "s", "seq": seq, "values": [0.5] * 4})


def acknowledged(ledger: Ledger, tp: TopicPartition, offset: int, end: int | None = None) -> Batch:
    """A batch of messages up to ``end`` (default ``offset``), fetched in ``tp``'s epoch now,
    whose offsets may be committed up to ``offset``."""
    batch = Batch(np.zeros((1, 4), dtype=np.float32))
    batch.commit[tp] = offset
    batch.ends[tp] = offset if end is None else end
    batch.epochs[tp] = ledger.fetched(tp, 0, batch.ends[tp])
    return batch


# ----- the ledger: the commit rule ------------------------------------------------------------
def test_the_ledger_commits_only_owned_current_acknowledged_offsets_within_the_log():
    ledger = Ledger()
    ledger.assign([TP0, TP1])
    old = acknowledged(ledger, TP0, 5)
    ledger.revoke([TP0])  # a new epoch, not owned: nothing of it is committed
    ledger.acknowledged(old.commit, old.ends, old.epochs, old.anchors)
    b1 = acknowledged(ledger, TP1, 9)
    ledger.acknowledged(b1.commit, b1.ends, b1.epochs, b1.anchors)
    answer = ledger.committable(lambda tp: 7, lambda tp: 0)
    assert answer.offsets == {} and answer.past_end == [(TP1, "offset 9 is past the log end 7")]
    b2 = acknowledged(ledger, TP1, 6)
    ledger.acknowledged(b2.commit, b2.ends, b2.epochs, b2.anchors)
    assert ledger.committable(lambda tp: 7, lambda tp: 0).offsets == {TP1: 6}
    ledger.committed({TP1: 6})
    assert ledger.committable(lambda tp: 7, lambda tp: 0).offsets == {}  # nothing new
    ledger.assign([TP0, TP1])  # back, in a later epoch: the old batch still does not count
    ledger.acknowledged(old.commit, old.ends, old.epochs, old.anchors)
    assert ledger.committable(lambda tp: 7, lambda tp: 0).offsets == {}


def test_after_an_outage_offsets_wait_for_a_fetch_answered_since():
    ledger = Ledger()
    ledger.assign([TP0])
    b = acknowledged(ledger, TP0, 3)
    ledger.acknowledged(b.commit, b.ends, b.epochs, b.anchors)
    ledger.outage_ended()
    since = ledger.fresh_after_ms or 0
    assert ledger.committable(lambda tp: 10, lambda tp: since - 1).offsets == {}
    assert ledger.committable(lambda tp: 10, lambda tp: since).offsets == {TP0: 3}


async def test_a_rebalances_flush_waits_until_every_queued_batch_settles():
    ledger = Ledger()
    ledger.handed()
    ledger.handed()
    waiting = asyncio.create_task(ledger.all_settled())
    await asyncio.sleep(0)
    ledger.settled(1)
    await asyncio.sleep(0)
    assert not waiting.done()
    ledger.settled(1)
    await asyncio.wait_for(waiting, 1)


# ----- the committer --------------------------------------------------------------------------
def committer(consumer: FakeConsumer, ledger: Ledger, lost: list) -> Committer:
    return Committer(
        consumer=consumer,
        ledger=ledger,
        metrics=Metrics(),
        timeout_s=1.0,
        lost=lambda reason, detail: lost.append((reason, detail)),
        anchors=Anchors(),
    )


async def test_the_committer_commits_acknowledged_batches_and_only_as_a_member():
    consumer, ledger, lost = FakeConsumer("in"), Ledger(), []
    consumer.produce(0, [window(i) for i in range(10)])
    ledger.assign([TP0])
    c = committer(consumer, ledger, lost)
    running = asyncio.create_task(c.run())
    c.acknowledged(acknowledged(ledger, TP0, 4))
    c.close()
    await asyncio.wait_for(running, 1)
    assert consumer.commits == [{TP0: 4}] and ledger.committed_offsets() == {TP0: 4}
    consumer.member = False
    b = acknowledged(ledger, TP0, 8)
    ledger.acknowledged(b.commit, b.ends, b.epochs, b.anchors)
    await c.commit()
    assert consumer.commits == [{TP0: 4}]  # membership lost: nothing committed
    assert lost == []


async def test_lag_counts_what_is_not_decided_and_the_kept_re_read_apart():
    """A series' windows keep its commit behind what was decided (a restart reads them again):
    that is no backlog, so it is not lag, but the re-read gauge; lag is what waits."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    consumer.produce(0, [window(i) for i in range(10)])
    ledger.assign([TP0])
    c = committer(consumer, ledger, [])
    get = c.metrics.registry.get_sample_value
    labels = {"topic": "in", "partition": "0"}
    c.acknowledged(acknowledged(ledger, TP0, 3, end=8))
    await c.commit()
    assert consumer.commits == [{TP0: 3}]
    assert get("aemon_consumer_lag_messages", labels) == 2  # offsets 8 and 9 wait
    assert get("aemon_reread_messages", labels) == 5  # 3..7: decided, read again on a restart
    c.acknowledged(acknowledged(ledger, TP0, 10))
    await c.commit()
    assert get("aemon_consumer_lag_messages", labels) == 0
    assert get("aemon_reread_messages", labels) == 0


async def test_commit_errors_a_lost_partition_reported_a_missing_permission_fatal():
    consumer, ledger, lost = FakeConsumer("in"), Ledger(), []
    consumer.produce(0, [window(i) for i in range(10)])
    ledger.assign([TP0])
    c = committer(consumer, ledger, lost)
    b = acknowledged(ledger, TP0, 4)
    ledger.acknowledged(b.commit, b.ends, b.epochs, b.anchors)
    consumer.commit_error = UnknownTopicOrPartitionError()
    await c.commit()
    assert lost == [("past_end", "in/0: the broker does not know the partition")]
    consumer.commit_error = TopicAuthorizationFailedError()
    with pytest.raises(Fatal, match="may not commit"):
        await c.commit()
    consumer.commit_error = None
    await c.commit()  # what was acknowledged is committed once the broker takes it
    assert consumer.commits == [{TP0: 4}]


class SlowAnchors:
    """A store whose ``keep_anchors`` answers only once every partition of ``want`` has asked
    (kept one at a time, none would be), and refuses the partitions in ``refuse``."""

    def __init__(self, want: int, refuse: set[int]) -> None:
        self.asked: list[tuple[int, int, dict]] = []
        self.want, self.refuse, self.all_asked = want, refuse, asyncio.Event()

    async def keep_anchors(self, partition: int, commit: int, anchors: dict) -> bool:
        self.asked.append((partition, commit, anchors))
        if len(self.asked) == self.want:
            self.all_asked.set()
        await self.all_asked.wait()
        return partition not in self.refuse


async def test_the_committer_keeps_every_partitions_anchors_at_once_and_commits_those_kept():
    tps = [TopicPartition("in", p) for p in range(3)]
    consumer, ledger = FakeConsumer("in", partitions=3), Ledger()
    for tp in tps:
        consumer.produce(tp.partition, [window(i) for i in range(10)])
    ledger.assign(tps)
    c = committer(consumer, ledger, [])
    c.timeout_s = 5.0
    c.anchors.store = store = SlowAnchors(3, refuse={1})  # type: ignore[assignment]
    for tp in tps:
        b = acknowledged(ledger, tp, 4 + tp.partition)
        b.anchors[tp] = {f"s{tp.partition}": (2, 7)}
        ledger.acknowledged(b.commit, b.ends, b.epochs, b.anchors)
    await asyncio.wait_for(c.commit(), 2)  # kept one at a time, the first would wait 5 s
    assert sorted(store.asked) == [
        (0, 4, {"s0": (2, 7)}),
        (1, 5, {"s1": (2, 7)}),
        (2, 6, {"s2": (2, 7)}),
    ]
    assert consumer.commits == [{tps[0]: 4, tps[2]: 6}]  # partition 1's anchors were not kept


# ----- the intake -----------------------------------------------------------------------------
def intake(consumer: FakeConsumer, ledger: Ledger, pool: Pool, queue: asyncio.Queue) -> Intake:
    return Intake(
        consumer=consumer,
        models=OneModel(),  # type: ignore[arg-type]
        windower=None,
        pool=pool,
        queue=queue,
        ledger=ledger,
        metrics=Metrics(),
        limits=Limits(),
        dlq_topic="dlq",
        dlq_max_bytes=1 << 16,
        max_wait_s=60.0,
        scorer_idle=asyncio.Event(),
        stopping=asyncio.Event(),
        anchors=Anchors(),
    )


async def test_two_hand_offs_at_once_queue_the_batch_once():
    """The loss three replicas showed: the intake waits for a free batch after queueing its
    batch while a rebalance's flush hands off too. The batch must be queued once only."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    pool, queue = Pool(1, 4, (4,)), asyncio.Queue(4)
    stage = intake(consumer, ledger, pool, queue)
    stage.batch = await pool.take()
    stage.take(TP0, [Rec(0, window(0))])
    first = asyncio.create_task(stage.hand_off())  # queues it, then waits: the pool is empty
    second = asyncio.create_task(stage.hand_off())  # the flush's
    await asyncio.sleep(0.01)
    assert queue.qsize() == 1 and ledger.in_flight == 1
    pool.give(queue.get_nowait())
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    assert queue.qsize() == 0 and stage.batch is not None and stage.batch.empty


async def test_a_partial_batch_waits_while_the_scorer_is_busy_and_goes_at_once_when_idle():
    """Latency: with ``max_wait`` 60 s, two windows are scored as soon as the scorer waits for
    work, not after the wait; while it is busy they stay in the batch, which may fill."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    consumer.assigned = {TP0}
    consumer.produce(0, [window(0), window(1)])
    pool, queue = Pool(2, 8, (4,)), asyncio.Queue(2)
    stage = intake(consumer, ledger, pool, queue)
    running = asyncio.create_task(stage.run())
    while stage.batch is None or stage.batch.n < 2:
        await asyncio.sleep(0.01)
    assert queue.empty()  # the scorer is busy (its idle flag is clear)
    stage.scorer_idle.set()
    consumer.produce(0, [window(2)])  # wakes the fetch that waits: the batch in hand goes
    assert (await asyncio.wait_for(queue.get(), 2)).seqs == [0, 1]
    assert (await asyncio.wait_for(queue.get(), 2)).seqs == [2]  # and the next one at once
    stage.stopping.set()
    await asyncio.wait_for(running, 2)


async def test_records_of_a_partition_revoked_during_the_fetch_are_not_taken():
    consumer, ledger = FakeConsumer("in", partitions=2), Ledger()
    ledger.assign([TP0, TP1])
    consumer.assigned = {TP0, TP1}
    consumer.produce(0, [window(i) for i in range(3)])
    consumer.produce(1, [window(100 + i) for i in range(3)])
    pool, queue = Pool(2, 8, (4,)), asyncio.Queue(2)
    stage = intake(consumer, ledger, pool, queue)
    fetch = consumer.getmany

    async def revoked_meanwhile(**kw):
        ledger.revoke([TP0])  # the rebalance listener runs while the fetch is out
        return await fetch(**kw)

    consumer.getmany = revoked_meanwhile  # type: ignore[method-assign]
    running = asyncio.create_task(stage.run())
    while stage.batch is None or stage.batch.n == 0:
        await asyncio.sleep(0.01)
    stage.stopping.set()
    await asyncio.wait_for(running, 2)
    batch = queue.get_nowait()
    assert batch.seqs == [100, 101, 102] and set(batch.commit) == {TP1}


class OneSampleModel(OneModel):
    """One model of one metric without a clock, windows of two samples."""

    takes = (Takes(values=1, clock=None, shape=(2,)),)
    detectors = (SimpleNamespace(version="v1"),)


def sample(stream: str, seq: int) -> bytes:
    return orjson.dumps({"stream": stream, "seq": seq, "value": 0.5})


def test_gaps_and_a_stream_on_two_partitions_are_counted_and_the_second_is_named(caplog):
    consumer, ledger = FakeConsumer("in", partitions=2), Ledger()
    ledger.assign([TP0, TP1])
    stage = intake(consumer, ledger, Pool(1, 8, (2,)), asyncio.Queue(1))
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.batch = Batch(np.zeros((8, 2), dtype=np.float32))
    stage.take(TP0, [Rec(0, sample("a", 0)), Rec(1, sample("a", 1)), Rec(2, sample("a", 5))])
    stage.take(TP1, [Rec(0, sample("a", 6))])  # an unkeyed producer: "a" on partition 1 too
    metric = stage.metrics.registry.get_sample_value
    assert metric("aemon_sample_gaps_total") == 1
    assert metric("aemon_split_streams_total") == 1
    assert "stream 'a' has samples on partitions 0 and 1" in caplog.text
    assert "stream 'a': seq 5 came where 2 was next, so its window starts again" in caplog.text
    assert stage.batch.seqs == [1]  # the window of seq 0-1; 5 restarted it, 6 went to another


async def test_a_partition_with_streams_without_seq_commits_only_with_their_anchors():
    """Their anchors cost a pass over the partition's streams and a record kept before the
    commit: a partition takes them at most once a second, and a flush's batch always (one
    that holds nothing of it commits it where it was taken to). A batch without them leaves
    that partition's commit where it was and still counts as decided."""
    consumer, ledger = FakeConsumer("in", partitions=2), Ledger()
    ledger.assign([TP0, TP1])
    pool, queue = Pool(6, 8, (2,)), asyncio.Queue(6)
    stage = intake(consumer, ledger, pool, queue)
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.anchors.store = object()  # type: ignore[assignment]  # (kept by the committer)
    stage.anchor_every_s = 3600.0  # the hand-offs below come within it
    counted = lambda o: Rec(o, orjson.dumps({"stream": "a", "value": 0.5}))  # noqa: E731
    stage.batch = await pool.take()
    batches = []
    for first, every in ((0, False), (3, False), (6, True), (9, False)):
        stage.take(TP0, [counted(o) for o in range(first, first + 3)])
        stage.take(TP1, [Rec(o, sample("b", o)) for o in range(first, first + 3)])
        await stage.hand_off(every=every)
        batches.append(queue.get_nowait())
    await stage.hand_off(every=True)  # a flush with nothing in hand
    batches.append(queue.get_nowait())
    first, within, flushed, later, commit_only = batches
    # windows of two samples: each stream's last sample is still needed
    assert first.commit == {TP0: 1, TP1: 1} and first.anchors == {TP0: {"a": (1, 1)}}
    assert within.commit == {TP1: 4} and within.anchors == {}  # not due yet
    assert within.ends == {TP0: 6, TP1: 6}
    assert flushed.commit == {TP0: 7, TP1: 7} and flushed.anchors == {TP0: {"a": (7, 7)}}
    assert later.commit == {TP1: 10} and later.anchors == {}
    assert commit_only.n == 0 and commit_only.commit == {TP0: 10}  # what was taken of it
    assert commit_only.anchors == {TP0: {"a": (10, 10)}}
    for b in (first, within):
        ledger.acknowledged(b.commit, b.ends, b.epochs, b.anchors)
    answer = ledger.committable(lambda tp: 9, lambda tp: 0)
    assert answer.offsets == {TP0: 1, TP1: 4} and answer.anchors == {TP0: {"a": (1, 1)}}
    assert ledger.done(TP0) == 6  # decided: no lag


async def test_an_ended_streams_anchor_is_kept_with_commits_until_one_passes_its_end():
    """A stream without seq that ended has its anchor ``(marker + 1, 0)`` in the anchors taken
    with each commit until the broker has taken one past it; then the partition's anchors no
    longer name it (else they grow with every stream that ever ended there)."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    pool, queue = Pool(4, 16, (2,)), asyncio.Queue(4)
    stage = intake(consumer, ledger, pool, queue)
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.anchors.store = object()  # type: ignore[assignment]  # (kept by the committer)
    stage.anchor_every_s = 0.0  # anchors at every hand-off
    stage.batch = await pool.take()
    counted = lambda o, s: Rec(o, orjson.dumps({"stream": s, "value": 0.5}))  # noqa: E731
    end = Rec(4, orjson.dumps({"stream": "a", "end": True}))
    stage.take(TP0, [counted(o, "ab"[o % 2]) for o in range(4)] + [end, counted(5, "b")])
    taken = []
    for commit in (None, 3, 6):
        if commit is not None:
            ledger.committed({TP0: commit})
        await stage.hand_off(every=True)
        taken.append(queue.get_nowait().anchors[TP0])
        stage.take(TP0, [counted(o, "b") for o in range(6 + len(taken), 7 + len(taken))])
    assert [t.get("a") for t in taken] == [(5, 0), (5, 0), None]  # gone once 6 is committed
    assert all("b" in t for t in taken)


async def test_a_stream_that_went_silent_and_holds_its_partitions_commit_is_named(caplog):
    """A stream that stops sending keeps its last windows, and so its partition's commit, where
    it stopped: once it has sent nothing for longer than all the partition's streams' re-read
    span, the intake names it (at most once an hour); streams that keep sending are never
    named."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    pool, queue = Pool(3, 16, (2,)), asyncio.Queue(3)
    stage = intake(consumer, ledger, pool, queue)
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.holder_every_s = 0.0  # a look at every hand-off (in the daemon: once a minute)
    stage.batch = await pool.take()
    both = [Rec(o, sample("ab"[o % 2], o // 2)) for o in range(6)]  # a and b, in turn
    stage.take(TP0, both)
    stopped = lambda: stage.metrics.registry.get_sample_value(  # noqa: E731
        "aemon_stopped_streams", {"topic": "in", "partition": "0"}
    )
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        await stage.hand_off()
        assert "sent nothing" not in caplog.text and stopped() == 0
        stage.take(TP0, [Rec(o, sample("b", o - 3)) for o in range(6, 11)])  # a stops
        await stage.hand_off()
    assert stopped() == 1
    assert queue.get_nowait().commit == {TP0: 2} and queue.get_nowait().commit == {TP0: 2}
    assert (
        "stream 'a' sent nothing in the last 6 messages of in/0 and holds its commit at "
        "offset 2 or before" in caplog.text
    )
    assert "if it has stopped for good, end it: aemon end --topic in --partition 0 a" in caplog.text


async def test_an_end_marker_forgets_its_stream_and_releases_the_commit_it_held(caplog):
    """A stream's end marker, in its place among the samples: the stream no longer holds the
    commit back, the decisions learn of it before the rows after it, and its next sample starts
    it afresh (a seq from 0 again is no repeat); a marker for a stream not held is named."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    pool, queue = Pool(3, 16, (2,)), asyncio.Queue(3)
    stage = intake(consumer, ledger, pool, queue)
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.batch = await pool.take()
    end = lambda o, s: Rec(o, orjson.dumps({"stream": s, "end": True}))  # noqa: E731
    stage.take(TP0, [Rec(o, sample("ab"[o % 2], o // 2)) for o in range(6)])  # a and b in turn
    stage.take(TP0, [Rec(6, sample("b", 3)), end(7, "a"), Rec(8, sample("b", 4))])
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        stage.take(TP0, [Rec(9, sample("a", 0)), end(10, "c")])
    await stage.hand_off()
    batch = queue.get_nowait()
    assert batch.commit == {TP0: 6}  # b's last two samples; a held it at 4 before its end
    # b's windows end at offsets 3, 5, 6 and 8 (rows 1, 3, 4, 5): a's end comes before row 5
    assert batch.streams == ["a", "b", "a", "b", "b", "b"] and batch.finished == [(5, 0, "a", 0)]
    assert stage.metrics.registry.get_sample_value("aemon_streams_ended_total") == 1
    assert stage.windower.holder(0) == ("b", 6, 8, 2)  # and a again, from seq 0: one sample
    assert "end marker of stream 'c' at 0@10: no such stream held" in caplog.text


def at(offset: int, stream: str, seq: int, t: float) -> Rec:
    """A sample whose record time is ``t`` seconds into the test."""
    return Rec(offset, sample(stream, seq), timestamp=1_700_000_000_000 + int(t * 1000))


async def ending_intake(tp: TopicPartition, producer: FakeProducer) -> Intake:
    """An intake owning ``tp`` that ends a stream silent for 60 s of record time (looking at
    every hand-off), sending its markers with ``producer``."""
    ledger = Ledger()
    ledger.assign([tp])
    pool = Pool(4, 32, (2,))
    stage = intake(FakeConsumer("in", partitions=2), ledger, pool, asyncio.Queue(4))
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.producer, stage.end_after_s, stage.holder_every_s = producer, 60.0, 0.0
    stage.batch = await pool.take()
    return stage


async def markers_sent() -> None:
    """Let the intake's marker sends run (the fake producer acknowledges at once)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_stream_silent_for_end_silent_after_s_is_sent_its_end_marker(caplog):
    """With ``end_silent_after_s``, the intake sends the end marker of a stream whose last
    sample is that much of its partition's record time old, to its partition, once, naming that
    sample's offset; read back, it ends the stream, unless the stream sent again since."""
    producer = FakeProducer()
    stage = await ending_intake(TP1, producer)
    stage.take(TP1, [at(o, "ab"[o % 2], o // 2, o) for o in range(6)])  # a's last at offset 4
    # b alone: to 59 s after a's last sample (t 4 s), then to 66 s
    for times in ({6: 20, 7: 40, 8: 55, 9: 63}, {10: 64, 11: 66, 12: 70}):
        stage.take(TP1, [at(o, "b", o - 3, t) for o, t in times.items()])
        await stage.hand_off()
        await markers_sent()
        if 9 in times:
            assert producer.values("in") == []  # not yet
    assert producer.values("in") == [{"stream": "a", "end": True, "after": 4}]
    assert producer.sent_to == [("in", 1)]
    stage.take(TP1, [at(13, "b", 10, 71)])
    await stage.hand_off()
    await markers_sent()
    assert len(producer.values("in")) == 1  # once, until it is read back
    end = Rec(14, orjson.dumps({"stream": "a", "end": True, "after": 4}))
    again = Rec(15, orjson.dumps({"stream": "b", "end": True, "after": 12}))  # b sent since
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        stage.take(TP1, [end, again])
    assert stage.metrics.registry.get_sample_value("aemon_streams_ended_total") == 1
    assert stage.windower.holder(1) == ("b", 12, 13, 1) and "no such stream" not in caplog.text


async def test_a_stream_silent_past_end_silent_after_s_within_one_fetch_is_ended():
    """The partition's record times are noted record by record, not fetch by fetch: a stream
    silent for the setting's time within one large fetch (a backlog) is found at once."""
    producer = FakeProducer()
    stage = await ending_intake(TP0, producer)
    both = [at(o, "ab"[o % 2], o // 2, o) for o in range(4)]  # a's last at offset 2, 2 s
    alone = [at(o, "b", o - 2, 10 * o) for o in range(4, 12)]  # b alone, to 110 s
    stage.take(TP0, both + alone)
    await stage.hand_off()
    await markers_sent()
    assert producer.values("in") == [{"stream": "a", "end": True, "after": 2}]


# ----- the publisher --------------------------------------------------------------------------
def publisher(producer: FakeProducer, confirming: asyncio.Queue, health: Health) -> Publisher:
    ledger = Ledger()
    return Publisher(
        producer=producer,
        cluster=FakeCluster({"al"}),
        topics=["al"],
        confirming=confirming,
        pool=Pool(0, 1, (4,)),
        committer=committer(FakeConsumer("in"), ledger, []),
        health=health,
        metrics=Metrics(),
        stopping=asyncio.Event(),
        backoff=(0.01, 0.02),
    )


def decided_batch() -> Decided:
    return Decided(Batch(np.zeros((1, 4), dtype=np.float32)), None, [("al", b"{}", b"k", None)])


async def test_the_publisher_sends_again_after_a_retriable_error_and_counts_it():
    producer, health = FakeProducer(), Health()
    producer.fail = [KafkaConnectionError("down")]
    pub = publisher(producer, asyncio.Queue(), health)
    d = decided_batch()
    await pub.send(d)
    assert await asyncio.wait_for(pub.confirm(d), 2)
    assert len(producer.acked["al"]) == 1 and health.publish_failing is None
    errors = pub.metrics.registry.get_sample_value(
        "aemon_errors_total", {"stage": "publish", "kind": "KafkaConnectionError"}
    )
    assert errors == 1


async def test_a_non_retriable_publish_error_is_fatal():
    producer = FakeProducer()
    producer.fail = [TopicAuthorizationFailedError()]
    pub = publisher(producer, asyncio.Queue(), Health())
    d = decided_batch()
    await pub.send(d)
    with pytest.raises(Fatal, match="retrying cannot help") as refused:
        await pub.confirm(d)
    assert "max.message.bytes" not in str(refused.value)


async def test_a_batch_too_large_for_its_topic_is_fatal_and_says_what_mends_it():
    producer = FakeProducer()
    producer.fail = [MessageSizeTooLargeError()]
    pub = publisher(producer, asyncio.Queue(), Health())
    d = decided_batch()
    await pub.send(d)
    with pytest.raises(Fatal, match=r"MessageSizeTooLargeError.*'aemon serve --check' names it"):
        await pub.confirm(d)


# ----- the watch and the rebalance listener ---------------------------------------------------
async def test_the_watch_reports_a_log_that_ends_before_what_was_read_and_resets_it():
    consumer, ledger, health = FakeConsumer("in"), Ledger(), Health(grace_s=5)
    consumer.assigned = {TP0}
    ledger.assign([TP0])
    ledger.fetched(TP0, 0, 8)
    consumer.produce(0, [window(i) for i in range(3)])  # the log ends at 3: it was re-created
    resets: list[list[TopicPartition]] = []

    async def reset(tps: list[TopicPartition]) -> None:
        resets.append(tps)

    clients = type("C", (), {"consumer": consumer, "cluster": FakeCluster({"in"})})()
    watch = BrokerWatch(
        clients=clients,  # type: ignore[arg-type]
        input_topic="in",
        ledger=ledger,
        health=health,
        metrics=Metrics(),
        on_reset=reset,
        stopping=asyncio.Event(),
    )
    await watch.check()
    assert resets == [[TP0]] and health.log_lost and not health.ready()


async def test_the_watch_refreshes_the_metadata_once_the_input_topic_is_back():
    """After an outage, or once a missing input topic exists again (perhaps re-created with
    other partitions), the consumer's metadata is asked for at once: the group rebalances over
    the partitions there are now. Never while the topic is missing (the request may create it)."""
    consumer, cluster = FakeConsumer("in"), FakeCluster({"in"})

    async def reset(tps: list[TopicPartition]) -> None:
        pass

    watch = BrokerWatch(
        clients=type("C", (), {"consumer": consumer, "cluster": cluster})(),  # type: ignore[arg-type]
        input_topic="in",
        ledger=Ledger(),
        health=Health(grace_s=5),
        metrics=Metrics(),
        on_reset=reset,
        stopping=asyncio.Event(),
    )
    await watch.check()
    assert consumer.refreshes == 0  # nothing happened: aiokafka's own refresh is enough
    cluster.reachable = False
    await watch.check()
    cluster.reachable, cluster.present = True, set()  # back, empty
    await watch.check()
    await watch.check()
    assert consumer.refreshes == 0
    cluster.present = {"in"}  # re-created
    await watch.check()
    await watch.check()
    assert consumer.refreshes == 1
    cluster.reachable = False  # another outage; back with the topic
    await watch.check()
    cluster.reachable = True
    await watch.check()
    assert consumer.refreshes == 2


class FlushCounter:
    def __init__(self) -> None:
        self.flushes = 0
        self.forgotten: list[TopicPartition] = []

    async def flush(self) -> None:
        self.flushes += 1

    def forget(self, tps: list[TopicPartition]) -> None:
        self.forgotten += tps


def listener_of(consumer: FakeConsumer, ledger: Ledger, health: Health) -> Rebalance:
    """The rebalance listener, its intake a :class:`FlushCounter` (``listener.intake``)."""
    return Rebalance(
        consumer=consumer,
        ledger=ledger,
        intake=FlushCounter(),  # type: ignore[arg-type]
        decisions=NoDecisions(),  # type: ignore[arg-type]
        health=health,
        metrics=Metrics(),
        reset_to="earliest",
        anchors=Anchors(),
    )


async def test_a_revoke_flushes_as_a_member_then_starts_a_new_epoch():
    consumer, ledger, health = FakeConsumer("in", partitions=2), Ledger(), Health()
    listener = listener_of(consumer, ledger, health)
    flushes: FlushCounter = listener.intake  # type: ignore[assignment]
    await listener.on_partitions_assigned([TP0, TP1])
    assert ledger.assigned == {TP0, TP1} and health.assigned
    await listener.on_partitions_revoked([TP0])
    assert flushes.flushes == 1 and ledger.epoch(TP0) == 1 and ledger.assigned == {TP1}
    consumer.member = False  # membership lost: no flush (the partitions may be someone else's)
    await listener.on_partitions_revoked([TP1])
    assert flushes.flushes == 1 and ledger.assigned == set() and not health.assigned
    assert flushes.forgotten == [TP0, TP1]


async def test_a_partition_revoked_with_all_it_took_decided_is_held_and_read_on_if_it_stays():
    """aiokafka revokes every partition at a rebalance, then assigns each member its share. A
    partition whose every record taken is decided at the flush keeps its state: assigned
    again, it is read on from what was taken (not from its commit, a series' history behind),
    in the same epoch; assigned elsewhere, or back after another member committed it, it is
    forgotten then. One with records taken after the flush is forgotten at once."""
    consumer, ledger = FakeConsumer("in", partitions=4), Ledger()
    listener = listener_of(consumer, ledger, Health())
    flushes: FlushCounter = listener.intake  # type: ignore[assignment]
    tp2, tp3 = TopicPartition("in", 2), TopicPartition("in", 3)
    await listener.on_partitions_assigned([TP0, TP1, tp2, tp3])
    decided = {TP0: 9, TP1: 9, tp2: 5, tp3: 9}  # of 9 taken of each: tp2's last 4 undecided
    for tp in decided:
        batch = acknowledged(ledger, tp, 3, end=9)
        ledger.acknowledged(batch.commit, {tp: decided[tp]}, batch.epochs, batch.anchors)
        consumer.commits.append({tp: 3})
        ledger.committed({tp: 3})
    assert ledger.taking == {TP0, TP1, tp2, tp3}
    await listener.on_partitions_revoked([TP0, TP1, tp2, tp3])
    assert flushes.flushes == 1 and flushes.forgotten == [tp2]  # held: the others
    assert ledger.assigned == set() and ledger.taking == set() and ledger.epoch(tp2) == 1
    consumer.commits.append({tp3: 7})  # another member read tp3 meanwhile (this one was out)
    await listener.on_partitions_assigned([TP1, tp2, tp3])
    assert flushes.forgotten[0] == tp2  # and then TP0 (elsewhere) and tp3 (not as it was)
    assert sorted(flushes.forgotten[1:]) == [TP0, tp3]
    assert ledger.epoch(TP0) == ledger.epoch(tp3) == 1 and ledger.fetched_offset(tp3) is None
    assert ledger.epoch(TP1) == 0 and ledger.fetched_offset(TP1) == 9  # as it was
    assert consumer.position_of[TP1] == 9 and consumer.position_of[tp3] == 0  # tp3: its commit
    assert ledger.assigned == ledger.taking == {TP1, tp2, tp3}


async def test_records_fetched_while_a_flush_waits_for_a_free_batch_go_to_the_next_batch():
    """A batch once queued is never filled again: records that arrive while the flush's
    hand-off waits for a free batch wait for that batch."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    consumer.assigned = {TP0}
    pool, queue = Pool(1, 8, (4,)), asyncio.Queue(4)
    stage = intake(consumer, ledger, pool, queue)
    running = asyncio.create_task(stage.run())
    consumer.produce(0, [window(0)])
    while stage.batch is None or stage.batch.n == 0:
        await asyncio.sleep(0.01)
    flush = asyncio.create_task(stage.hand_off())  # queues the batch, then waits: pool empty
    await asyncio.sleep(0.01)
    consumer.produce(0, [window(1), window(2)])
    await asyncio.sleep(0.05)
    queued = queue.get_nowait()
    assert queued.seqs == [0] and queued.n == 1 and queued.commit == {TP0: 1}
    pool.give(queued)  # acknowledged: it comes back as the next fresh batch
    await asyncio.wait_for(flush, 1)
    while stage.batch is None or stage.batch.n < 2:
        await asyncio.sleep(0.01)
    assert stage.batch.seqs == [1, 2] and stage.batch.commit == {TP0: 3}
    stage.stopping.set()
    await asyncio.wait_for(running, 2)


class NothingKept:
    """An anchors store that kept nothing yet (a first start): no anchors, no swap points."""

    swaps: dict = {}  # noqa: RUF012

    async def anchors_of(self, partition: int) -> dict[str, tuple[int, int]]:
        return {}


async def test_a_stop_while_every_batch_is_in_flight_still_commits_what_was_taken():
    """The flaky end-marker test's cause: a batch whose partition's commit waits for its anchors
    (streams without seq) is handed off, then the daemon stops while the intake waits for a free
    batch. The drain must still take the anchors and commit that partition where it was taken to
    (before, it had no batch to carry them, and the commit stayed where the last anchors were)."""
    consumer, ledger = FakeConsumer("in"), Ledger()
    ledger.assign([TP0])
    consumer.assigned = {TP0}
    pool, queue = Pool(2, 8, (2,)), asyncio.Queue(4)
    stage = intake(consumer, ledger, pool, queue)
    stage.models, stage.windower = OneSampleModel(), Windower(length=2, stride=1)  # type: ignore[assignment]
    stage.anchors.store = NothingKept()  # type: ignore[assignment]
    stage.anchor_every_s = 3600.0  # the second hand-off comes within it: its commit waits
    stage.scorer_idle.set()  # a partial batch goes at once
    running = asyncio.create_task(stage.run())
    counted = orjson.dumps({"stream": "a", "value": 0.5})
    consumer.produce(0, [counted] * 3)
    first = await asyncio.wait_for(queue.get(), 1)
    assert first.commit == {TP0: 1} and first.anchors == {TP0: {"a": (1, 1)}}
    consumer.produce(0, [counted] * 3)
    second = await asyncio.wait_for(queue.get(), 1)  # both batches in flight now
    assert second.n == 3 and second.commit == {} and second.anchors == {}
    stage.stopping.set()
    await asyncio.wait_for(running, 1)
    drained = queue.get_nowait()
    assert drained is not None and drained.n == 0
    assert drained.commit == {TP0: 4} and drained.anchors == {TP0: {"a": (4, 4)}}
    assert queue.get_nowait() is None


# ----- the score stage ------------------------------------------------------------------------
class RecordingScorer:
    """The scorer's side of the stage: records which model scores each row."""

    def __init__(self) -> None:
        self.detectors = ["trained"]
        self.executor = ThreadPoolExecutor(1)
        self.scored: list[tuple[list[int], list]] = []

    def score(self, rows: np.ndarray, models: np.ndarray, learned: list | None = None) -> Scored:
        self.scored.append((models.tolist(), learned or []))
        empty = np.empty(0, dtype=np.intp)
        return Scored(np.zeros(len(rows), np.float32), empty, empty.reshape(0, 1), 0.0)


class StaleRecorder:
    """Decisions that record which partitions each batch left undecided."""

    def __init__(self) -> None:
        self.stale: list[set[int]] = []

    def decide(self, batch: Batch, scored: Scored | None, stale: set[int]) -> str:
        self.stale.append(stale)
        return "decided"


class Nothing:
    async def swap_if_requested(self) -> None:
        pass

    async def send(self, decided: object) -> None:
        pass


async def test_rows_whose_update_was_withdrawn_are_scored_by_the_trained_model_undecided():
    """A partition revoked without membership (no flush) while a batch of it is in flight: its
    stream's update is withdrawn (it comes as None); the batch is scored, that row by the
    trained model, nothing of its partition decided, and the stage goes on."""
    ledger = Ledger()
    ledger.assign([TP0, TP1])
    batch = Batch(np.zeros((2, 4), dtype=np.float32))
    batch.keep(["a", "b"], [0, 0], [0.0, 0.0], [0.0, 0.0])
    batch.models += [0, 0]
    batch.parts += [0, 1]
    batch.dets += ["trained", "trained"]
    batch.epochs = {tp: ledger.fetched(tp, 0, 1) for tp in (TP0, TP1)}
    loop = asyncio.get_running_loop()
    withdrawn, updated = loop.create_future(), loop.create_future()
    withdrawn.set_result(None)
    updated.set_result("b's update")
    batch.learned += [withdrawn, updated]
    ledger.revoke([TP0])
    queue: asyncio.Queue = asyncio.Queue()
    confirming: asyncio.Queue = asyncio.Queue()
    for item in (batch, None):
        queue.put_nowait(item)
    scorer, decisions = RecordingScorer(), StaleRecorder()
    stage = ScoreStage(
        queue=queue,
        idle=asyncio.Event(),
        confirming=confirming,
        models=SimpleNamespace(single=False, series=True),  # type: ignore[arg-type]
        scorer=scorer,  # type: ignore[arg-type]
        decisions=decisions,  # type: ignore[arg-type]
        publisher=Nothing(),  # type: ignore[arg-type]
        model_watch=Nothing(),  # type: ignore[arg-type]
        ledger=ledger,
    )
    await asyncio.wait_for(stage.run(), 5)
    scorer.executor.shutdown()
    assert scorer.scored == [([0, 1], ["b's update"])]  # row 0 by the trained model 0
    assert decisions.stale == [{0}]
    assert [confirming.get_nowait() for _ in range(2)] == ["decided", None]


async def test_rows_read_before_a_swap_are_scored_by_the_model_they_were_read_under():
    """A model swapped in while batches read under the one it replaced wait to be scored: their
    rows are scored by the model they were read under (and their streams' learners' updates),
    as their windows were pushed into that model's learners."""
    ledger = Ledger()
    ledger.assign([TP0])
    batch = Batch(np.zeros((3, 4), dtype=np.float32))
    batch.keep(["a", "b", "c"], [0, 0, 0], [0.0] * 3, [0.0] * 3)
    batch.models += [0, 0, 0]
    batch.parts += [0, 0, 0]
    batch.dets += ["replaced", "trained", "replaced"]
    batch.epochs = {TP0: ledger.fetched(TP0, 0, 3)}
    updated = asyncio.get_running_loop().create_future()
    updated.set_result("c's update of the replaced model")
    batch.learned += [None, None, updated]
    queue: asyncio.Queue = asyncio.Queue()
    for item in (batch, None):
        queue.put_nowait(item)
    scorer = RecordingScorer()
    stage = ScoreStage(
        queue=queue,
        idle=asyncio.Event(),
        confirming=asyncio.Queue(),
        models=SimpleNamespace(single=True, series=True),  # type: ignore[arg-type]
        scorer=scorer,  # type: ignore[arg-type]
        decisions=StaleRecorder(),  # type: ignore[arg-type]
        publisher=Nothing(),  # type: ignore[arg-type]
        model_watch=Nothing(),  # type: ignore[arg-type]
        ledger=ledger,
    )
    await asyncio.wait_for(stage.run(), 5)
    scorer.executor.shutdown()
    ((models, learned),) = scorer.scored
    assert [learned[m - 1] if m else "trained" for m in models] == [
        "replaced",
        "trained",
        "c's update of the replaced model",
    ]
