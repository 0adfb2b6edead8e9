"""The daemon's parts with fake Kafka clients: commits follow acks, retries and fatal errors,
rebalances, lost logs, outages, shutdown, and a stage that fails."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import numpy as np
import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from aemon.daemon import alerts
from aemon.daemon.config import Settings
from aemon.daemon.service import Service
from aemon.daemon.supervisor import StageFailed
from tests.integration.helpers import until
from tests.unit.fakes import Gate, Rec, failing_scorer, fake_clients, gated_scorer

TOPICS = {"input_topic": "in", "alerts_topic": "al", "dlq_topic": "dlq", "scores_topic": "sc"}


@pytest.fixture(scope="module")
def model(tmp_path_factory, window_csv):
    import aemon
    from aemon.core.table import read_windows

    table = read_windows(window_csv)
    return aemon.fit(table.values, table.label, epochs=1).save(
        tmp_path_factory.mktemp("parts") / "model"
    )


def settings(model, **extra) -> Settings:
    own = dict(
        model=str(model),
        metrics_port=0,
        max_batch=4,
        max_wait_ms=0,
        queue_batches=2,
        watch_model=False,
        shutdown_timeout_s=2.0,
        summary_interval_s=0.0,
        broker_grace_s=0.0,
    )
    return dataclasses.replace(Settings(), **{**TOPICS, **own, **extra})


def windows(n: int, start: int = 0) -> list[bytes]:
    rng = np.random.default_rng(start)
    return [
        orjson.dumps({"stream": "s", "seq": start + i, "values": rng.random(32).tolist()})
        for i in range(n)
    ]


async def serving(svc: Service) -> asyncio.Task:
    task = asyncio.create_task(svc.run())
    await until(lambda: svc.ready() or task.done(), 30, "ready")
    assert not task.done(), task.result()
    return task


def decided(clients) -> list[int]:
    return sorted(d["seq"] for d in clients.producer.values("sc"))


async def test_commit_never_passes_an_unacknowledged_batch(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model), clients)
    task = await serving(svc)
    c, p = clients.consumer, clients.producer
    p.auto = False
    c.produce(0, windows(4))  # batch 1: its acks are held
    await until(lambda: len(p.pending) >= 1, 10, "batch 1 sent")
    held = list(p.pending)
    p.pending.clear()
    p.auto = True
    c.produce(0, windows(8, start=4))  # batches 2 and 3: acknowledged at once
    await until(lambda: c.position_of[c.tps[0]] == 12, 10, "all fetched")
    for _ in range(20):  # many loop turns: nothing may be committed while batch 1 waits
        await asyncio.sleep(0)
    assert c.commits == []
    p.pending = held
    p.ack()
    await until(lambda: c.last_commit(c.tps[0]) == 12, 10, "the commit after every ack")
    assert all(o <= 12 for commit in c.commits for o in commit.values())
    svc.stop()
    await task
    assert decided(clients) == list(range(12))


async def test_an_output_topic_that_would_refuse_the_daemons_batches_is_named_at_start(
    model, caplog
):
    """As ``aemon serve --check`` finds it: one warning, with the command that mends it; a topic
    that takes the daemon's batches is not named."""
    clients = fake_clients("in", ["al", "dlq", "sc"])
    clients.cluster.settings = {
        "al": {"max.message.bytes": "40000"},
        "dlq": {"max.message.bytes": str(2 << 20)},
    }
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        svc = Service(settings(model), clients)
        task = await serving(svc)
    svc.stop()
    await task
    (said,) = [r.getMessage() for r in caplog.records if "max.message.bytes" in r.getMessage()]
    assert said.startswith("alerts_topic: al takes record batches of at most 40,000 bytes")
    assert "a burst of alerts and events would be refused, which stops the daemon" in said
    assert said.endswith("--entity-name al --add-config max.message.bytes=1048576")


