"""Breaking the daemon on purpose, against the real embedded broker; every scenario proves from
the broker's own topics that nothing was lost, and adds its figures to the table."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from aemon.core.table import WindowTable, read_windows, write_windows
from aemon.daemon.alerts import alert_id
from aemon.daemon.codec import F32_CONTENT_TYPE
from aemon.replay import produce, replay
from aemon.tools.broker import EmbeddedBroker, free_port
from tests.integration.helpers import (
    Daemon,
    committed,
    decided,
    make_topics,
    read_all,
    settings,
    topics,
    until,
)

KILL_CYCLES = 20


def many_windows(holdout: Path, n: int, out: Path, first_seq: int = 0) -> list[tuple[str, int]]:
    """``n`` windows cycling the held-out beats, 50 streams, distinct (stream, seq) each."""
    beats = read_windows(holdout).values
    seq = np.arange(first_seq, first_seq + n, dtype=np.int64)
    streams = np.array([f"p-{i % 50}" for i in range(n)])
    write_windows(
        out, WindowTable(values=beats[np.arange(n) % len(beats)], stream=streams, seq=seq)
    )
    return list(zip(streams.tolist(), seq.tolist(), strict=True))


async def drained(bootstrap: str, t: dict, partitions: int, sent: int, timeout: float) -> float:
    """Wait until the group's committed offsets cover ``sent`` messages; return the seconds."""
    start = time.monotonic()
    while (
        sum((await committed(bootstrap, t["group_id"], t["input_topic"], partitions)).values())
        < sent
    ):
        assert time.monotonic() - start < timeout, "not drained in time"
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def alert_ids_differ(bootstrap: str, t: dict) -> int:
    """Windows whose alerts (sent more than once) do not share one deterministic id."""
    by_window: dict[tuple[str, int], set[str]] = {}
    for r in await read_all(bootstrap, t["alerts_topic"]):
        a = orjson.loads(r.value)
        by_window.setdefault((a["stream"], a["seq"]), set()).add(a["alert_id"])
        assert a["alert_id"] == alert_id(a["model_version"], a["stream"], a["seq"])
    return sum(len(ids) > 1 for ids in by_window.values())


def terminate(d: Daemon) -> int:
    d.proc.send_signal(signal.SIGTERM)
    return d.proc.wait(20)


async def test_sigkill_restart_cycles_during_a_replay(bootstrap, ecg, tmp_path, table):
    art, holdout = ecg
    t = topics(3)
    await make_topics(bootstrap, t)
    want = many_windows(holdout, 20_000, tmp_path / "w.csv")
    s = settings(bootstrap, art, t, max_batch=64)
    feeding = asyncio.create_task(
        replay(tmp_path / "w.csv", t["input_topic"], bootstrap, rate=130, progress=False)
    )
    for i in range(KILL_CYCLES):
        d = Daemon(s, tmp_path / f"d{i}.log")
        await d.wait_ready()
        await until(
            lambda d=d: d.metric("aemon_windows_scored_total") >= 50 or feeding.done(),
            60,
            "scoring",
        )
        d.kill()
    last = Daemon(s, tmp_path / "last.log")
    await last.wait_ready()
    sent = await feeding
    await drained(bootstrap, t, 3, sent, 180)
    assert terminate(last) == 0
    seen = await decided(bootstrap, t)
    missing = len(set(want) - set(seen))
    twice = sum(n > 1 for n in seen.values())
    differ = await alert_ids_differ(bootstrap, t)
    table.row(
        f"{KILL_CYCLES} SIGKILL/restart cycles during a replay",
        sent=sent,
        decided=len(set(want) & set(seen)),
        missing=missing,
        decided_twice=twice,
        duplicate_alerts_with_other_ids=differ,
    )
    assert sent == len(want) and missing == 0 and differ == 0


