"""Prometheus metrics (prefix ``aemon_``, base units, no per-stream labels) and the HTTP endpoints.

``/metrics`` is the text exposition; ``/healthz`` answers 200 unless a stage failed (500);
``/readyz`` answers 200 while the daemon is ready (``health.py``), else 503 with the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from aemon.core.events import RAISED
from aemon.daemon.invalid import REASONS

if TYPE_CHECKING:
    from aemon.daemon.decisions import Decided

ERROR_BUCKETS = tuple(round(1e-4 * 10 ** (k / 3), 10) for k in range(19))  # 1e-4 .. 1e2
SECOND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SIZE_BUCKETS = tuple(float(2**k) for k in range(17))
RAISED_STREAMS = "aemon_raised_threshold_streams"  # the gauge of streams whose threshold is raised


class BulkHistogram(Collector):
    """A histogram fed whole numpy arrays at once (one ``observe`` call per value would cost
    more than scoring the window). Exposed exactly like a ``prometheus_client`` histogram."""

    def __init__(
        self, name: str, doc: str, buckets: tuple[float, ...], registry: CollectorRegistry
    ):
        self.name, self.doc = name, doc
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: above every bound
        self.total = 0.0
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        self.counts += np.bincount(np.searchsorted(self.bounds, v), minlength=len(self.counts))
        self.total += float(v.sum())

    def observe(self, value: float) -> None:
        self.observe_many(np.array([value]))

    def collect(self):
        cumulative = np.cumsum(self.counts)
        buckets = [(repr(float(b)), int(c)) for b, c in zip(self.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", int(cumulative[-1])))
        family = HistogramMetricFamily(self.name, self.doc)
        family.add_metric([], buckets, self.total)
        yield family


class Metrics:
    """Every series the daemon exports, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._decisions(self.registry)
        self._events(self.registry)
        self._health(self.registry)

    def _decisions(self, r: CollectorRegistry) -> None:
        self.windows_scored = Counter("aemon_windows_scored", "Windows scored.", registry=r)
        self.anomalies = Counter("aemon_anomalies", "Windows above the threshold.", registry=r)
        self.invalid = Counter(
            "aemon_invalid_messages", "Messages refused, by reason.", ["reason"], registry=r
        )
        for reason in REASONS:
            self.invalid.labels(reason)
        self.alerts_published = Counter(
            "aemon_alerts_published", "Alerts acknowledged by the broker.", registry=r
        )
        self.reconstruction_error = BulkHistogram(
            "aemon_reconstruction_error", "Anomaly score per window.", ERROR_BUCKETS, r
        )
        self.batch_size = Histogram(
            "aemon_batch_size", "Windows per scored batch.", buckets=SIZE_BUCKETS, registry=r
        )
        self.scoring_duration = Histogram(
            "aemon_scoring_duration_seconds",
            "Model time per batch.",
            buckets=SECOND_BUCKETS,
            registry=r,
        )
        self.end_to_end_latency = BulkHistogram(
            "aemon_end_to_end_latency_seconds", "Message timestamp to decision.", SECOND_BUCKETS, r
        )
        self.consumer_lag = Gauge(
            "aemon_consumer_lag_messages",
            "Messages not decided yet: the high-water mark minus the end of what was decided.",
            ["topic", "partition"],
            registry=r,
        )
        self.reread = Gauge(
            "aemon_reread_messages",
            "Messages decided but not committed yet, which a restart or a replica taking the "
            "partition over reads again (a series' windows, score history and open events).",
            ["topic", "partition"],
            registry=r,
        )
        self.stopped_streams = Gauge(
            "aemon_stopped_streams",
            "Sample streams that sent nothing for longer than their partition's streams' "
            "re-read span, and so hold its commit back, and that the daemon does not end "
            "(end_silent_after_s 0): 'aemon end' ends them (the log names the one holding "
            "the commit furthest back).",
            ["topic", "partition"],
            registry=r,
        )
        self.threshold = Gauge("aemon_threshold", "Calibrated threshold.", ["model"], registry=r)
        self.model_info = Gauge(
            "aemon_model_info",
            "The model in use (value 1).",
            ["model", "version", "family"],
            registry=r,
        )
        self.last_batch = Gauge(
            "aemon_last_batch_timestamp_seconds", "When the last batch was decided.", registry=r
        )

    def _events(self, r: CollectorRegistry) -> None:
        self.events_opened = Counter(
            "aemon_events_opened", "Anomaly events opened (open messages).", registry=r
        )
        self.events_resolved = Counter(
            "aemon_events_resolved", "Anomaly events resolved (resolved messages).", registry=r
        )
        self.events_open = Gauge("aemon_events_open", "Anomaly events open now.", registry=r)
        self.raised_thresholds = Gauge(
            RAISED_STREAMS,
            f"Streams whose adaptive threshold is over {RAISED} times their calibrated one.",
            registry=r,
        )
        self.sample_gaps = Counter(
            "aemon_sample_gaps",
            "Jumps in a sample stream's seq (samples lost upstream, or a stream's samples spread "
            "over partitions): each restarts the stream's window.",
            registry=r,
        )
        self.split_streams = Counter(
            "aemon_split_streams",
            "Sample streams met on a second input partition (messages not keyed by stream).",
            registry=r,
        )
        self.streams_ended = Counter(
            "aemon_streams_ended",
            "Sample streams forgotten at their end marker (an open event resolved, their hold "
            "on the commit released).",
            registry=r,
        )
        self.off_step_streams = Counter(
            "aemon_off_step_streams",
            "Sample streams whose samples came more than twice as often or as seldom as their "
            "model's training samples (each stream counted once).",
            registry=r,
        )
        self.warmup_windows = Counter(
            "aemon_warmup_windows",
            "Windows re-read after a restart only to rebuild a stream's decision state.",
            registry=r,
        )
        self.model_updates = Counter(
            "aemon_model_updates",
            "Streams' models fine-tuned on their stream (continual learning).",
            registry=r,
        )
        self.model_updates_restored = Counter(
            "aemon_model_updates_restored",
            "Streams' model updates found in the learned-models topic instead of trained again.",
            registry=r,
        )
        self.learned_bytes = Gauge(
            "aemon_learned_models_bytes",
            "Bytes of updates' weights held from the learned-models topic (its partitions of the "
            "input partitions this daemon owns).",
            registry=r,
        )
        self.model_update_duration = Histogram(
            "aemon_model_update_duration_seconds",
            "Seconds one stream's model update took in the learning process.",
            buckets=(0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30),
            registry=r,
        )

    def _health(self, r: CollectorRegistry) -> None:
        self.errors = Counter(
            "aemon_errors",
            "Errors retried or fatal, by stage (broker, publish, commit) and error class.",
            ["stage", "kind"],
            registry=r,
        )
        self.broker_reachable = Gauge(
            "aemon_broker_reachable", "1 while the broker answers metadata requests.", registry=r
        )
        self.log_lost = Counter(
            "aemon_input_log_lost",
            "Input logs found lost or reset (topic_missing, offsets_lost, past_end).",
            ["reason"],
            registry=r,
        )
        for reason in ("topic_missing", "offsets_lost", "past_end"):
            self.log_lost.labels(reason)
        self.model_reload_failures = Counter(
            "aemon_model_reload_failures",
            "Changed artifacts refused (the old model kept), and artifacts added to the models "
            "directory that wait for a restart.",
            registry=r,
        )
        self.ready = Gauge("aemon_ready", "1 while /readyz answers 200.", registry=r)
        self.assigned = Gauge(
            "aemon_assigned_partitions", "Input partitions this member owns.", registry=r
        )

    def decided(self, d: Decided) -> None:
        """Count an acknowledged batch's decisions (one of end markers alone scores nothing,
        and may resolve events)."""
        self.alerts_published.inc(d.alerts)
        self.events_opened.inc(d.opened)
        self.events_resolved.inc(d.resolved)
        self.events_open.inc(d.opened - d.resolved)
        self.raised_thresholds.inc(d.raised)
        if d.scored is None:
            return
        now, n = time.time(), d.batch.n
        self.windows_scored.inc(d.decided)
        self.anomalies.inc(d.anomalies)
        self.warmup_windows.inc(d.warmup)
        self.off_step_streams.inc(d.off_step)
        self.batch_size.observe(n)
        self.scoring_duration.observe(d.scored.seconds)
        self.reconstruction_error.observe_many(d.scored.scores)
        self.end_to_end_latency.observe_many(now - np.asarray(d.batch.kafka_ts))
        self.last_batch.set(now)

    def forget_lag(self, topic: str, partition: int) -> None:
        for gauge in (self.consumer_lag, self.reread, self.stopped_streams):
            with contextlib.suppress(KeyError):
                gauge.remove(topic, str(partition))

    def set_models(self, models: list[tuple[str, str, str, float]]) -> None:
        """Point the model series at the models in use (name, version, family, threshold),
        removing labels of models gone. One label value per model: bounded by the models
        directory, not by the streams."""
        self.model_info.clear()
        self.threshold.clear()
        for name, version, family, threshold in models:
            self.model_info.labels(name, version, family).set(1)
            self.threshold.labels(name).set(threshold)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Exposed(Protocol):
    def exposition(self) -> bytes: ...


class Probed(Protocol):
    failed: str | None

    def alive(self) -> bool: ...
    def problems(self) -> list[str]: ...


async def serve_http(metrics: Exposed, health: Probed, host: str, port: int) -> asyncio.Server:
    """Start the HTTP endpoints (the daemon's, ``aemon notify``'s); the caller closes the
    returned server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition()
            elif path == "/healthz":
                ok = health.alive()
                status = "200 OK" if ok else "500 Internal Server Error"
                ctype, body = "text/plain", b"ok\n" if ok else f"{health.failed}\n".encode()
            elif path == "/readyz":
                problems = health.problems()
                status = "503 Service Unavailable" if problems else "200 OK"
                ctype, body = "text/plain", "\n".join(problems or ["ready"]).encode() + b"\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