async def test_retriable_errors_are_retried_with_backoff_and_counted(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model), clients)
    task = await serving(svc)
    clients.producer.fail = [KafkaConnectionError("down"), KafkaConnectionError("down")]
    clients.consumer.produce(0, windows(4))
    await until(lambda: clients.consumer.last_commit(clients.consumer.tps[0]) == 4, 10, "commit")
    errors = svc.metrics.registry.get_sample_value(
        "aemon_errors_total", {"stage": "publish", "kind": "KafkaConnectionError"}
    )
    assert errors >= 1 and svc.health.publish_failing is None and svc.ready()
    svc.stop()
    await task


async def test_a_non_retriable_error_ends_the_process(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model), clients)
    task = await serving(svc)
    clients.producer.fail = [TopicAuthorizationFailedError()]
    clients.consumer.produce(0, windows(4))
    started = time.monotonic()
    with pytest.raises(StageFailed, match="retrying cannot help"):
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 5
    assert not svc.ready() and not svc.health.alive()
    assert clients.consumer.commits == []  # nothing unacknowledged committed


async def test_a_scoring_exception_drops_readiness_and_stops_within_seconds(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model), clients, scorer=failing_scorer(4))
    task = await serving(svc)
    clients.consumer.produce(0, windows(12))
    started = time.monotonic()
    with pytest.raises(StageFailed, match="injected scoring fault"):
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 5
    assert "score stage" in (svc.health.failed or "") and not svc.ready()
    assert clients.consumer.last_commit(clients.consumer.tps[0]) == 4  # exactly what was decided
    assert decided(clients) == list(range(4))


async def test_a_rebalance_commits_what_was_decided_and_only_as_a_member(model):
    """Windows held in the intake's batch (the scorer is busy, the batch waits up to max_wait)
    are decided and committed by a revoke's flush; after membership is lost, decided but not
    committed."""
    clients = fake_clients("in", ["al", "dlq", "sc"], partitions=2)
    gate = Gate()
    svc = Service(
        settings(model, max_wait_ms=60_000, max_batch=64), clients, scorer=gated_scorer(gate)
    )
    task = await serving(svc)
    c = clients.consumer
    c.produce(0, windows(1))
    await until(lambda: gate.entered == 1, 10, "the first window given to the scorer")
    c.produce(0, windows(4, start=1))
    c.produce(1, windows(3, start=5))
    await until(lambda: c.position_of[c.tps[1]] == 3, 10, "fetched (held: the scorer is busy)")
    assert c.commits == []
    gate.open.set()
    await c.listener.on_partitions_revoked([c.tps[0]])  # a member: flush, commit, then let go
    assert c.last_commit(c.tps[0]) == 5 and c.last_commit(c.tps[1]) == 3
    assert svc.ledger.assigned == {c.tps[1]}
    gate.close()
    c.produce(1, windows(1, start=8))
    await until(lambda: gate.entered == 9, 10, "window 8 given to the scorer")
    c.produce(1, windows(1, start=9))
    await until(lambda: c.position_of[c.tps[1]] == 5, 10, "fetched again")
    c.member = False  # membership lost: decisions made, nothing committed
    gate.open.set()
    await c.listener.on_partitions_revoked([c.tps[1]])
    await until(lambda: not svc.ready(), 5, "no partitions: not ready")
    assert c.last_commit(c.tps[1]) == 3
    svc.stop()
    await task