@pytest.mark.parametrize("run", range(5))
async def test_three_replicas_one_killed_for_good(bootstrap, ecg, tmp_path, table, run):
    art, holdout = ecg
    t = topics(6)
    await make_topics(bootstrap, t)
    want = many_windows(holdout, 12_000, tmp_path / "w.csv")
    s = settings(bootstrap, art, t, max_batch=64)
    daemons = [Daemon(s, tmp_path / f"r{k}.log") for k in range(3)]

    def owned(ds: list[Daemon]) -> list[float]:
        return [d.metric("aemon_assigned_partitions") for d in ds]

    for d in daemons:
        await d.wait_ready()
    await until(
        lambda: owned(daemons) == [2, 2, 2], 60, lambda: f"2 partitions each {owned(daemons)}"
    )
    feeding = asyncio.create_task(
        replay(tmp_path / "w.csv", t["input_topic"], bootstrap, rate=400, progress=False)
    )
    await until(lambda: daemons[0].metric("aemon_windows_scored_total") >= 500, 60, "scoring")
    victim, survivors = daemons[0], daemons[1:]
    victim.kill()
    killed = time.monotonic()
    await until(lambda: sum(owned(survivors)) == 6, 60, lambda: f"takeover {owned(survivors)}")
    takeover = time.monotonic() - killed
    sent = await feeding
    await drained(bootstrap, t, 6, sent, 120)
    codes = [terminate(d) for d in survivors]
    seen = await decided(bootstrap, t)
    missing = len(set(want) - set(seen))
    table.row(
        f"3 replicas on 6 partitions, one SIGKILLed and not restarted (run {run + 1})",
        sent=sent,
        missing=missing,
        decided_twice=sum(n > 1 for n in seen.values()),
        takeover_s=f"{takeover:.1f}",
    )
    assert missing == 0 and codes == [0, 0]


def _logged_at(log: str, needle: str) -> float:
    """Epoch seconds of the first log line holding ``needle`` (the log's asctime)."""
    for line in log.splitlines():
        if needle in line:
            stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", line)
            assert stamp, line
            return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"{needle!r} not logged")


async def test_a_stage_failure_exits_within_seconds_and_the_restart_decides_the_rest(
    bootstrap, ecg, tmp_path, table
):
    art, holdout = ecg
    t = topics(1)
    await make_topics(bootstrap, t)
    want = many_windows(holdout, 3000, tmp_path / "w.csv")
    await replay(tmp_path / "w.csv", t["input_topic"], bootstrap, progress=False)
    s = settings(bootstrap, art, t, max_batch=256)
    d = Daemon(s, tmp_path / "fail.log", fail_scoring_after=1000)
    statuses: list[tuple[int, int]] = []
    while d.proc.poll() is None:
        statuses.append((d.status("/readyz"), d.status("/healthz")))
        await asyncio.sleep(0.02)
    exited = time.time()
    log = d.log.read_text()
    after = exited - _logged_at(log, "score stage failed")
    was_ready = (200, 200) in statuses
    seen_down = was_ready and (503, 500) in statuses[statuses.index((200, 200)) :]
    done = (await committed(bootstrap, t["group_id"], t["input_topic"], 1))[0]
    again = Daemon(s, tmp_path / "again.log")
    await again.wait_ready()
    await drained(bootstrap, t, 1, len(want), 60)
    assert terminate(again) == 0
    seen = await decided(bootstrap, t)
    missing = len(set(want) - set(seen))
    table.row(
        "scoring exception injected (a failing scorer) after 1000 windows",
        exit_code=d.proc.returncode,
        exit_after_failure_s=f"{after:.1f}",
        readyz_503_healthz_500_seen=seen_down,
        committed_at_failure=done,
        restart_missing=missing,
        decided_twice=sum(n > 1 for n in seen.values()),
    )
    assert d.proc.returncode == 1 and after < 5 and log.count("Traceback") == 1
    assert missing == 0 and done <= 1000


