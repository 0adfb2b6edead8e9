"""``aemon bench``: the scorer alone, and the full daemon path beside a bare decode loop.

In one run and on the same topic: (a) a bare aiokafka loop that only decodes each message into a
float32 batch, and (b) the whole daemon (decode, batch, score, decide, publish, commit). Then the
decision latency (input message timestamp to the per-window score record's timestamp, both set
on this machine) at two fixed input rates: half the full path's measured maximum, and 5,000
windows/s. Beside them, the daemon's strict decoder against the bare loop's decoding on the same
records in memory (:func:`decode_ratio`), which says how much of the gap is decoding, and the CPU
time each loop's event loop thread spent a window (the full path's whole process beside it, its
scoring thread included), which says how much more work that thread does for the daemon.

The windows are the detector's held-out *normal* windows, as a monitored stream mostly is; the
alerts they still raise (false positives at the calibrated threshold) are published like any
other, and their rate is reported beside the figures.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from tqdm.auto import tqdm

from aemon.core.detector import Detector
from aemon.core.table import WindowTable, write_windows
from aemon.daemon.codec import Limits, decode_windows
from aemon.daemon.config import Settings, local
from aemon.daemon.kafka import FETCH_RECORDS, GroupConsumer, kafka_clients
from aemon.daemon.scoring import settle_heap
from aemon.daemon.service import Service
from aemon.replay import messages, produce
from aemon.tools.broker import EmbeddedBroker, create_topics, free_port
from aemon.tools.harness import started, until_decided
from aemon.tools.scorer_bench import windows_per_second
from aemon.tools.topics import read_topic

PARTITIONS = 3
STREAMS = 16
FIXED_RATE = 5_000  # windows/s: latency at a rate a service might see, beside half the maximum


def _table(windows: np.ndarray, n: int) -> WindowTable:
    """``n`` windows cycled from ``windows``, spread over ``STREAMS`` streams, seq 0..n-1."""
    return WindowTable(
        np.resize(windows, (n, *windows.shape[1:])),
        stream=np.array([f"b{i % STREAMS}" for i in range(n)]),
        seq=np.arange(n, dtype=np.int64),
    )


def _settings(bootstrap: str, model: Path, topic: str, **extra: object) -> Settings:
    return local(model, bootstrap, "bench", input_topic=topic, **extra)


class Clocks(NamedTuple):
    """Wall time, this thread's CPU time and this process's (all its threads'), in seconds."""

    wall: float
    thread: float
    process: float

    @classmethod
    def now(cls) -> Clocks:
        return cls(time.monotonic(), time.thread_time(), time.process_time())

    def __sub__(self, start: Clocks) -> Clocks:
        return Clocks(*(a - b for a, b in zip(self, start, strict=True)))


async def bare_loop(
    bootstrap: str, topic: str, n: int, shape: tuple[int, ...], fmt: str, batch: int
) -> Clocks:
    """The time a loop that only fetches (as many records a call as the daemon) and decodes into
    a float32 batch of ``batch`` rows takes for ``n`` windows, from its first fetch that returned
    records (on the event loop's thread)."""
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,  # as the daemon's consumer
        fetch_max_wait_ms=Settings().fetch_max_wait_ms,
    )
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        rows = np.empty((batch, *shape), dtype=np.float32)
        flat = rows.reshape(batch, -1)
        count, first = 0, None
        while count < n:
            fetched = await c.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
            if fetched and first is None:
                first = Clocks.now()
            for recs in fetched.values():
                for r in recs:
                    i = count % batch
                    if fmt == "f32":
                        flat[i] = np.frombuffer(r.value, dtype="<f4")
                    else:
                        flat[i] = orjson.loads(r.value)["values"]
                    count += 1
        assert first is not None
        return Clocks.now() - first
    finally:
        await c.stop()


def decode_ratio(windows: np.ndarray, fmt: str, batch: int, rounds: int = 7) -> float:
    """The daemon's strict decoder (:func:`decode_windows`) against the bare loop's decoding,
    on the same records in memory (no Kafka): the median of paired rounds' speed ratios."""
    shape = windows.shape[1:]
    recs = [
        ConsumerRecord("bench", 0, i, 1_700_000_000_000, 0, key, value, None, 0, 0, headers or ())
        for i, (key, value, headers) in enumerate(messages(_table(windows, 4 * batch), fmt))
    ]
    rows = np.empty((batch, *shape), dtype=np.float32)
    flat = rows.reshape(batch, -1)

    def bare() -> None:
        for i, r in enumerate(recs):
            if fmt == "f32":
                flat[i % batch] = np.frombuffer(r.value, dtype="<f4")
            else:
                flat[i % batch] = orjson.loads(r.value)["values"]

    def daemon() -> None:
        for i in range(0, len(recs), batch):
            decode_windows(recs[i : i + batch], rows, Limits())

    ratios = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        bare()
        t1 = time.perf_counter()
        daemon()
        ratios.append((t1 - t0) / (time.perf_counter() - t1))
    return float(np.median(ratios))


