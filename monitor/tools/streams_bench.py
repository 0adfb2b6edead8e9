"""``aemon bench --streams``: one daemon serving N telemetry streams of raw samples.

One series model trained for any stream (``train series --any-stream``, the defaults: windows
of 8, adaptive threshold over 2,000 windows learned 300 windows late, events on) serves every
stream; the daemon windows each stream's samples and keeps each stream's windowing and decision
state apart. Per N, on the embedded broker, with per-window score records published:

1. **Throughput**: N streams x ``samples`` interleaved samples (as many machines report at
   once), already in the topic; windows/s from the daemon's first fetch to its last window decided.
2. **Latency**: then ``LATENCY_RATE`` samples/s more from ``aemon replay`` in its own process
   for a few seconds; p50/p99 from each sample's timestamp to its window's score record.
3. **Memory**: the growth of this process's RSS over both phases, per stream.
4. **Restart** (models that learn): one more sample of each stream, and the daemon restarted in
   its group, once finding the updates it kept in the learned-models topic and once without the
   topic (training again what its re-read needs); seconds from its start until it has decided
   every stream's new window.

With learning (``--learn on``), each N runs twice, the same model without and with learning
(its updates in the daemon's learning process while the others are scored), so the cost of
learning is a ratio measured in one run. With ``without_seq`` each also runs again with samples
that carry no seq (as Telegraf and prometheus-kafka-adapter send theirs: the daemon counts each
stream, and keeps their anchors with its commits), so their cost is a ratio too.

A stream's state at a full history (its windowing buffer and window starts, its decider's
2,300 scores) is measured apart (:func:`state_bytes`): the phases above give each stream only a
few windows when N is large.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from aemon.core.events import DEFAULT_EVENT_RULE, Decider, Rule
from aemon.core.learning import Learning
from aemon.core.windowing import Windower
from aemon.daemon.batching import Batch
from aemon.daemon.config import Settings, local
from aemon.daemon.decisions import Decisions
from aemon.daemon.kafka import kafka_clients
from aemon.daemon.service import Service
from aemon.replay import replay
from aemon.tools.bench import Stopwatch, record_key, score_key, timestamps
from aemon.tools.broker import create_topics
from aemon.tools.harness import started, until_decided

TOTAL = 200_000  # samples in the throughput phase, split over the streams
MIN_SAMPLES = 30  # per stream at least (each gives samples - 7 windows)
LATENCY_RATE = 2_000  # samples/s
LATENCY_SECONDS = 5.0
LENGTH = 8


def _frame(streams: int, first: int, count: int) -> pd.DataFrame:
    """``count`` samples of each stream from per-stream index ``first``, interleaved: a daily
    wave (288 samples a day) with its own phase per stream, plus noise."""
    seq = np.repeat(np.arange(first, first + count), streams)
    who = np.tile(np.arange(streams), count)
    rng = np.random.default_rng(first)
    value = np.sin(2 * np.pi * seq / 288 + who) + 0.05 * rng.standard_normal(len(seq))
    return pd.DataFrame(
        {
            "timestamp": 1_700_000_000 + 300 * seq,
            "stream": [f"m{i}" for i in who],
            "seq": seq,
            "value": value,
        }
    )


def train_model(out: Path, learning: Learning | None = None) -> Path:
    """The any-stream model the bench serves, fitted on three machines' 2,000 samples, that
    does not learn; with ``learning``, the same model (the same seed) that keeps learning on
    each stream."""
    import aemon

    learn: dict[str, object] = {"learn": False}
    if learning is not None:
        learn = {
            "learn_every": learning.every,
            "learn_span": learning.span,
            "learn_epochs": learning.epochs,
            "learn_delay": learning.delay,
        }
    aemon.fit_series(_frame(3, 0, 2000), any_stream=True, epochs=10, **learn).save(out)
    return out


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def one(
    bootstrap: str,
    models: Path,
    streams: int,
    tmp: Path,
    per_stream: int | None = None,
    learn_processes: int = 1,
    with_seq: bool = True,
) -> dict[str, object]:
    """The three phases for ``streams`` streams (see the module's docstring); ``per_stream``
    samples of each in the throughput phase (default: ``TOTAL`` over the streams); updates
    trained by ``learn_processes`` processes; samples without seq unless ``with_seq``."""
    samples = max(MIN_SAMPLES, per_stream or TOTAL // streams)
    tag = uuid.uuid4().hex[:8]
    scores = f"streams-scores-{tag}"
    s = local(
        models,
        bootstrap,
        f"streams-{streams}",
        scores_topic=scores,
        learn_processes=learn_processes,
    )
    await create_topics(
        bootstrap,
        {s.input_topic: 3, scores: 1, s.alerts_topic: 1, s.dlq_topic: 1, s.learned_topic: 3},
        compacted={s.learned_topic},
    )
    first = tmp / f"first-{tag}.csv"
    _frame(streams, 0, samples).to_csv(first, index=False)
    counted = {"without_seq": not with_seq, "samples": True, "progress": False}
    await replay(first, s.input_topic, bootstrap, **counted)
    windows = streams * (samples - LENGTH + 1)
    clients = kafka_clients(s)
    watch = Stopwatch(clients.consumer)  # type: ignore[arg-type]
    clients.consumer = watch  # type: ignore[assignment]
    rss0 = _rss_kb()
    svc = Service(s, clients)
    task = await started(svc)
    try:
        await until_decided(svc, task, windows, timeout=1800)
        # to the last window decided: the commits do not say it, as a stream's offsets are held
        # back (its windows' history) until the stream has more windows than these runs give it
        assert watch.first_fetch is not None
        wps = windows / (time.monotonic() - watch.first_fetch.wall)
        more = max(1, round(LATENCY_RATE * LATENCY_SECONDS / streams))
        second = tmp / f"second-{tag}.csv"
        _frame(streams, samples, more).to_csv(second, index=False)
        feeder = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "aemon.cli", "replay", str(second), "--samples", "--quiet"),
            *("--topic", s.input_topic, "--rate", str(LATENCY_RATE)),
            *("--bootstrap-servers", bootstrap),
            *(() if with_seq else ("--without-seq",)),
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await feeder.wait() != 0:
            raise RuntimeError("the bench's replay process failed")
        await until_decided(svc, task, windows + streams * more, timeout=600)
        rss1 = _rss_kb()
        updates = svc.metrics.registry.get_sample_value("aemon_model_updates_total") or 0.0
    finally:
        svc.stop()
        await task
    restarts: dict[str, object] = {}
    if svc.models.learning:
        total = samples + more
        for kept, topic in (("retrained", ""), ("kept", s.learned_topic)):
            step = tmp / f"{kept}-{tag}.csv"
            _frame(streams, total, 1).to_csv(step, index=False)
            await replay(step, s.input_topic, bootstrap, **counted)
            # no score records: the latency above reads the first one of each window
            again = dataclasses.replace(s, learned_topic=topic, scores_topic="")
            restarts[kept] = await restart(again, streams, total)
            total += 1
    sent = await timestamps(bootstrap, s.input_topic, sample_key(with_seq))
    decided = await timestamps(bootstrap, scores, score_key)
    late = [decided[k] - sent[k] for k in sent if k[1] >= samples and k in decided]
    return {
        "streams": streams,
        "learning": svc.models.learning,
        "seq": with_seq,
        "learn_processes": s.learn_processes,
        "model_updates": int(updates),
        "samples_per_stream": samples + more,
        "windows_per_s": round(wps),
        "p50_ms": round(float(np.percentile(late, 50)), 1),
        "p99_ms": round(float(np.percentile(late, 99)), 1),
        "latency_rate": LATENCY_RATE,
        "rss_growth_mb": round((rss1 - rss0) / 1024, 1),
        "kb_per_stream": round((rss1 - rss0) / streams, 1),
        **({"restart": restarts} if restarts else {}),
    }


def sample_key(with_seq: bool) -> Callable[[Any], tuple[str, int]]:
    """(stream, seq) of each sample record read in order: its own seq, or without one the
    count of its stream's records before it (the seq the daemon gives it)."""
    if with_seq:
        return lambda r: record_key(r, "json")
    counts: dict[str, int] = {}

    def counted(r: Any) -> tuple[str, int]:
        stream = orjson.loads(r.value)["stream"]
        counts[stream] = seq = counts.get(stream, -1) + 1
        return stream, seq

    return counted


class Reached:
    """The daemon's decisions, counting the windows decided of seq ``seq`` or later."""

    def __init__(self, decisions: Decisions, seq: int) -> None:
        self.decisions, self.seq, self.count = decisions, seq, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decisions, name)

    def decide(self, batch: Batch, scored: Any, stale: set[int]) -> Any:
        d = self.decisions.decide(batch, scored, stale)
        self.count += sum(q >= self.seq for q in batch.seqs[: batch.n])
        return d