async def test_a_revoke_while_every_batch_is_in_flight_loses_no_window(model):
    """The loss seen with three replicas: a revoke arrives while the intake waits for a free
    batch (all are queued or awaiting acks). Its flush must not queue the intake's batch a second
    time (which recycled a batch still queued, decided rows that were not the batch's and
    committed offsets past windows nobody decided)."""
    clients = fake_clients("in", ["al", "dlq", "sc"], partitions=2)
    svc = Service(settings(model, max_batch=4, queue_batches=1), clients)  # a pool of 3 batches
    task = await serving(svc)
    c, p = clients.consumer, clients.producer
    p.auto = False  # every batch stays in flight
    c.produce(0, windows(20))
    c.produce(1, windows(20, start=100))

    def held() -> int:
        return sum(len(b.records) for _, topic, b in p.pending if topic == "sc")

    await until(lambda: held() == 12, 10, "three batches decided, their acks held")
    for _ in range(20):  # the intake now waits for a free batch
        await asyncio.sleep(0)
    revoke = asyncio.create_task(c.listener.on_partitions_revoked([c.tps[0]]))
    for _ in range(20):
        await asyncio.sleep(0)
    p.auto = True
    p.ack()
    await asyncio.wait_for(revoke, 10)
    c.produce(1, windows(200, start=120))  # the batches go round the pool many times more
    await until(lambda: c.last_commit(c.tps[1]) == 220 or task.done(), 20, "partition 1 done")
    svc.stop()
    await task  # no stage failed
    seen = decided(clients)
    for tp, first in ((c.tps[0], 0), (c.tps[1], 100)):
        upto = c.last_commit(tp) or 0
        assert set(range(first, first + upto)) <= set(seen), f"{tp} committed undecided windows"
    assert set(range(100, 320)) <= set(seen)


async def test_a_log_that_ends_before_what_was_read_is_reported_and_read_again(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model, broker_grace_s=5.0), clients)
    task = await serving(svc)
    c = clients.consumer
    tp = c.tps[0]
    c.produce(0, windows(8))
    await until(lambda: c.last_commit(tp) == 8, 10, "the first log decided")
    c.logs[tp] = []  # the broker came back without its log; 3 new windows arrive
    c.produce(0, windows(3, start=100))
    await svc.stages.watch.check()
    assert svc.health.log_lost and not svc.ready()
    get = svc.metrics.registry.get_sample_value
    assert get("aemon_input_log_lost_total", {"reason": "past_end"}) == 1
    await until(lambda: c.last_commit(tp) == 3, 10, "the new log decided from its start")
    assert all(commit[tp] <= 8 for commit in c.commits)
    assert decided(clients)[-3:] == [100, 101, 102]
    svc.stop()
    await task


async def test_lag_counts_partitions_not_fetched_yet(model):
    clients = fake_clients("in", ["al", "dlq", "sc"], partitions=2)
    svc = Service(settings(model), clients)
    task = await serving(svc)
    c = clients.consumer
    clients.producer.auto = False  # the pipeline fills up: partition 1 is never fetched
    c.produce(0, windows(40))
    c.produce(1, windows(40, start=40))
    get = svc.metrics.registry.get_sample_value

    def lag(p: int) -> float | None:
        return get("aemon_consumer_lag_messages", {"topic": "in", "partition": str(p)})

    await until(lambda: lag(0) == 40 and lag(1) == 40, 10, lambda: f"lag {lag(0)}, {lag(1)}")
    assert c.position_of[c.tps[1]] == 0
    svc.stop()
    await task


async def test_an_input_topic_not_created_yet_is_awaited_and_one_that_vanishes_is_lost(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    cluster = clients.cluster
    cluster.present.discard("in")
    svc = Service(settings(model, broker_grace_s=5.0), clients)
    task = await serving(svc)
    await svc.stages.watch.check()
    assert svc.health.log_lost is None  # not there yet: a warning, not a lost log
    cluster.present.add("in")
    await svc.stages.watch.check()
    cluster.present.discard("in")
    await svc.stages.watch.check()
    assert "does not exist" in (svc.health.log_lost or "") and not svc.ready()
    get = svc.metrics.registry.get_sample_value
    assert get("aemon_input_log_lost_total", {"reason": "topic_missing"}) == 1
    svc.stop()
    await task


async def test_an_offset_past_the_log_end_is_never_committed(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model), clients)
    task = await serving(svc)
    c = clients.consumer
    c.high[c.tps[0]] = 2  # the broker reports a log shorter than what was fetched
    c.produce(0, windows(4))
    await until(lambda: svc.health.log_lost is not None, 10, "reported")
    assert c.commits == []
    svc.stop()
    await task


