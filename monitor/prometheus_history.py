"""A Prometheus server's history of some series, as the messages prometheus-kafka-adapter would
have written to Kafka for them: the history a model trains on, read from where it already is
instead of waiting for the topic to fill.

Each series' raw samples are read with instant queries of a range selector
(``node_load1{job="node"}[3600000ms]`` at the end of each stretch read), so no sample is
interpolated or left out as a ``query_range`` step would, and each becomes the adapter's message
(its labels, the value as text, the time in whole seconds of RFC 3339, as the adapter writes
it), which the caller decodes as the daemon decodes the adapter's messages. Any server with
Prometheus' query API answers (Prometheus, Thanos, Mimir, VictoriaMetrics).
"""

from __future__ import annotations

import base64
import gzip
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import Message
from typing import TYPE_CHECKING

import orjson

from aemon.core.errors import ConfigError, DataError
from aemon.core.times import iso, iso_seconds, time_problem

if TYPE_CHECKING:
    from aemon.recording import Recording

MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
SAMPLES_A_QUERY = 200_000  # about 10 MB of Prometheus' JSON
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+[smhdw])+")


def seconds_of(text: str) -> float:
    """A duration as Prometheus writes one (``15d``, ``1h30m``) in seconds."""
    if not _DURATION.fullmatch(text):
        raise ValueError(text)
    return float(sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", text)))


def time_of(text: str, now: float) -> float:
    """``now``, an ISO 8601 time (no zone: UTC) or seconds since the epoch, as epoch seconds;
    ValueError for anything else, or a time aemon does not take (milliseconds)."""
    if text == "now":
        return now
    try:
        ts = float(text)
    except ValueError:
        ts = iso_seconds(text)
    if time_problem(ts):
        raise ValueError(text)
    return ts


def span(since: str, until: str, now: float | None = None) -> tuple[float, float]:
    """``(start, end)`` in epoch seconds: ``until`` a time, ``since`` a duration before it or a
    time (``docker logs --since`` and ``journalctl --since`` take both)."""
    now = time.time() if now is None else now
    try:
        end = time_of(until, now)
    except ValueError:
        raise ConfigError(
            f"--until {until!r}: give now, an ISO 8601 time or epoch seconds"
        ) from None
    try:
        start = end - seconds_of(since) if _DURATION.fullmatch(since) else time_of(since, now)
    except ValueError:
        raise ConfigError(
            f"--since {since!r}: give a duration (15d, 12h, 1h30m) or a time (ISO 8601 or epoch "
            "seconds)"
        ) from None
    if start >= end:
        raise ConfigError(f"--since {since} is not before --until {until}: nothing to read")
    return start, end


def adapter_message(labels: dict[str, str], ms: int, value: str) -> bytes:
    """One sample as prometheus-kafka-adapter writes it (its time cut to whole seconds)."""
    when = datetime.fromtimestamp(ms // 1000, UTC)
    doc = {
        "timestamp": f"{when:%Y-%m-%dT%H:%M:%SZ}",
        "value": value,
        "name": labels.get("__name__", ""),
        "labels": labels,
    }
    return orjson.dumps(doc)


Fetch = Callable[[str, dict[str, str]], dict]


def shown(url: str) -> str:
    """``url`` without the password it may hold, for messages and summaries."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> Fetch:
    """``GET url + path`` answering Prometheus' JSON: its ``data``, or a DataError naming its
    error (a bad selector) or why it did not answer. A user and password in ``url`` are sent as
    basic authentication, ``headers`` with every request (a bearer token, Mimir's
    ``X-Scope-OrgID``)."""
    parts = urllib.parse.urlsplit(url)
    sent = {"Accept-Encoding": "gzip", **(headers or {})}  # JSON of numbers: a tenth the bytes
    if parts.username is not None:
        pair = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        sent["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    base = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    name = shown(url)

    def get(path: str, params: dict[str, str]) -> dict:
        full = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(full, headers=sent), timeout=timeout
            ) as response:
                body = _unzipped(response.read(), response.headers)
        except urllib.error.HTTPError as exc:
            body = _unzipped(exc.read(), exc.headers)
            if not body.startswith(b"{"):
                raise DataError(f"Prometheus at {name}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise DataError(f"Prometheus at {name} does not answer: {why}") from None
        try:
            doc = orjson.loads(body)
        except ValueError:
            raise DataError(f"Prometheus at {name}: not its query API's JSON") from None
        if doc.get("status") != "success":
            raise Refused(str(doc.get("errorType", "")), str(doc.get("error", doc)))
        return doc["data"]

    return get


def _unzipped(body: bytes, headers: Message) -> bytes:
    return gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body


def external_labels(fetch: Fetch) -> dict[str, str]:
    """The server's ``global.external_labels`` (its configuration, ``/api/v1/status/config``):
    its remote write adds them to every series it sends (a series' own label of the same name
    wins), but its query API leaves them out. None where the server does not say (Thanos and
    Mimir, whose series already carry them)."""
    import yaml

    try:
        text = fetch("/api/v1/status/config", {}).get("yaml", "")
        config = yaml.safe_load(text) if isinstance(text, str) else None
    except (DataError, yaml.YAMLError):
        return {}
    found = ((config or {}).get("global") or {}).get("external_labels") or {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


class Refused(DataError):
    """Prometheus answered with an error (``errorType`` ``kind``)."""

    def __init__(self, kind: str, error: str) -> None:
        super().__init__(error)
        self.kind, self.error = kind, error


def messages(
    fetch: Fetch,
    selector: str,
    start: float,
    end: float,
    progress: Callable[[float], None] = lambda seconds: None,
    per_query: int = SAMPLES_A_QUERY,
    extra: dict[str, str] | None = None,
) -> Iterator[tuple[bytes, int]]:
    """The adapter's message (and its time in ms) for each sample of the series ``selector``
    picks in ``(start, end]``, a stretch of time a query: an hour first, then twice or half as
    long (a minute to a day) to keep each answer near ``per_query`` samples, and half as long,
    from then on, when the server refuses so many or times out; ``progress`` gets the seconds
    read after each query. ``extra``: labels each series gets unless it has its own of that
    name (the external labels remote write adds)."""
    newest: dict[tuple[tuple[str, str], ...], int] = {}  # each series' newest sample taken, ms
    at, last = round(start * 1000), round(end * 1000)
    chunk, ceiling = HOUR_MS, DAY_MS
    while at < last:
        upto = min(at + chunk, last)
        try:
            data = fetch(
                "/api/v1/query", {"query": f"{selector}[{upto - at}ms]", "time": f"{upto / 1000}"}
            )
        except Refused as exc:
            if ("too many samples" in exc.error or exc.kind == "timeout") and chunk > MINUTE_MS:
                ceiling = chunk // 2
                chunk = ceiling
                continue
            hint = ' (give a series selector, such as node_load1{job="node"})'
            hint = hint if exc.kind == "bad_data" else ""
            raise DataError(f"Prometheus refused {selector!r}: {exc.error}{hint}") from None
        if data.get("resultType") != "matrix":
            raise DataError(f"Prometheus answered {selector!r} with a {data.get('resultType')}")
        answered = 0
        for series in data["result"]:
            labels = {**extra, **series["metric"]} if extra else series["metric"]
            key = tuple(sorted(labels.items()))
            taken = newest.get(key, at)  # a range's first instant may repeat the last one's
            values = series.get("values", ())
            answered += len(values)
            for ts, value in values:
                ms = round(float(ts) * 1000)
                if ms > taken:
                    taken = ms
                    yield adapter_message(labels, ms, value), ms
            newest[key] = taken
        progress((upto - at) / 1000)
        at = upto
        if answered > 2 * per_query and chunk > MINUTE_MS:
            chunk //= 2
        elif answered < per_query // 2 and chunk * 2 <= ceiling:
            chunk *= 2


def recorded(
    url: str,
    selector: str,
    start: float,
    end: float,
    *,
    headers: dict[str, str] | None = None,
    keep: set[str] | None = None,
    max_samples: int | None = None,
    progress: Callable[[float], None] = lambda seconds: None,
    external: bool = True,
) -> tuple[Recording, int, dict[str, str]]:
    """The samples of the series ``selector`` picks on the server at ``url`` in ``(start,
    end]`` (of the streams in ``keep``, up to ``max_samples``), recorded as the daemon would
    take the adapter's messages for them, the messages read and the server's external labels
    added to each series (``external``: as its remote write adds them); a DataError when no
    series has a sample there."""
    from aemon.recording import Recording

    fetch = http_get(url, headers)
    extra = external_labels(fetch) if external else {}
    recording = Recording()
    read = taken = 0
    for value, ms in messages(fetch, selector, start, end, progress, extra=extra):
        read += 1
        if recording.add(value, ms, None, keep):
            taken += 1
            if taken == max_samples:
                break
    if not read:
        raise DataError(
            f"{shown(url)}: no series {selector!r} has a sample from {iso(start)} to {iso(end)}"
        )
    return recording, read, extra
