"""Input messages -> validated rows; every rejection carries a ``reason`` (a metric label).

Window messages (JSON ``{"stream", "seq"?, "ts"?, "values": [...]}`` or raw little-endian float32
with ``content-type: application/x-aemon-f32`` and ``stream``/``seq`` headers) are decoded straight
into the rows of a preallocated float32 batch, a fetched run of records at a time. Finiteness of
window rows is checked once per batch (:func:`non_finite_rows`), not per message. ``values`` hold
JSON numbers only. Sample messages (``{"stream", "ts"?, "value": x}`` or ``"values"`` for several
channels) are decoded into a small array for the windowing stage.

JSON is decoded by typed msgspec structs, which check the types in C (a string, boolean, null or
nested list among the numbers fails there). A message they refuse is decoded again by the
checked path, which names the reason; so the contract and its reasons are those of the checked
path, and a valid message costs one typed decode.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import msgspec
import numpy as np
import orjson

# A value beyond float32 becomes inf when copied into a row; that row is then refused as
# non-finite, so numpy's warning about the cast says nothing new.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)

F32_CONTENT_TYPE = b"application/x-aemon-f32"

# Every reason a message can be refused for; the invalid-message counter is labelled with these.
REASONS = (
    "too_large",
    "not_json",
    "not_object",
    "bad_stream",
    "bad_seq",
    "bad_ts",
    "missing_values",
    "bad_values",
    "wrong_length",
    "non_finite",
    "bad_f32",
    "unknown_content_type",
    "late_sample",
    "no_model",
)


class Invalid(Exception):
    """A message we refuse; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1 << 20
    max_stream_len: int = 256