async def restart(s: Settings, streams: int, seq: int) -> dict[str, float]:
    """A daemon of ``s``'s group started again: seconds until it has decided each of the
    ``streams`` streams' window ``seq``, and the updates it trained and found kept meanwhile."""
    svc = Service(s)
    reached = Reached(svc.decisions, seq)
    svc.decisions = reached  # type: ignore[assignment]
    start = time.monotonic()
    task = await started(svc)
    try:
        deadline = start + 3600
        while reached.count < streams:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{reached.count} of {streams} new windows decided")
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - start
        get = svc.metrics.registry.get_sample_value
        trained = get("aemon_model_updates_total") or 0.0
        restored = get("aemon_model_updates_restored_total") or 0.0
    finally:
        svc.stop()
        await task
    return {"seconds": round(seconds, 1), "trained": int(trained), "restored": int(restored)}


def state_bytes(streams: int = 50) -> int:
    """Bytes a stream's state holds at a full history with the default event rule: its
    windower buffer and window starts, and its decider (scores, their sorted copy, verdicts)."""
    rule = Rule(threshold=1.0, seed=(0.5,) * 64, **DEFAULT_EVENT_RULE)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    scores = rng.random(rule.history + 50).tolist()
    row = np.empty(LENGTH, dtype=np.float32)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        w = Windower(LENGTH, 1, history=rule.history)
        deciders = []
        for i in range(streams):
            d = Decider(rule, f"m{i}")
            for j, score in enumerate(scores):
                w.push(0, j, f"m{i}", j, np.float32([score]), row)
                d.push(j, float(j), score)
            deciders.append(d)
        return (tracemalloc.get_traced_memory()[0] - before) // streams
    finally:
        tracemalloc.stop()


async def run(
    bootstrap: str,
    counts: tuple[int, ...],
    step: Callable[[], None] | None = None,
    per_stream: int | None = None,
    learning: Learning | None = None,
    learn_processes: int = 1,
    without_seq: bool = False,
) -> dict[str, object]:
    """Every count's row, and the state of one stream at a full history; with ``learning``,
    each count also with the model that keeps learning, right after the one that does not; with
    ``without_seq``, each of those also with samples that carry no seq, right after."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = [train_model(Path(tmp) / "models")]
        if learning is not None:
            variants.append(train_model(Path(tmp) / "learning", learning))
        seqs = (True, False) if without_seq else (True,)
        for n in counts:
            for models in variants:
                for with_seq in seqs:
                    rows.append(
                        await one(
                            bootstrap, models, n, Path(tmp), per_stream, learn_processes, with_seq
                        )
                    )
            if step:
                step()
    return {"rows": rows, "state_bytes_per_stream": state_bytes()}