class Stopwatch:
    """The daemon's consumer, timed from its first fetch that returned records to its last
    commit (the full path's time, start-up and drain left out); both run on the event loop's
    thread, so :meth:`spent` also says that thread's CPU time and the process's."""

    def __init__(self, consumer: GroupConsumer) -> None:
        self.consumer = consumer
        self.first_fetch: Clocks | None = None
        self.last_commit: Clocks | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)

    async def getmany(self, **kw: Any) -> dict:
        fetched = await self.consumer.getmany(**kw)
        if fetched and self.first_fetch is None:
            self.first_fetch = Clocks.now()
        return fetched

    async def commit(self, offsets: dict) -> None:
        await self.consumer.commit(offsets)
        self.last_commit = Clocks.now()

    def spent(self) -> Clocks:
        assert self.first_fetch is not None and self.last_commit is not None
        return self.last_commit - self.first_fetch


async def _full_path(
    bootstrap: str, model: Path, topic: str, n: int, extra: dict
) -> tuple[Service, Stopwatch]:
    s = _settings(bootstrap, model, topic, **extra)
    await create_topics(bootstrap, {s.alerts_topic: 1, s.dlq_topic: 1})
    clients = kafka_clients(s)
    watch = Stopwatch(clients.consumer)  # type: ignore[arg-type]
    clients.consumer = watch  # type: ignore[assignment]
    svc = Service(s, clients)
    task = asyncio.create_task(svc.run())
    # looked at 10 times a second, not 100: each look is work on the daemon's thread (about
    # 0.1 us a window at 100), which the bare loop does not pay; its end is the last commit's
    await until_decided(svc, task, n, poll_s=0.1)
    svc.stop()
    await task
    return svc, watch


def _cpu_per_window(bares: list[Clocks], fulls: list[Clocks], n: int) -> dict[str, float]:
    """CPU microseconds a window (medians over the rounds): the event loop's thread in each
    loop, and the whole process (the scoring thread too) in the full path."""

    def per(spent: list[float]) -> float:
        return round(float(np.median(spent)) / n * 1e6, 3)

    return {
        "bare_loop_thread": per([b.thread for b in bares]),
        "full_loop_thread": per([f.thread for f in fulls]),
        "full_process": per([f.process for f in fulls]),
    }


class FetchClock:
    """The daemon's consumer, noting when each record was fetched (wall clock, milliseconds,
    as record timestamps are), by partition and offset."""

    def __init__(self, consumer: GroupConsumer) -> None:
        self.consumer = consumer
        self.fetched: dict[tuple[int, int], float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)

    async def getmany(self, **kw: Any) -> dict:
        fetched = await self.consumer.getmany(**kw)
        now = time.time() * 1000
        for tp, records in fetched.items():
            for r in records:
                self.fetched[(tp.partition, r.offset)] = now
        return fetched


class Latency(NamedTuple):
    """Percentiles (p50, p99) in milliseconds: input timestamp to decision, and its two parts."""

    total: tuple[float, float]
    to_fetch: tuple[float, float]  # input timestamp -> the daemon's fetch (producer, broker)
    in_daemon: tuple[float, float]  # fetch -> the window's score record


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


async def latency(
    bootstrap: str, model: Path, windows: np.ndarray, fmt: str, rate: float, seconds: float
) -> Latency:
    """Milliseconds from input timestamp to the window's score record, at ``rate``, and where
    they went: before the daemon fetched the record, and in the daemon.

    The input comes from ``aemon replay --rate`` in its own process, as from a real producer.
    """
    tag = uuid.uuid4().hex[:8]
    topic, scores = f"bench-lat-{tag}", f"bench-scores-{tag}"
    n = max(200, int(rate * seconds))
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "windows.csv"
        write_windows(csv, _table(windows, n))
        s = _settings(bootstrap, model, topic, scores_topic=scores, auto_offset_reset="latest")
        await create_topics(
            bootstrap, {topic: PARTITIONS, scores: 1, s.alerts_topic: 1, s.dlq_topic: 1}
        )
        clients = kafka_clients(s)
        clock = FetchClock(clients.consumer)  # type: ignore[arg-type]
        clients.consumer = clock  # type: ignore[assignment]
        svc = Service(s, clients)
        task = await started(svc)
        feeder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aemon.cli",
            "replay",
            str(csv),
            "--topic",
            topic,
            "--rate",
            str(rate),
            "--format",
            fmt,
            "--bootstrap-servers",
            bootstrap,
            "--quiet",
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await feeder.wait() != 0:
            raise RuntimeError("the bench's replay process failed")
        await until_decided(svc, task, n)
        svc.stop()
        await task
    decided_at = await timestamps(bootstrap, scores, score_key)
    total, to_fetch, in_daemon = [], [], []
    for r in await read_topic(bootstrap, topic, timeout=120):
        decided = decided_at.get(record_key(r, fmt))
        fetched = clock.fetched.get((r.partition, r.offset))
        if decided is not None and fetched is not None:
            total.append(decided - r.timestamp)
            to_fetch.append(fetched - r.timestamp)
            in_daemon.append(decided - fetched)
    return Latency(_percentiles(total), _percentiles(to_fetch), _percentiles(in_daemon))


