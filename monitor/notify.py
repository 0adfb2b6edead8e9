"""``aemon notify``: what the daemon publishes on its alerts topic, sent on to Alertmanager, which
routes it to people (pager, chat, e-mail) as it routes Prometheus's alerts.

An event's ``open`` message fires an Alertmanager alert (labels: ``alertname="AemonAnomaly"``,
``stream``, ``model``, ``event_id``, ``severity`` and any given), sent again every ``resend_s``
with an end ``ENDS_AFTER`` resends ahead, as Prometheus sends its alerts: should the notifier
stop, Alertmanager resolves them by itself. Its ``resolved`` message ends that alert at the
event's resolved time. A window alert (models without events) fires its stream's
``AemonWindowAnomaly`` alert, which ends ``ENDS_AFTER`` resends after its stream's last one.

Delivery: offsets are committed only once Alertmanager accepted what they carried, and never
past the ``open`` message of an event still open, so a notifier that restarts (or another that
takes the partition over) reads it again and fires it again; Alertmanager merges an alert sent
twice (its labels are its identity).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from aemon.core.errors import AemonError, ConfigError
from aemon.core.times import iso
from aemon.daemon.config import Settings
from aemon.daemon.logs import Throttled
from aemon.daemon.metrics import serve_http
from aemon.daemon.stopping import STOPPED, pause, unless_stopped

log = logging.getLogger("aemon.notify")
ENDS_AFTER = 4  # resends: how long Alertmanager keeps an alert firing that is not sent again
BACKOFF_S = (1.0, 30.0)


@dataclass
class Notifier:
    """Alerts topic records -> Alertmanager alerts, and the events still open, by partition."""

    labels: dict[str, str] = field(default_factory=dict)  # added to every alert
    severity: str = "warning"
    resend_s: float = 60.0
    open: dict[int, dict[str, tuple[int, dict[str, Any]]]] = field(default_factory=dict)

    def take(self, partition: int, offset: int, value: bytes | None, now: float) -> dict | None:
        """The Alertmanager alert one record makes (None: a record that is neither an event nor
        an alert of the daemon's), noting the events it opens and resolves."""
        try:
            doc = orjson.loads(value or b"")
            if not isinstance(doc, dict) or not isinstance(doc.get("stream"), str):
                return None
            if "event_id" in doc:
                alert = self._event(doc, now)
            elif "alert_id" in doc:
                return self._window(doc, now)
            else:
                return None
        except (KeyError, TypeError, ValueError, OverflowError, OSError):  # JSONDecodeError too
            return None  # not written by the daemon: left alone
        held = self.open.setdefault(partition, {})
        if doc.get("state") == "open":
            # A stream has one event open at a time: one held of it under another id lost its
            # resolution (an event open while the daemon was upgraded to other ids, or its
            # model swapped) and is let expire, not sent on for good.
            stream = doc["stream"]
            for other in [e for e, (_, a) in held.items() if a["labels"]["stream"] == stream]:
                del held[other]
            held[str(doc["event_id"])] = (offset, alert)
        else:
            held.pop(str(doc["event_id"]), None)
        return alert

    def firing(self, now: float, sent: Iterable[dict] = ()) -> list[dict]:
        """Every open event's alert, its end moved ahead (what is sent every ``resend_s``),
        but those of events among ``sent`` (this round's, which say it already)."""
        ends = iso(now + ENDS_AFTER * self.resend_s)
        said = {a["labels"].get("event_id") for a in sent}
        return [
            {**a, "endsAt": ends}
            for held in self.open.values()
            for event, (_, a) in held.items()
            if event not in said
        ]

    def committable(self, partition: int, next_offset: int) -> int:
        """The offset to commit after ``next_offset - 1``: never past an open event's opening."""
        return min([next_offset, *(o for o, _ in self.open.get(partition, {}).values())])

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the events of partitions no longer read here (their next reader re-reads them
        from the committed offset)."""
        for p in partitions:
            self.open.pop(p, None)

    def _labels(self, alertname: str, doc: dict, **more: str) -> dict[str, str]:
        return {
            **self.labels,
            "alertname": alertname,
            "severity": self.severity,
            "stream": doc["stream"],
            "model": str(doc.get("model", "")),
            **more,
        }

    def _event(self, doc: dict, now: float) -> dict:
        moved = ", ".join(
            f"{m.get('metric')} {m.get('share', 0):.0%}"
            for m in doc.get("top_metrics") or ()
            if isinstance(m, dict)
        )
        described = (
            f"{doc.get('windows_above')} windows above the threshold, peak score "
            f"{doc.get('peak_score')}"
            + (f"; moved most: {moved}" if moved else "")
            + ("; resolved because its stream ended" if doc.get("ended") is True else "")
        )
        start = float(doc.get("start_ts", now))
        resolved = doc.get("state") == "resolved" and doc.get("resolved_ts") is not None
        ends = float(doc["resolved_ts"]) if resolved else now + ENDS_AFTER * self.resend_s
        return {
            "labels": self._labels("AemonAnomaly", doc, event_id=str(doc["event_id"])),
            "annotations": {
                "summary": f"anomaly on {doc['stream']} since {iso(start)}",
                "description": described,
                "model_version": str(doc.get("model_version", "")),
            },
            "startsAt": iso(start),
            "endsAt": iso(max(ends, start)),
        }

    def _window(self, doc: dict, now: float) -> dict:
        ts = float(doc.get("ts", now))
        return {
            "labels": self._labels("AemonWindowAnomaly", doc),
            "annotations": {
                "summary": f"anomalous window on {doc['stream']}",
                "description": f"window {doc.get('seq')}: score {doc.get('score')} above "
                f"{doc.get('threshold')}",
                "model_version": str(doc.get("model_version", "")),
            },
            "startsAt": iso(ts),
            "endsAt": iso(max(now, ts) + ENDS_AFTER * self.resend_s),
        }


def post(url: str, alerts: list[dict], timeout: float = 10.0) -> None:
    """POST ``alerts`` to Alertmanager's API (raises on anything but 2xx)."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v2/alerts",
        data=orjson.dumps(alerts),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


class Watched:
    """What ``aemon notify`` exports (``/metrics``) and answers (``/healthz``: alive;
    ``/readyz``: reading its topic and Alertmanager taking what it sends)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.sent = Counter(
            "aemon_notify_alerts_sent", "Alerts Alertmanager accepted (resends too).", registry=r
        )
        self.failures = Counter(
            "aemon_notify_send_failures", "Sends to Alertmanager that failed.", registry=r
        )
        self.open = Gauge("aemon_notify_open_events", "Events open, sent again.", registry=r)
        self.failed: str | None = None  # never set: a notifier that cannot go on exits
        self.started = False
        self.failing: str | None = None  # why the last send failed, until one succeeds

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def alive(self) -> bool:
        return True

    def problems(self) -> list[str]:
        out = [] if self.started else ["not reading its topic yet"]
        return out + ([f"Alertmanager not taking alerts: {self.failing}"] if self.failing else [])


class _Moves(ConsumerRebalanceListener):
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.notifier.drop(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.notifier.drop(tp.partition for tp in assigned)  # read again from the commit


async def _deliver(
    url: str, alerts: list[dict], stop: asyncio.Event, warn: Throttled, watched: Watched
) -> bool:
    """Send until Alertmanager accepts (True) or the notifier stops (False)."""
    delay = BACKOFF_S[0]
    while True:
        try:
            await asyncio.to_thread(post, url, alerts)
            watched.sent.inc(len(alerts))
            watched.failing = None
            return True
        except Exception as exc:  # unreachable, refused, 4xx/5xx: said, then tried again
            watched.failures.inc()
            watched.failing = str(exc)[:200]
            warn.warning(f"Alertmanager at {url} did not take {len(alerts)} alert(s) ({exc})")
        if await pause(delay, stop):
            return False
        delay = min(2 * delay, BACKOFF_S[1])


async def run(
    s: Settings,
    url: str,
    notifier: Notifier,
    group: str,
    stop: asyncio.Event,
    http: tuple[str, int] = ("127.0.0.1", 0),
) -> int:
    """Forward the alerts topic of ``s`` to Alertmanager at ``url`` until ``stop``, with its
    metrics and probes on ``http`` (host, port); the number of alerts Alertmanager accepted."""
    watched = Watched()
    try:
        server = await serve_http(watched, watched, *http)
    except OSError as exc:
        where = f"{http[0]}:{http[1]}"
        raise ConfigError(f"--metrics-port: cannot listen on {where} ({exc.strerror})") from None
    try:
        return await _forward(s, url, notifier, group, stop, watched)
    finally:
        server.close()
        await server.wait_closed()


async def _forward(
    s: Settings, url: str, notifier: Notifier, group: str, stop: asyncio.Event, watched: Watched
) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap_servers,
        group_id=group,
        client_id=f"{s.client_id}-notify",
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a new group: events still open are fired
        session_timeout_ms=s.session_timeout_ms,
        heartbeat_interval_ms=s.heartbeat_interval_ms,
        **s.kafka_security(),
    )
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)  # a failure to start is our one line
    try:
        await asyncio.wait_for(consumer.start(), 20)
    except Exception as exc:
        await consumer.stop()
        where = f"{s.alerts_topic} from {s.bootstrap_servers}"
        raise AemonError(f"cannot read {where}: {exc!r}") from None
    finally:
        kafka_log.setLevel(level)
    consumer.subscribe([s.alerts_topic], listener=_Moves(notifier))
    watched.started = True
    warn, sent, resent_at = Throttled(log), 0, 0.0
    log.info("forwarding %s on %s to %s", s.alerts_topic, s.bootstrap_servers, url)
    try:
        while not stop.is_set():
            fetched = await unless_stopped(consumer.getmany(timeout_ms=1000), stop)
            if fetched is STOPPED:
                break
            assert isinstance(fetched, dict)
            now = time.time()
            alerts, commits = [], {}
            for tp, records in fetched.items():
                for r in records:
                    if (alert := notifier.take(tp.partition, r.offset, r.value, now)) is not None:
                        alerts.append(alert)
                if records:
                    commits[tp] = notifier.committable(tp.partition, records[-1].offset + 1)
            if now - resent_at >= notifier.resend_s:
                alerts += notifier.firing(now, alerts)
                resent_at = now
            watched.open.set(sum(len(held) for held in notifier.open.values()))
            if alerts:
                if not await _deliver(url, alerts, stop, warn, watched):
                    break  # not accepted: nothing of it is committed
                sent += len(alerts)
            if commits:
                try:
                    await consumer.commit(commits)
                except KafkaError as exc:  # a rebalance: the next reader sends them again
                    warn.warning(f"offsets not committed ({exc!r}); they are read again")
    finally:
        await consumer.stop()
    return sent
