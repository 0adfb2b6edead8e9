"""Metrics as the agents people run write them to Kafka, read without a converter: Telegraf's
Kafka output, in InfluxDB line protocol (its default, :mod:`aemon.daemon.line_protocol`) or in
JSON, and Prometheus' remote write as prometheus-kafka-adapter writes it. Each is a sample by
metric name of its series, which the codec then checks as it checks aemon's own samples.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

from aemon.core.times import iso_seconds
from aemon.daemon.invalid import NUMBER_TYPES, Invalid
from aemon.daemon.line_protocol import parse_line


class Metric(NamedTuple):
    name: str  # the measurement or metric name
    stream: str  # its series: InfluxDB's series key, or the series as PromQL names it
    numbers: dict[str, Any]  # metric name -> value, the fields that are numbers
    ts: object  # seconds since the epoch, None (the record's time) or what was sent
    ts_hint: str = ""  # what to set where the time is refused


def from_line(value: bytes) -> Metric | None:
    """One line of line protocol; None when the message is not one (then it is judged as JSON,
    and refused as ``not_json`` when it is not that either)."""
    try:
        line = parse_line(value.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    seconds = None if line.ns is None else line.ns / 1e9
    return Metric(line.measurement, _series_key(line.measurement, line.tags), line.numbers, seconds)


def from_json(doc: dict) -> Metric | None:
    """Telegraf's or prometheus-kafka-adapter's JSON; None for anything else (aemon's own
    samples: a message with ``stream`` is always aemon's)."""
    if "stream" in doc or "name" not in doc:
        return None
    if isinstance(doc.get("fields"), dict) and not {"value", "values"} & doc.keys():
        return _telegraf(doc)
    if isinstance(doc.get("labels"), dict):
        return _prometheus(doc)
    return None


def _series_key(name: str, tags: dict[str, str]) -> str:
    """InfluxDB's series key: ``cpu,cpu=cpu-total,host=web-1`` (the tags in key order)."""
    return ",".join([name, *(f"{k}={tags[k]}" for k in sorted(tags))])


def _telegraf(doc: dict) -> Metric:
    """``{"name", "tags", "fields", "timestamp"}``: its numeric fields (a text or boolean field,
    such as ``system``'s ``uptime_format``, is no metric: left out), its time in seconds
    (Telegraf's default ``json_timestamp_units``)."""
    name, tags = doc["name"], doc.get("tags") or {}
    if not isinstance(name, str) or not name:
        raise Invalid("bad_stream", "Telegraf metric: 'name' must be a non-empty string")
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise Invalid("bad_stream", "Telegraf metric: 'tags' must be an object of strings")
    numbers = {k: v for k, v in doc["fields"].items() if type(v) in NUMBER_TYPES}
    hint = 'set json_timestamp_units = "1s" in Telegraf\'s output'
    return Metric(name, _series_key(name, tags), numbers, doc.get("timestamp"), hint)


def _prometheus(doc: dict) -> Metric:
    """``{"timestamp", "value", "name", "labels"}``, one sample of one series: its stream the
    series as PromQL writes it (``node_load1{instance="web-1:9100",job="node"}``, the labels but
    ``__name__`` in name order), its one metric the name, its value the text the adapter writes
    (``"NaN"``, Prometheus' staleness marker, is then ``non_finite``), its time RFC 3339."""
    name, labels = doc["name"], doc["labels"]
    if not isinstance(name, str) or not name:
        raise Invalid("bad_stream", "Prometheus sample: 'name' must be a non-empty string")
    if not all(isinstance(v, str) for v in labels.values()):
        raise Invalid("bad_stream", "Prometheus sample: 'labels' must be an object of strings")
    pairs = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels) if k != "__name__")
    raw = doc.get("value")
    try:
        number = float(raw) if isinstance(raw, str) or type(raw) in NUMBER_TYPES else None
    except ValueError:
        number = None
    if number is None:
        raise Invalid("bad_values", "Prometheus sample: 'value' must be a number (or its text)")
    stream = f"{name}{{{pairs}}}" if pairs else name
    return Metric(name, stream, {name: number}, _rfc3339(doc.get("timestamp")))


def _rfc3339(value: object) -> float | None:
    """An RFC 3339 time (``2026-01-31T14:05:00Z``; no zone: UTC) as seconds since the epoch;
    None for none (the record's time)."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return iso_seconds(value)
    raise Invalid("bad_ts", f"'timestamp' {str(value)[:40]!r} is not an RFC 3339 time")