def score_key(r) -> tuple[str, int]:
    doc = orjson.loads(r.value)
    return doc["stream"], doc["seq"]


def record_key(r, fmt: str) -> tuple[str, int]:
    if fmt == "f32":
        h = dict(r.headers)
        return h["stream"].decode(), int(h["seq"])
    doc = orjson.loads(r.value)
    return doc["stream"], doc["seq"]


async def timestamps(bootstrap: str, topic: str, key) -> dict:
    """Each record's timestamp in ``topic``, by ``key(record)``."""
    return {key(r): r.timestamp for r in await read_topic(bootstrap, topic, timeout=120)}


async def run(
    model: Path,
    windows: np.ndarray,
    n: int,
    bootstrap: str | None,
    rounds: int = 5,
    progress: bool = True,
) -> dict:
    """The whole benchmark over ``rounds`` alternating bare/full reads of one topic.

    Throughputs are medians over the rounds; the ratio is the median of each round's full/bare
    ratio, so that the machine's speed drifting between rounds (seen here: 2x within a minute on
    2 shared cores) cancels out as far as it can.
    """
    broker = None if bootstrap else await EmbeddedBroker(free_port()).start()
    bootstrap = bootstrap or broker.bootstrap
    detector = Detector.load(model)
    batch = Settings().max_batch
    result: dict[str, object] = {
        "windows": n,
        "rounds": rounds,
        "scorer": {
            "wps": round(windows_per_second(detector, windows, batch, seconds=2.0)),
            "batch": batch,
            "device": str(detector.device),
        },
    }
    settle_heap()  # as the daemon does at start, so both loops run under the same collector
    steps = tqdm(total=2 * (2 * rounds + 1), desc="bench", disable=None if progress else True)
    try:
        for fmt in ("json", "f32"):
            topic = f"bench-{fmt}-{uuid.uuid4().hex[:8]}"
            await create_topics(bootstrap, {topic: PARTITIONS})
            await produce(
                bootstrap, topic, messages(_table(windows, n), fmt), total=n, progress=False
            )
            bares: list[Clocks] = []
            fulls: list[Clocks] = []
            alerts = 0.0
            for _ in range(rounds):
                bares.append(await bare_loop(bootstrap, topic, n, detector.input_shape, fmt, batch))
                steps.update()
                svc, watch = await _full_path(bootstrap, model, topic, n, {})
                fulls.append(watch.spent())
                alerts = svc.totals.alerts
                steps.update()
            bare = float(np.median([n / b.wall for b in bares]))
            full = float(np.median([n / f.wall for f in fulls]))
            paired = [b.wall / f.wall for f, b in zip(fulls, bares, strict=True)]
            decode = decode_ratio(windows, fmt, FETCH_RECORDS)
            half = await latency(bootstrap, model, windows, fmt, full / 2, seconds=4.0)
            fixed = await latency(bootstrap, model, windows, fmt, FIXED_RATE, seconds=4.0)
            steps.update()
            result[fmt] = {
                "bare_wps": round(bare),
                "full_wps": round(full),
                "ratio": round(float(np.median(paired)), 3),
                "round_ratios": [round(r, 3) for r in paired],
                "decode_ratio": round(decode, 3),
                "cpu_us_per_window": _cpu_per_window(bares, fulls, n),
                "p50_ms": round(half.total[0], 2),
                "p99_ms": round(half.total[1], 2),
                "rate": round(full / 2),
                "fixed_rate": FIXED_RATE,
                "fixed_p50_ms": round(fixed.total[0], 2),
                "fixed_p99_ms": round(fixed.total[1], 2),
                # where the time went at the fixed rate: up to the fetch, then in the daemon
                "fixed_to_fetch_ms": [round(v, 2) for v in fixed.to_fetch],
                "fixed_in_daemon_ms": [round(v, 2) for v in fixed.in_daemon],
                "alert_rate": round(alerts / n, 4),
            }
    finally:
        steps.close()
        if broker:
            broker.stop()
    return result