async def test_broker_lost_and_back_empty_then_sigterm_during_an_outage(ecg, tmp_path, table):
    art, holdout = ecg
    port = free_port()
    broker = await EmbeddedBroker(port).start()
    bs = broker.bootstrap
    t = topics(3)
    await make_topics(bs, t)
    before = many_windows(holdout, 2000, tmp_path / "a.csv")
    after = many_windows(holdout, 3000, tmp_path / "b.csv", first_seq=1_000_000)
    d = Daemon(settings(bs, art, t, max_batch=64), tmp_path / "d.log")
    try:
        await d.wait_ready()
        await replay(tmp_path / "a.csv", t["input_topic"], bs, progress=False)
        await drained(bs, t, 3, len(before), 60)
        broker.process.kill()  # type: ignore[union-attr]
        broker.process.wait()  # type: ignore[union-attr]
        down = time.monotonic()
        first_503, ready_after = None, 0
        while time.monotonic() - down < 30:
            ready = d.status("/readyz") == 200
            if not ready and first_503 is None:
                first_503 = time.monotonic() - down
            ready_after += ready and first_503 is not None
            await asyncio.sleep(0.2)
        broker = await EmbeddedBroker(port).start()  # back, empty
        back = time.monotonic()
        # re-created by the operator, the input with a partition more (the daemon must read all
        # four at once, not after its next metadata refresh); or first by the broker
        # on the daemon's metadata request (Tansu creates topics on use, with 4 partitions too;
        # Apache Kafka with num.partitions unless auto.create.topics.enable is false, as
        # deploy/compose.yaml sets it and `aemon serve --check` advises)
        n = 4
        await make_topics(bs, {**t, "_partitions": str(n)})
        feeding = asyncio.create_task(
            replay(tmp_path / "b.csv", t["input_topic"], bs, progress=False)
        )
        saw_503_after = False
        while not (lost := lost_logs(d)) or "input log lost" not in d.log.read_text():
            saw_503_after |= d.status("/readyz") == 503
            assert time.monotonic() - back < 30, "the lost log was never reported"
            await asyncio.sleep(0.1)
        said = time.monotonic() - back
        saw_503_after |= d.status("/readyz") == 503
        sent = await feeding
        await drained(bs, t, n, sent, 120)
        ends = await log_ends(bs, t["input_topic"], n)
        offsets = await committed(bs, t["group_id"], t["input_topic"], n)
        seen = await decided(bs, t)
        missing = len(set(after) - set(seen))
        # SIGTERM while the broker is down again, with batches in flight
        many_windows(holdout, 3000, tmp_path / "c.csv", first_seq=2_000_000)
        base = d.metric("aemon_windows_scored_total")
        feeding = asyncio.create_task(
            replay(tmp_path / "c.csv", t["input_topic"], bs, rate=1000, progress=False)
        )
        await until(lambda: d.metric("aemon_windows_scored_total") > base + 200, 30, "busy")
        broker.process.kill()  # type: ignore[union-attr]
        broker.process.wait()  # type: ignore[union-attr]
        feeding.cancel()
        await until(lambda: "broker unreachable" in d.readyz(), 15, "not ready: broker down")
        mark = len(d.log.read_text())
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(d.proc.wait, 20)
        exit_s = time.monotonic() - started
        tail = d.log.read_text()[mark:]
    finally:
        d.kill()
        broker.stop()
    table.row(
        "broker killed, back empty after 30 s (topics re-created, the input with 4 partitions "
        "instead of 3); killed again mid-replay, "
        "SIGTERM in that outage",
        readyz_503_after_s=f"{first_503:.1f}",
        ready_while_down=ready_after,
        lost_log_reported_after_s=f"{said:.1f}",
        log_lost_metric=int(lost),
        not_ready_after_return=saw_503_after,
        sent_after=sent,
        missing_after=missing,
        committed_past_log_end=sum(offsets[p] > ends[p] for p in range(n)),
        sigterm_exit_code=rc,
        sigterm_exit_s=f"{exit_s:.1f}",
        traceback="Traceback" in tail,
    )
    assert first_503 is not None and first_503 < 10 and ready_after == 0
    assert said < 10 and saw_503_after and missing == 0
    assert all(offsets[p] <= ends[p] for p in range(n))
    assert rc == 0 and exit_s < 10 and "Traceback" not in tail


def lost_logs(d: Daemon) -> float:
    reasons = ("topic_missing", "offsets_lost", "past_end")
    return sum(d.metric(f"aemon_input_log_lost_total{{reason={r}}}") for r in reasons)


