"""Input messages -> validated rows; every rejection carries a ``reason`` (a metric label).

Window messages (JSON ``{"stream", "seq"?, "ts"?, "values": [...]}`` or raw little-endian float32
with ``content-type: application/x-aemon-f32`` and ``stream``/``seq`` headers) are decoded straight
into the rows of a preallocated float32 batch, a fetched run of records at a time: a run of float32
records as aemon's producers write them in passes over the whole run (no Python loop a record),
any other run record by record, which names each refusal. Finiteness of
window rows is checked once per batch (:func:`non_finite_rows`), not per message. ``values`` hold
JSON numbers only. Sample messages (``{"stream", "ts"?, "value": x}`` or ``"values"`` for several
channels: an array in the model's order, or an object of values by metric name) are decoded
into a small array for the windowing stage; so are the metrics that Telegraf and
prometheus-kafka-adapter write (:mod:`aemon.daemon.agents`). ``{"stream": .., "end": true}``,
alone, ends a sample stream (:class:`End`). A
message without ``stream`` (or a float32 window without its header) is its Kafka key's stream:
input is keyed by stream.

JSON is parsed in C by simdjson, which copies ``values`` straight into a buffer of doubles and
refuses a string, boolean, null or object among the numbers there; no Python float is made. A
message off that path (a parse error, a nested or second array, a repeated key) is decoded
again by the checked path, which names the reason; so the contract and its reasons are those of
the checked path, and a valid message costs one parse.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson
import simdjson

from aemon.core.times import EARLIEST, LATEST, time_problem
from aemon.core.wording import listed
from aemon.daemon import agents
from aemon.daemon.invalid import NUMBER_TYPES, Invalid

# A value beyond float32 becomes inf when copied into a row; that row is then refused as
# non-finite, so numpy's warning about the cast says nothing new.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)

F32_CONTENT_TYPE = b"application/x-aemon-f32"
SEQS = range(2**63)  # a window's or sample's seq


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1 << 20
    max_stream_len: int = 256


class Record(Protocol):
    """What the decoder needs of a Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    offset: int
    timestamp: int  # milliseconds
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Decoded(NamedTuple):
    """Window records decoded into consecutive rows, and the ones refused."""

    kept: list[Record]  # the records whose windows fill rows 0 .. len(kept) - 1, in order
    streams: list[str]
    seqs: list[int]  # ``seq``, else the Kafka offset
    ts: list[float]  # ``ts``, else the Kafka timestamp (seconds)
    record_ts: list[float]  # the Kafka timestamp (seconds)
    refused: list[tuple[Record, Invalid]]


def _stream(value: object, limits: Limits, key: bytes | None = None) -> str:
    """A message's stream: its ``stream`` (field, or header of a float32 window), else its Kafka
    key, which the contract sets to the stream (so a producer that keys by stream may leave the
    field out)."""
    if value is None:
        if not key:
            raise Invalid(
                "bad_stream", "no 'stream' and no key: give 'stream', or key it by its stream"
            )
        try:
            value = key.decode()
        except UnicodeDecodeError:
            raise Invalid("bad_stream", "no 'stream', and the key is not UTF-8 text") from None
    if not isinstance(value, str) or not value:
        raise Invalid("bad_stream", "'stream' must be a non-empty string")
    if len(value) > limits.max_stream_len:
        raise Invalid("bad_stream", f"stream id longer than {limits.max_stream_len} characters")
    return value