async def test_after_an_outage_acks_count_only_once_the_output_topics_exist(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model), clients)
    task = await serving(svc)
    p, cluster = clients.producer, clients.cluster
    p.auto = False
    clients.consumer.produce(0, windows(4))
    await until(lambda: len(p.pending) >= 1, 10, "sent")
    cluster.reachable = False
    await svc.stages.watch.check()
    assert not svc.ready()  # grace 0
    cluster.reachable, cluster.present = True, {"in"}  # back, without the output topics
    await svc.stages.watch.check()
    p.auto = True
    p.ack()  # acknowledged by the broker that came back: not trusted
    await until(lambda: svc.health.publish_failing is not None, 10, "topics missing reported")
    assert clients.consumer.commits == []
    cluster.present = {"in", "al", "dlq", "sc"}
    await until(lambda: clients.consumer.last_commit(clients.consumer.tps[0]) == 4, 10, "commit")
    assert decided(clients).count(0) == 2  # sent again after the outage (same decision)
    svc.stop()
    await task


async def test_a_broker_back_without_the_groups_offsets_is_reported_and_read_again(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model, broker_grace_s=5.0), clients)
    task = await serving(svc)
    c, cluster = clients.consumer, clients.cluster
    c.produce(0, windows(6))
    await until(lambda: c.last_commit(c.tps[0]) == 6, 10, "decided")
    cluster.reachable = False
    await svc.stages.watch.check()
    cluster.reachable, c.offsets_lost = True, True
    await svc.stages.watch.check()
    get = svc.metrics.registry.get_sample_value
    assert get("aemon_input_log_lost_total", {"reason": "offsets_lost"}) == 1
    assert "committed before the outage" in (svc.health.log_lost or "") and not svc.ready()
    assert c.position_of[c.tps[0]] == 0  # read again from the earliest offset
    svc.stop()
    await task


async def test_stop_while_the_broker_is_down_ends_within_the_drain_deadline(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    svc = Service(settings(model, shutdown_timeout_s=1.0), clients)
    task = await serving(svc)
    clients.producer.auto = False  # acks never come
    clients.consumer.produce(0, windows(8))
    await until(lambda: len(clients.producer.pending) >= 1, 10, "sent")
    started = time.monotonic()
    svc.stop()
    await asyncio.wait_for(task, 10)  # returns, no exception: a clean stop
    assert time.monotonic() - started < 3
    assert clients.consumer.commits == []


async def test_start_up_waits_for_the_broker_and_gives_up_with_one_line(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    clients.cluster.reachable = False
    svc = Service(settings(model, broker_wait_s=0.5), clients)
    with pytest.raises(Exception, match=r"did not answer within 0.5 s \(broker_wait_s\)"):
        await asyncio.wait_for(svc.run(), 10)


async def test_a_broker_late_at_start_up_is_awaited_and_counts_as_no_outage(model):
    clients = fake_clients("in", ["al", "dlq", "sc"])
    clients.cluster.reachable = False
    svc = Service(settings(model), clients)
    task = asyncio.create_task(svc.run())
    await until(lambda: svc.health.broker_down_since is not None, 10, "waiting for the broker")
    assert not svc.ready()
    clients.cluster.reachable = True
    await until(svc.ready, 10, "ready once the broker answers")
    assert svc.health.outages == 0
    svc.stop()
    await task


async def test_a_metrics_port_in_use_is_one_clear_error(model):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        svc = Service(settings(model, metrics_port=port), fake_clients("in", ["al"]))
        with pytest.raises(Exception, match=f"metrics_port: cannot listen on 127.0.0.1:{port}"):
            await svc.run()


def test_an_oversized_dead_letter_is_cut_and_says_so():
    rec = Rec(7, b"x" * 5000, b"k", [("h", b"1")])
    topic, value, key, headers = alerts.dead_letter("dlq", rec, "too_large", "big", ("in", 2), 1024)
    assert (topic, key, value) == ("dlq", b"k", b"x" * 1024)
    assert ("truncated_from", b"5000") in headers and ("source_offset", b"7") in headers
    assert alerts.dead_letter("dlq", rec, "r", "e", ("in", 2), 8192)[1] == rec.value