async def log_ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's log end, from the broker (a fetch's high-water mark)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        await c.getmany(timeout_ms=1000)
        for tp in tps:
            while c.highwater(tp) is None:
                await c.getmany(tp, timeout_ms=200)
        return {tp.partition: c.highwater(tp) for tp in tps}
    finally:
        await c.stop()


def _messages(holdout: Path, n: int):
    """``n`` JSON windows cycling the held-out beats (pre-encoded: the producer must outpace
    the daemon)."""
    beats = read_windows(holdout).values
    encoded = [
        orjson.dumps({"stream": f"p-{i % 50}", "seq": i, "values": beats[i].tolist()})
        for i in range(len(beats))
    ]
    keys = [f"p-{i % 50}".encode() for i in range(len(beats))]
    for i in range(n):
        yield keys[i % len(beats)], encoded[i % len(beats)], None


async def test_twice_the_capacity_for_a_minute(bootstrap, ecg, tmp_path, table):
    art, holdout = ecg
    t = topics(3)
    await make_topics(bootstrap, t)
    # The proof: the counter and the commits (no scores topic). Small batches keep the daemon's
    # capacity where a producer sharing these 2 cores can offer twice it.
    s = settings(bootstrap, art, t, scores_topic="", max_batch=BATCH)
    backlog = 40_000
    d = Daemon(s, tmp_path / "d.log")
    capacity = await measured_capacity(bootstrap, t, holdout, d, backlog)
    rate = 2 * capacity
    n = int(rate * 60)
    rss0, lag_peak, rss_peak = d.proc_status("VmRSS"), 0.0, 0
    feeding = asyncio.create_task(
        produce(
            bootstrap, t["input_topic"], _messages(holdout, n), total=n, rate=rate, progress=False
        )
    )
    began = time.monotonic()
    while not feeding.done():
        lag = sum(v for k, v in scrape_lag(d).items())
        lag_peak, rss_peak = max(lag_peak, lag), max(rss_peak, d.proc_status("VmRSS"))
        await asyncio.sleep(1)
    sent = await feeding
    offered = sent / (time.monotonic() - began)
    ended = time.monotonic()
    await until(lambda: d.metric("aemon_windows_scored_total") >= backlog + sent, 300, "drained")
    drain = time.monotonic() - ended
    rss1 = d.proc_status("VmRSS")
    await drained(bootstrap, t, 3, backlog + sent, 60)
    scored = d.metric("aemon_windows_scored_total")
    assert terminate(d) == 0
    table.row(
        f"2x the measured capacity for 60 s (max_batch {BATCH})",
        capacity_per_s=round(capacity),
        offered_per_s=round(offered),
        sent=sent,
        lag_peak=int(lag_peak),
        rss_growth_mb=f"{(rss_peak - rss0) / 1024:.0f} (end {(rss1 - rss0) / 1024:+.0f})",
        drain_s=f"{drain:.1f}",
        lost=int(backlog + sent - scored),
    )
    assert scored == backlog + sent and offered > 1.8 * capacity