class Record(Protocol):
    """What the decoder needs of a Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    offset: int
    timestamp: int  # milliseconds
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Decoded(NamedTuple):
    """Window records decoded into consecutive rows, and the ones refused."""

    kept: list[Record]  # the records whose windows fill rows 0 .. len(kept) - 1, in order
    streams: list[str]
    seqs: list[int]  # ``seq``, else the Kafka offset
    ts: list[float]  # ``ts``, else the Kafka timestamp (seconds)
    refused: list[tuple[Record, Invalid]]


def _stream(value: object, limits: Limits) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("bad_stream", "'stream' must be a non-empty string")
    if len(value) > limits.max_stream_len:
        raise Invalid("bad_stream", f"stream id longer than {limits.max_stream_len} characters")
    return value


def _seq(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise Invalid("bad_seq", "'seq' must be an integer from 0 to 2^63 - 1")
    return value


def _ts(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise Invalid("bad_ts", "'ts' must be a finite number (seconds since the epoch)")
    return float(value)


def _fill(row: np.ndarray, values: object) -> None:
    """Copy ``values`` into ``row`` (float32), checking type and length (not finiteness). JSON
    numbers only: numpy would turn ``"0.12"`` into 0.12 and ``true`` into 1."""
    if not isinstance(values, list):
        raise Invalid("bad_values", "'values' must be an array of numbers")
    if len(values) != row.size:
        raise Invalid("wrong_length", f"{len(values)} values; the model takes {row.size}")
    if not set(map(type, values)) <= NUMBER_TYPES:
        raise Invalid("bad_values", "'values' must hold numbers only (no strings, booleans, null)")
    row.reshape(-1)[:] = values


NUMBER_TYPES = {float, int}  # exact types: bool, a subclass of int, is refused


def non_finite_rows(rows: np.ndarray) -> np.ndarray:
    """Positions of rows holding NaN or inf (one vectorised check for a whole batch)."""
    if not len(rows):
        return np.empty(0, dtype=np.intp)
    flat = rows.reshape(len(rows), -1)
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def non_finite() -> Invalid:
    return Invalid("non_finite", "values must be finite (no NaN, no inf, within float32)")


def _object(value: bytes, limits: Limits) -> dict:
    if len(value) > limits.max_bytes:
        raise Invalid("too_large", f"{len(value)} bytes > limit {limits.max_bytes}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Invalid("not_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise Invalid("not_object", "the message must be a JSON object")
    return doc


def decode_windows(records: Iterable[Record], rows: np.ndarray, limits: Limits) -> Decoded:
    """Decode window records into ``rows`` (``[room, *shape]``: a batch's free rows), in order.

    This runs once per message, so it is kept flat: float32 payloads are checked one by one but
    copied in one numpy call at the end; finiteness is the caller's, once per batch
    (:func:`non_finite_rows`).
    """
    flat = rows.reshape(len(rows), -1)
    nbytes = flat.shape[1] * 4
    out = Decoded([], [], [], [], [])
    keep, streams, seqs, stamps = (
        out.kept.append,
        out.streams.append,
        out.seqs.append,
        out.ts.append,
    )
    raw_at: list[int] = []
    raw: list[bytes] = []
    names: dict[bytes, str] = {}
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
                ts = rec.timestamp / 1000.0
            elif ctype is None or ctype == b"application/json":
                stream, seq, ts = _json_window(rec, flat[n], limits)
            else:
                raise Invalid("unknown_content_type", f"content-type {ctype[:64]!r}")
        except Invalid as bad:
            out.refused.append((rec, bad))
            continue
        keep(rec)
        streams(stream)
        seqs(seq)
        stamps(ts)
        n += 1
    if raw:
        block = np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), -1)
        if len(raw) == n:
            flat[: len(raw)] = block
        else:
            flat[raw_at] = block
    return out


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
    if size > limits.max_bytes:
        raise Invalid("too_large", f"{size} bytes > limit {limits.max_bytes}")
    if size != nbytes:
        raise Invalid("wrong_length", f"{size} bytes; the model takes {nbytes // 4} float32")
    try:
        stream = names.get(stream_h) if stream_h is not None else None
        if stream is None:
            stream = _stream((stream_h or b"").decode(), limits)
            if stream_h is not None:
                names[stream_h] = stream
        seq = rec.offset if seq_h is None else int(seq_h)
    except (UnicodeDecodeError, ValueError):
        raise Invalid("bad_f32", "headers 'stream' (utf-8) and 'seq' (integer) required") from None
    return stream, _seq(seq, 0)


class _Window(msgspec.Struct):
    stream: str
    values: list[float]
    seq: int | None = None
    ts: float | None = None


class _Sample(msgspec.Struct):
    stream: str
    value: float | msgspec.UnsetType = msgspec.UNSET
    values: list[float] | msgspec.UnsetType = msgspec.UNSET
    seq: int | None = None
    ts: float | None = None


_WINDOW = msgspec.json.Decoder(_Window)
_SAMPLE = msgspec.json.Decoder(_Sample)


def _typed(decoder: msgspec.json.Decoder, value: bytes, limits: Limits) -> Any:
    """``value`` decoded by a typed struct, or None where the checked path must say why not."""
    if len(value) > limits.max_bytes:
        raise Invalid("too_large", f"{len(value)} bytes > limit {limits.max_bytes}")
    try:
        return decoder.decode(value)
    except msgspec.MsgspecError:
        return None


def _json_window(rec: Record, row: np.ndarray, limits: Limits) -> tuple[str, int, float]:
    value = rec.value or b""
    w = _typed(_WINDOW, value, limits)
    if w is None:
        return _checked_window(value, rec, row, limits)  # which names the reason
    stream, values = _stream(w.stream, limits), w.values
    if len(values) != row.size:
        raise Invalid("wrong_length", f"{len(values)} values; the model takes {row.size}")
    row[:] = values  # a batch row: one dimension
    ts = rec.timestamp / 1000.0 if w.ts is None else w.ts  # typed: finite
    return stream, _seq(w.seq, rec.offset), ts


def _checked_window(
    value: bytes, rec: Record, row: np.ndarray, limits: Limits
) -> tuple[str, int, float]:
    doc = _object(value, limits)
    stream = _stream(doc.get("stream"), limits)
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


def decode_sample(value: bytes | None, timestamp_ms: int, channels: int, limits: Limits) -> Sample:
    """Decode one sample message: ``value`` (one channel) or ``values`` (several)."""
    raw = value or b""
    s = _typed(_SAMPLE, raw, limits)
    if s is None or (s.values is msgspec.UNSET and s.value is msgspec.UNSET):
        return _checked_sample(raw, timestamp_ms, channels, limits)
    stream = _stream(s.stream, limits)
    got = [s.value] if s.values is msgspec.UNSET else s.values
    if len(got) != channels:
        raise Invalid("wrong_length", f"{len(got)} values; the model takes {channels}")
    return _sample(stream, s.seq, s.ts, timestamp_ms, np.array(got, dtype=np.float32))


def _checked_sample(value: bytes, timestamp_ms: int, channels: int, limits: Limits) -> Sample:
    doc = _object(value, limits)
    stream = _stream(doc.get("stream"), limits)
    raw = doc["values"] if "values" in doc else [doc["value"]] if "value" in doc else None
    if raw is None:
        raise Invalid("missing_values", "no 'value' or 'values'")
    out = np.empty(channels, dtype=np.float32)
    _fill(out, raw if isinstance(raw, list) else [raw])
    return _sample(stream, doc.get("seq"), doc.get("ts"), timestamp_ms, out)


def _sample(stream: str, seq: object, ts: object, timestamp_ms: int, out: np.ndarray) -> Sample:
    if not np.isfinite(out).all():
        raise non_finite()
    return Sample(
        stream,
        None if seq is None else _seq(seq, 0),
        _ts(ts, timestamp_ms / 1000.0),
        out,
    )


def encode_window(stream: str, seq: int, values: np.ndarray, ts: float | None = None) -> bytes:
    """The JSON form of a window (used by replay and tests)."""
    doc: dict[str, object] = {"stream": stream, "seq": int(seq), "values": values.ravel().tolist()}
    if ts is not None:
        doc["ts"] = ts
    return orjson.dumps(doc)


def f32_headers(stream: str, seq: int) -> list[tuple[str, bytes]]:
    return [
        ("content-type", F32_CONTENT_TYPE),
        ("stream", stream.encode()),
        ("seq", str(int(seq)).encode()),
    ]