def _seq(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value not in SEQS:
        raise Invalid("bad_seq", "'seq' must be an integer from 0 to 2^63 - 1")
    return value


def _ts(value: object, default: float, name: str = "ts") -> float:
    """A message's ``ts`` (its field ``name``), else ``default`` (its record's timestamp, which a
    producer may set to anything: checked too, so that no event gets a time it cannot be written
    with)."""
    if value is None:
        if not EARLIEST <= default < LATEST:
            raise Invalid(
                "bad_ts",
                f"no {name!r}, and the record's timestamp ({default:.15g} s since the epoch) is "
                "not between the years 1 and 5000",
            )
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("bad_ts", f"{name!r} must be a finite number (seconds since the epoch)")
    if not EARLIEST <= value < LATEST:
        raise Invalid("bad_ts", f"{name!r} {value} {time_problem(value)}")
    return float(value)


def check_length(got: int, takes: int) -> None:
    """A window or sample of ``got`` values for a model that takes ``takes``: wrong_length."""
    if got != takes:
        raise Invalid("wrong_length", f"{got} values; the model takes {takes}")


def _fill(row: np.ndarray, values: object) -> None:
    """Copy ``values`` into ``row`` (float32), checking type and length (not finiteness). JSON
    numbers only: numpy would turn ``"0.12"`` into 0.12 and ``true`` into 1."""
    if not isinstance(values, list):
        raise Invalid("bad_values", "'values' must be an array of numbers")
    check_length(len(values), row.size)
    if not set(map(type, values)) <= NUMBER_TYPES:
        raise Invalid("bad_values", "'values' must hold numbers only (no strings, booleans, null)")
    row.reshape(-1)[:] = values


def non_finite_rows(rows: np.ndarray) -> np.ndarray:
    """Positions of rows holding NaN or inf (one vectorised check for a whole batch)."""
    if not len(rows):
        return np.empty(0, dtype=np.intp)
    flat = rows.reshape(len(rows), -1)
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def non_finite() -> Invalid:
    return Invalid("non_finite", "values must be finite (no NaN, no inf, within float32)")


def _check_size(size: int, limits: Limits) -> None:
    """Refuse a message of more than ``limits.max_bytes`` before anything reads it."""
    if size > limits.max_bytes:
        raise Invalid("too_large", f"{size} bytes > limit {limits.max_bytes}")


def _object(value: bytes, limits: Limits) -> dict:
    _check_size(len(value), limits)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Invalid("not_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise Invalid("not_object", "the message must be a JSON object")
    return doc


def decode_windows(records: Iterable[Record], rows: np.ndarray, limits: Limits) -> Decoded:
    """Decode window records into ``rows`` (``[room, *shape]``: a batch's free rows), in order.

    A run of float32 windows as aemon's producers write them is decoded in passes over the
    whole run (:func:`_f32_run`); any other run record by record, in a loop kept flat: float32
    payloads and parsed JSON numbers are checked one by one but copied in one numpy call each at
    the end. Finiteness is the caller's, once per batch (:func:`non_finite_rows`).
    """
    flat = rows.reshape(len(rows), -1)
    nbytes = flat.shape[1] * 4
    names: dict[bytes, str] = {}
    if isinstance(records, Sequence) and (run := _f32_run(records, flat, nbytes, limits, names)):
        return run
    out = Decoded([], [], [], [], [], [])
    keep, streams, seqs, stamps, record_stamps = (
        out.kept.append,
        out.streams.append,
        out.seqs.append,
        out.ts.append,
        out.record_ts.append,
    )
    raw_at: list[int] = []
    raw: list[bytes] = []
    parsed_at: list[int] = []
    parsed: list[Any] = []  # buffers of doubles
    parser = _parser()
    n = 0  # rows filled
    for rec in records:
        ctype = stream_h = seq_h = None
        for key, v in rec.headers or ():
            if key == "content-type":
                ctype = v
            elif key == "stream":
                stream_h = v
            elif key == "seq":
                seq_h = v
        try:
            if ctype == F32_CONTENT_TYPE:
                stream, seq = _f32_meta(rec, stream_h, seq_h, nbytes, limits, names)
                raw_at.append(n)
                raw.append(rec.value)  # type: ignore[arg-type]  # checked by _f32_meta
                ts = _ts(None, rec.timestamp / 1000.0)
            elif ctype is None or ctype == b"application/json":
                got = _parse(parser, rec.value or b"", limits, flat.shape[1], sample=False)
                if got is None:  # the checked path says why, or decodes it
                    stream, seq, ts = _checked_window(rec.value or b"", rec, flat[n], limits)
                else:
                    stream, seq, ts = _meta(got, rec, limits)
                    parsed_at.append(n)
                    parsed.append(got.numbers)
            else:
                raise Invalid("unknown_content_type", f"content-type {ctype[:64]!r}")
        except Invalid as bad:
            out.refused.append((rec, bad))
            continue
        keep(rec)
        streams(stream)
        seqs(seq)
        stamps(ts)
        record_stamps(rec.timestamp / 1000.0)
        n += 1
    for at, chunks, dtype in ((raw_at, raw, "<f4"), (parsed_at, parsed, "=f8")):
        if chunks:
            block = np.frombuffer(b"".join(chunks), dtype=dtype).reshape(len(chunks), -1)
            if len(chunks) == n:
                flat[:n] = block
            else:
                flat[at] = block
    return out


_F32_TYPE = ("content-type", F32_CONTENT_TYPE)
_KEY, _VALUE, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)
_HEADERS, _PAYLOAD, _STAMP = attrgetter("headers"), attrgetter("value"), attrgetter("timestamp")


def _f32_run(
    records: Sequence[Record],
    flat: np.ndarray,
    nbytes: int,
    limits: Limits,
    names: dict[bytes, str],
) -> Decoded | None:
    """A run of float32 windows as aemon's producers write them (headers ``content-type``,
    ``stream`` and ``seq``, in that order; the model's length) decoded in passes over the whole
    run, with no Python loop a record; None where any record is otherwise (the per-record path
    then decodes the run and names each refusal). The same rows, streams, seqs and times as
    the per-record path."""
    n = len(records)
    if not 0 < n <= len(flat) or nbytes > limits.max_bytes or len(records[0].headers or ()) != 3:
        return None
    headers, values = list(map(_HEADERS, records)), list(map(_PAYLOAD, records))
    try:
        if set(map(len, headers)) != {3} or set(map(len, values)) != {nbytes}:
            return None
        if list(map(_KEY, headers)).count(_F32_TYPE) != n:
            return None
        named, counted = list(map(_VALUE, headers)), list(map(_THIRD, headers))
        if set(map(_KEY, named)) != {"stream"} or set(map(_KEY, counted)) != {"seq"}:
            return None
        raw = list(map(_VALUE, named))
        for header in set(raw) - names.keys():
            names[header] = _stream(header.decode(), limits)
        seqs = list(map(int, map(_VALUE, counted)))
        ts = (np.fromiter(map(_STAMP, records), np.float64, n) / 1000.0).tolist()
    except (TypeError, ValueError, UnicodeDecodeError, Invalid):
        return None  # a value or header missing, a seq that is no integer, a stream refused
    if (
        min(seqs) not in SEQS
        or max(seqs) not in SEQS
        or not EARLIEST <= min(ts) <= max(ts) < LATEST
    ):
        return None
    flat[:n] = np.frombuffer(b"".join(values), dtype="<f4").reshape(n, -1)
    return Decoded(list(records), list(map(names.__getitem__, raw)), seqs, ts, ts, [])


def _f32_meta(
    rec: Record,
    stream_h: bytes | None,
    seq_h: bytes | None,
    nbytes: int,
    limits: Limits,
    names: dict[bytes, str],
) -> tuple[str, int]:
    """A float32 record's stream and seq; ``names``: the stream headers of this run already
    decoded and checked (a run of records holds few streams)."""
    size = len(rec.value or b"")
    _check_size(size, limits)
    if size != nbytes:
        raise Invalid("wrong_length", f"{size} bytes; the model takes {nbytes // 4} float32")
    named = stream_h if stream_h is not None else rec.key  # the header, else the key
    try:
        stream = names.get(named) if named is not None else None
        if stream is None:
            stream = _stream(None if stream_h is None else stream_h.decode(), limits, rec.key)
            if named is not None:
                names[named] = stream
        seq = rec.offset if seq_h is None else int(seq_h)
    except (UnicodeDecodeError, ValueError):
        raise Invalid(
            "bad_f32", "header 'stream' (utf-8; else the key) and 'seq' (an integer) required"
        ) from None
    return stream, _seq(seq, 0)


_LOCAL = threading.local()


def _parser() -> simdjson.Parser:
    """This thread's parser (a parser is not shared between threads)."""
    parser = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = simdjson.Parser()
    return parser


class _Parsed(NamedTuple):
    stream: object
    seq: object
    ts: object
    numbers: Any  # a buffer of ``size`` doubles


def _parse(
    parser: simdjson.Parser, value: bytes, limits: Limits, size: int | None, sample: bool
) -> _Parsed | None:
    """A plain message parsed in C, its ``values`` (or a sample's ``value``) as a buffer of
    ``size`` doubles (None: as many as it holds); None where the checked path must decide: a
    parse error, a repeated key (the checked path keeps the last), a second or nested array, or
    anything but a number among the numbers. Other keys are ignored, as there. Nothing of
    simdjson's outlives the call (a parser is not reused while its documents live)."""
    _check_size(len(value), limits)
    if value.find(b"[", value.find(b"[") + 1) >= 0:  # a second "[" (find is memchr; count is not)
        return None
    doc = numbers = None
    try:
        doc = parser.parse(value)
        if type(doc) is not simdjson.Object:
            return None
        names = set(doc.keys())
        if len(names) != len(doc) or "end" in names:
            return None  # a repeated key, or an end marker: the checked path
        stream = doc["stream"] if "stream" in names else None
        seq = doc["seq"] if "seq" in names else None
        ts = doc["ts"] if "ts" in names else None
        if simdjson.Object in (type(stream), type(seq), type(ts)):
            return None
        if "values" in names:
            numbers = doc["values"]
            if type(numbers) is not simdjson.Array or size not in (None, len(numbers)):
                return None  # the checked path names the type or length (or a nested list)
            buffer: Any = numbers.as_buffer(of_type="d")
        elif sample and "value" in names and "labels" not in names:
            if type(doc["value"]) not in NUMBER_TYPES:
                return None  # the checked path names the type
            buffer = np.array([doc["value"]], dtype=np.float64).data
        else:
            return None
        return _Parsed(stream, seq, ts, buffer)
    except (ValueError, RuntimeError, TypeError, OverflowError):  # parse errors, a non-number
        return None
    finally:
        doc = numbers = None


def _meta(got: _Parsed, rec: Record, limits: Limits) -> tuple[str, int, float]:
    """A parsed message's stream (else its key), seq (else its offset) and ts (else its
    timestamp)."""
    return (
        _stream(got.stream, limits, rec.key),
        _seq(got.seq, rec.offset),
        _ts(got.ts, rec.timestamp / 1000.0),
    )


def _checked_window(
    value: bytes, rec: Record, row: np.ndarray, limits: Limits
) -> tuple[str, int, float]:
    doc = _object(value, limits)
    stream = _stream(doc.get("stream"), limits, rec.key)
    if doc.get("end") is True and "values" not in doc:  # nothing per stream to forget here
        raise Invalid("bad_end", "end markers end streams of samples, not of windows")
    if "values" not in doc:
        raise Invalid("missing_values", "no 'values' array")
    _fill(row, doc["values"])
    return stream, _seq(doc.get("seq"), rec.offset), _ts(doc.get("ts"), rec.timestamp / 1000.0)


@dataclass(frozen=True)
class Sample:
    stream: str
    seq: int | None  # the per-stream sample index, when the producer sends one
    ts: float
    values: np.ndarray  # float32 [channels]
    names: tuple[str, ...] | None = None  # each value's metric, when sent by name

    def in_order(self, metrics: list[str] | None) -> np.ndarray:
        """The values in the order of a model's ``metrics`` (its training columns; None where
        it records none): as sent when sent as an array; by name when sent by name, where a
        metric the model does not take is left out and one it takes must be there. One value
        by name serves a one-metric model whatever its name, as one column does offline."""
        if self.names is None or (len(self.names) == 1 and (metrics is None or len(metrics) == 1)):
            return self.values  # a one-metric model takes one value whatever its name
        if metrics is None:
            raise Invalid(
                "bad_values",
                "values by name, but the stream's model records no metric names: send 'values' "
                "as an array, in the order of its training columns",
            )
        at = {name: i for i, name in enumerate(self.names)}
        missing = [m for m in metrics if m not in at]
        if missing:
            raise Invalid(
                "missing_values",
                f"no value for {listed([repr(m) for m in missing], 5)} (the stream's model "
                f"takes {len(metrics)} metrics)",
            )
        return self.values[[at[m] for m in metrics]]


@dataclass(frozen=True)
class End:
    """The end of a sample stream (``{"stream": .., "end": true}``): the daemon forgets it, and a
    later sample of the same name starts a new stream. With ``after`` (the offset of the
    stream's last sample when the marker was sent), only if the stream sent nothing since."""

    stream: str
    after: int | None = None


def decode_sample(
    value: bytes | None, timestamp_ms: int, limits: Limits, key: bytes | None = None
) -> Sample | End:
    """Decode one sample message: ``value`` (one channel) or ``values`` (several, as many as
    the message holds: the caller checks them against its stream's model, :func:`check_length`);
    its stream, else its Kafka ``key``. An end marker is an :class:`End`."""
    raw = value or b""
    got = _parse(_parser(), raw, limits, None, sample=True)
    if got is None:
        return _checked_sample(raw, timestamp_ms, limits, key)
    stream = _stream(got.stream, limits, key)
    out = np.frombuffer(got.numbers, dtype=np.float64).astype(np.float32)
    return _sample(stream, got.seq, got.ts, timestamp_ms, out)


def _checked_sample(
    value: bytes, timestamp_ms: int, limits: Limits, key: bytes | None
) -> Sample | End:
    if value[:1] not in (b"{", b"[", b" ", b"\t", b"\n", b""):  # no JSON: line protocol?
        _check_size(len(value), limits)
        metric = agents.from_line(value)
        if metric is not None:
            return _metric_sample(metric, timestamp_ms, limits)
    doc = _object(value, limits)
    metric = agents.from_json(doc)
    if metric is not None:
        return _metric_sample(metric, timestamp_ms, limits)
    stream = _stream(doc.get("stream"), limits, key)
    if "end" in doc:
        if doc["end"] is not True:
            raise Invalid("bad_end", f"'end' is {doc['end']!r}: true ends the stream")
        if "value" in doc or "values" in doc:
            raise Invalid("bad_end", "an end marker carries no values: send it alone")
        after = doc.get("after")
        if after is not None and (type(after) is not int or after < 0):
            raise Invalid("bad_end", f"'after' is {after!r}: an offset, a whole number >= 0")
        return End(stream, after)
    raw = doc["values"] if "values" in doc else [doc["value"]] if "value" in doc else None
    if raw is None:
        raise Invalid("missing_values", "no 'value' or 'values'")
    names = None
    if isinstance(raw, dict):  # by metric name: {"cpu": 0.5, "mem": 1.2e9}
        if not raw:
            raise Invalid("missing_values", "'values' names no metric")
        names, raw = tuple(raw), list(raw.values())
    out = np.empty(len(raw) if isinstance(raw, list) else 1, dtype=np.float32)
    _fill(out, raw if isinstance(raw, list) else [raw])
    return _sample(stream, doc.get("seq"), doc.get("ts"), timestamp_ms, out, names)


def _metric_sample(metric: agents.Metric, timestamp_ms: int, limits: Limits) -> Sample:
    """An agent's metric (:mod:`aemon.daemon.agents`) as a sample by metric name, checked as
    aemon's own samples are."""
    stream = _stream(metric.stream, limits)
    if not metric.numbers:
        raise Invalid("missing_values", f"metric {metric.name[:64]!r}: no field is a number")
    out = np.empty(len(metric.numbers), dtype=np.float32)
    _fill(out, list(metric.numbers.values()))
    try:
        return _sample(
            stream, None, metric.ts, timestamp_ms, out, tuple(metric.numbers), "timestamp"
        )
    except Invalid as bad:
        if bad.reason != "bad_ts" or not metric.ts_hint:
            raise
        raise Invalid("bad_ts", f"{bad.detail}; {metric.ts_hint}") from None


def _sample(
    stream: str,
    seq: object,
    ts: object,
    timestamp_ms: int,
    out: np.ndarray,
    names: tuple[str, ...] | None = None,
    ts_name: str = "ts",
) -> Sample:
    if not np.isfinite(out).all():
        raise non_finite()
    return Sample(
        stream,
        None if seq is None else _seq(seq, 0),
        _ts(ts, timestamp_ms / 1000.0, ts_name),
        out,
        names,
    )


def encode_window(stream: str, seq: int, values: np.ndarray, ts: float | None = None) -> bytes:
    """The JSON form of a window (used by replay and tests)."""
    doc: dict[str, object] = {"stream": stream, "seq": int(seq), "values": values.ravel().tolist()}
    if ts is not None:
        doc["ts"] = ts
    return orjson.dumps(doc)


def encode_end(stream: str, after: int | None = None) -> bytes:
    """A sample stream's end marker (:class:`End`)."""
    doc: dict[str, object] = {"stream": stream, "end": True}
    if after is not None:
        doc["after"] = after
    return orjson.dumps(doc)


def f32_headers(stream: str, seq: int) -> list[tuple[str, bytes]]:
    return [
        ("content-type", F32_CONTENT_TYPE),
        ("stream", stream.encode()),
        ("seq", str(int(seq)).encode()),
    ]
