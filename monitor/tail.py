"""Reading what the daemon publishes: the records of a topic from its start (to its end, or on
as they arrive), and one readable line for each alert, event, score and dead letter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from aemon.core.errors import AemonError
from aemon.daemon.kafka import partitions_of


async def records(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    stop: asyncio.Event | None = None,
    timeout: float = 20.0,
    security: dict[str, Any] | None = None,
) -> AsyncIterator:
    """Every record of ``topic`` from its start, partition by partition as fetched; up to its
    end now, or, with ``follow``, on as new ones arrive until ``stop`` is set. Reading to the
    end fails when ``timeout`` seconds pass without a record while the end is not reached.
    ``security``: aiokafka's SASL/SSL keywords (``Settings.kafka_security``)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **(security or {}))
    try:
        await asyncio.wait_for(c.start(), timeout)
    except (TimeoutError, Exception) as exc:
        await c.stop()
        raise AemonError(f"cannot read {topic} from {bootstrap}: {exc!r}") from None
    try:
        tps = await partitions_of(c, topic, timeout)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while stop is None or not stop.is_set():
            fetched = await c.getmany(timeout_ms=200)
            for recs in fetched.values():
                for r in recs:
                    yield r
            if fetched:
                deadline = time.monotonic() + timeout
            if follow:
                continue
            highs = [c.highwater(tp) for tp in tps]
            positions = [await c.position(tp) for tp in tps]
            if None not in highs and all(p >= h for p, h in zip(positions, highs, strict=True)):
                return
            if time.monotonic() > deadline:
                raise AemonError(
                    f"could not read {topic} to its end: no record for {timeout:.0f} s"
                )
    finally:
        await c.stop()


def stream_of(key: bytes | None, value: bytes | None) -> str | None:
    """The stream a record is about: its key (the daemon keys what it publishes by stream, and a
    dead letter keeps its input's key), else its JSON value's ``stream``."""
    if key:
        return key.decode(errors="replace")
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    stream = doc.get("stream") if isinstance(doc, dict) else None
    return stream if isinstance(stream, str) else None


def headers_of(headers: list | tuple | None) -> dict[str, str]:
    """A record's headers as text."""
    return {k: v.decode(errors="replace") for k, v in headers or ()}


def line(value: bytes | None, headers: list | tuple = ()) -> str:
    """One readable line for a record of the alerts, scores or dead-letter topic."""
    head = headers_of(headers)
    if "reason" in head:
        where = (
            f"{head.get('source_topic')}/{head.get('source_partition')}@{head.get('source_offset')}"
        )
        return f"DEAD LETTER  {where}  {head['reason']}: {head.get('error', '')}"
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return f"?  {(value or b'')[:120]!r}"
    if not isinstance(doc, dict):
        return f"?  {doc!r}"[:160]
    if "event_id" in doc:
        state = str(doc.get("state", "?")).upper()
        span = f"{_when(doc.get('start_ts'))} .. {_when(doc.get('end_ts'))}"
        if state == "RESOLVED":
            span += f", resolved {_when(doc.get('resolved_ts'))}"
            span += " (its stream ended)" if doc.get("ended") is True else ""
        moved = doc.get("top_metrics")
        if isinstance(moved, list) and moved:
            span += "  moved: " + ", ".join(
                f"{m.get('metric')} {_share(m.get('share'))}" for m in moved if isinstance(m, dict)
            )
        return (
            f"EVENT {state:<8} {doc.get('stream')}  {span}  windows above "
            f"{doc.get('windows_above')}, peak {_num(doc.get('peak_score'))}"
            f"{_p(doc, 'min_p')}  "
            f"[{doc.get('event_id')}]"
        )
    if "alert_id" in doc:
        return (
            f"ALERT  {_when(doc.get('ts'))}  {doc.get('stream')} #{doc.get('seq')}  score "
            f"{_num(doc.get('score'))} > {_num(doc.get('threshold'))}  model "
            f"{doc.get('model')} {doc.get('model_version')}  [{doc.get('alert_id')}]"
        )
    if "is_anomaly" in doc:
        flag = "ANOMALY" if doc.get("is_anomaly") else "ok"
        return (
            f"SCORE  {_when(doc.get('ts'))}  {doc.get('stream')} #{doc.get('seq')}  "
            f"{_num(doc.get('score'))}{_p(doc)}  {flag}"
        )
    return orjson.dumps(doc).decode()[:200]


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _share(x: object) -> str:
    return f"{x:.0%}" if isinstance(x, int | float) else "-"


def _p(doc: dict, key: str = "p") -> str:
    """``, p 0.0005`` where the record carries a tail probability."""
    return "" if doc.get(key) is None else f", p {_num(doc.get(key))}"


def _num(x: object) -> str:
    return f"{x:.4g}" if isinstance(x, int | float) else "-"
