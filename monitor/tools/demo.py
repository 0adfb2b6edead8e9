"""``aemon demo``: the whole system on embedded defaults, in one process tree.

Train (or reuse) the ECG5000 detector, start the embedded broker and the daemon, replay the
held-out beats, show a live view, print a summary, stop everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from aemon.core.artifact import read_meta
from aemon.core.errors import AemonError
from aemon.core.table import read_windows, write_windows
from aemon.daemon.config import Settings
from aemon.daemon.service import Service
from aemon.replay import replay
from aemon.tools.broker import EmbeddedBroker, create_topics, free_port
from aemon.tools.harness import started


def ensure_model(cache: Path, progress: bool) -> tuple[Path, Path]:
    """The cached detector and its held-out CSV; trained (default preset) when missing or bad."""
    model, holdout = cache / "ecg", cache / "ecg-test.csv"
    try:
        read_meta(model)
        if holdout.is_file():
            print(f"reusing the detector in {model}", file=sys.stderr)
            return model, holdout
    except AemonError:
        pass
    import aemon
    from aemon.training.datasets import ecg5000

    print("training the ECG5000 detector (default preset)...", file=sys.stderr)
    split = ecg5000.split(ecg5000.load())
    det = aemon.fit(
        split.train.values, split.train.label, preset="ecg", name="ecg5000", progress=progress
    )
    det.save(model)
    det.report(model / "report", split.test.values, split.test.label)
    write_windows(holdout, split.test)
    return model, holdout


class Tally:
    """Alerts read back from the alerts topic, scored against the held-out labels."""

    def __init__(self, labels: dict[tuple[str, int], int]) -> None:
        self.labels = labels
        self.alerted: set[tuple[str, int]] = set()

    @property
    def tp(self) -> int:
        return sum(self.labels.get(k, 0) for k in self.alerted)

    def precision(self) -> float:
        return self.tp / len(self.alerted) if self.alerted else 0.0

    def recall(self) -> float:
        positives = sum(self.labels.values())
        return self.tp / positives if positives else 0.0


async def _read_alerts(bootstrap: str, topic: str, tally: Tally, stop: asyncio.Event) -> None:
    c = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await c.start()
    try:
        while not stop.is_set():
            for recs in (await c.getmany(timeout_ms=200)).values():
                for r in recs:
                    a = orjson.loads(r.value)
                    tally.alerted.add((a["stream"], a["seq"]))
    finally:
        await c.stop()


async def run(cache: Path, rate: float, metrics_port: int, progress: bool = True) -> dict:
    t0 = time.monotonic()
    model, holdout = ensure_model(cache, progress)
    table = read_windows(holdout)
    labels = {
        (str(s), int(q)): int(y)
        for s, q, y in zip(table.stream, table.seq, table.label, strict=True)
    }
    async with EmbeddedBroker(free_port()) as broker:
        s = dataclasses.replace(
            Settings(),
            model=str(model),
            bootstrap_servers=broker.bootstrap,
            metrics_port=metrics_port,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            scores_topic="aemon.scores",
        )
        await create_topics(
            broker.bootstrap,
            {s.input_topic: 3, s.alerts_topic: 1, s.dlq_topic: 1, s.scores_topic: 1},
        )
        svc = Service(s)
        daemon = await started(svc)
        url = f"http://{s.metrics_host}:{svc.http_port}/metrics"
        print(
            f"broker {broker.bootstrap} (in memory)  daemon ready  metrics {url}", file=sys.stderr
        )
        tally, stop = Tally(labels), asyncio.Event()
        reader = asyncio.create_task(_read_alerts(broker.bootstrap, s.alerts_topic, tally, stop))
        feeding = asyncio.create_task(
            replay(holdout, s.input_topic, broker.bootstrap, rate=rate, progress=False)
        )
        value = svc.metrics.registry.get_sample_value
        start = then = time.monotonic()
        last, finished = 0, False
        while not finished:
            await asyncio.sleep(0.5)
            totals = svc.totals
            scored = totals.windows
            finished = scored >= len(table) and len(tally.alerted) >= totals.anomalies
            lag = sum(
                value("aemon_consumer_lag_messages", {"topic": s.input_topic, "partition": str(p)})
                or 0
                for p in range(3)
            )
            # The last half-second's rate while it runs; the whole run's at the end (the last
            # interval holds only the remainder, and read as a slowdown).
            now = time.monotonic()
            wps = scored / (now - start) if finished else (scored - last) / (now - then)
            last, then = scored, now
            print(
                f"\r{scored:6d}/{len(table)} windows  {wps:6.0f}/s  anomalies "
                f"{totals.anomalies:4d}  precision {tally.precision():.3f}  "
                f"recall {tally.recall():.3f}  lag {lag:3.0f}",
                end="",
                file=sys.stderr,
            )
            if time.monotonic() - start > 120:
                raise AemonError("the demo did not finish within 2 minutes")
        print(file=sys.stderr)
        await feeding
        stop.set()
        await reader
        summary = {
            "windows": svc.totals.windows,
            "anomalies": svc.totals.anomalies,
            "precision": round(tally.precision(), 4),
            "recall": round(tally.recall(), 4),
            "model_version": svc.detector.version,
            "threshold": svc.detector.threshold,
            "seconds": round(time.monotonic() - t0, 1),
        }
        svc.stop()
        await daemon
    return summary