async def blast(
    bootstrap: str,
    topic: str,
    holdout: Path,
    n: int,
    rate: float,
    partitions: int,
    every: float = 1.0,
) -> int:
    """Send ``n`` windows at ``rate`` per second as whole record batches of up to 1 MiB, one per
    partition ``every`` so many seconds (a per-message producer on this machine falls short of
    twice the capacity; a broker on object storage keeps one object per batch)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20
    )
    await producer.start()
    msgs = _messages(holdout, n)
    sent, start, futures = 0, time.monotonic(), []
    try:
        while sent < n:
            due = n if math.isinf(rate) else min(n, int((time.monotonic() - start + every) * rate))
            for p in range(partitions):
                batch = producer.create_batch()
                for _ in range((due - sent) // partitions + (p < (due - sent) % partitions)):
                    key, value, _ = next(msgs)
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, topic, partition=p))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                futures.append(await producer.send_batch(batch, topic, partition=p))
            sent = due
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))  # next chunk
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


BATCH = 16


async def measured_capacity(
    bootstrap: str, t: dict, holdout: Path, d: Daemon, backlog: int
) -> float:
    """Windows/s ``d`` decides draining a backlog produced (in whole batches) before it
    started."""
    await blast(bootstrap, t["input_topic"], holdout, backlog, math.inf, 3)
    await d.wait_ready()
    await until(lambda: d.metric("aemon_windows_scored_total") > 0, 30, "scoring")
    start, first = time.monotonic(), d.metric("aemon_windows_scored_total")
    await until(lambda: d.metric("aemon_windows_scored_total") >= backlog, 300, "backlog")
    return (backlog - first) / (time.monotonic() - start)


def scrape_lag(d: Daemon) -> dict[str, float]:
    from tests.integration.helpers import scrape

    try:
        return {k: v for k, v in scrape(d.port).items() if k.startswith("aemon_consumer_lag")}
    except OSError:
        return {}


MALFORMED = {
    "not_json": lambda v: (b"{not json", None),
    "not_object": lambda v: (b"[1, 2]", None),
    "bad_stream": lambda v: (orjson.dumps({"stream": 5, "values": v}), None),
    "bad_seq": lambda v: (orjson.dumps({"stream": "m", "seq": -1, "values": v}), None),
    "bad_ts": lambda v: (orjson.dumps({"stream": "m", "ts": "noon", "values": v}), None),
    "missing_values": lambda v: (orjson.dumps({"stream": "m"}), None),
    "bad_values": lambda v: (orjson.dumps({"stream": "m", "values": [str(x) for x in v]}), None),
    "wrong_length": lambda v: (orjson.dumps({"stream": "m", "values": v[:10]}), None),
    "non_finite": lambda v: (orjson.dumps({"stream": "m", "values": [1e39] * len(v)}), None),
    "too_large": lambda v: (orjson.dumps({"stream": "m", "values": v, "pad": "x" * 9000}), None),
    "bad_f32": lambda v: (
        np.float32(v).tobytes(),
        [("content-type", F32_CONTENT_TYPE), ("stream", b"m"), ("seq", b"first")],
    ),
    "unknown_content_type": lambda v: (b"1,2,3", [("content-type", b"text/csv")]),
}


async def test_malformed_messages_of_every_kind_among_good_ones(bootstrap, ecg, tmp_path, table):
    art, holdout = ecg
    t = topics(3)
    await make_topics(bootstrap, t)
    beats = read_windows(holdout).values
    kinds = list(MALFORMED)
    msgs, good, bad = [], set(), {k: 0 for k in kinds}
    for i in range(30_000):
        v = beats[i % len(beats)].tolist()
        if i % 3 == 2:
            kind = kinds[(i // 3) % len(kinds)]
            value, headers = MALFORMED[kind](v)
            bad[kind] += 1
        else:
            value, headers = orjson.dumps({"stream": f"p-{i % 50}", "seq": i, "values": v}), None
            good.add((f"p-{i % 50}", i))
        msgs.append((f"p-{i % 50}".encode(), value, headers))
    d = Daemon(settings(bootstrap, art, t, max_message_bytes=8192), tmp_path / "d.log")
    await d.wait_ready()
    sent = await produce(bootstrap, t["input_topic"], msgs, total=len(msgs), progress=False)
    await drained(bootstrap, t, 3, sent, 120)
    alive = d.proc.poll() is None and d.ready()
    counted = {k: d.metric(f"aemon_invalid_messages_total{{reason={k}}}") for k in kinds}
    assert terminate(d) == 0
    letters: dict[str, int] = {}
    for r in await read_all(bootstrap, t["dlq_topic"]):
        reason = dict(r.headers)["reason"].decode()
        letters[reason] = letters.get(reason, 0) + 1
    seen = await decided(bootstrap, t)
    table.row(
        "malformed messages of 12 kinds interleaved with good ones",
        malformed=sum(bad.values()),
        good=len(good),
        dead_letters=sum(letters.values()),
        by_reason_exact=letters == bad and counted == {k: float(n) for k, n in bad.items()},
        good_missing=len(good - set(seen)),
        alive_and_ready=alive,
    )
    assert sum(bad.values()) >= 10_000 and letters == bad and alive
    assert good <= set(seen)
