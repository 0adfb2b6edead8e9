"""Input messages -> validated rows; every rejection carries a ``reason`` (a metric label).

Window messages (JSON ``{"stream", "seq"?, "ts"?, "values": [...]}`` or raw little-endian float32
with ``content-type: application/x-aemon-f32`` and ``stream``/``seq`` headers) are decoded straight
into a row of a preallocated float32 batch. Sample messages (``{"stream", "ts"?, "value": x}`` or
``"values"`` for several channels) are decoded into a small array for the windowing stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

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


@dataclass(frozen=True)
class Meta:
    """Who a row belongs to. ``seq``/``ts`` fall back to the Kafka offset and timestamp."""

    stream: str
    seq: int
    ts: float


def _headers(headers: tuple[tuple[str, bytes], ...] | list | None) -> dict[str, bytes]:
    return {k: v for k, v in headers or ()}


def _stream(value: object, limits: Limits) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("bad_stream", "'stream' must be a non-empty string")
    if len(value) > limits.max_stream_len:
        raise Invalid("bad_stream", f"stream id longer than {limits.max_stream_len} characters")
    return value


def _seq(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid("bad_seq", "'seq' must be a non-negative integer")
    return value


def _ts(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise Invalid("bad_ts", "'ts' must be a finite number (seconds since the epoch)")
    return float(value)


def _fill(row: np.ndarray, values: object) -> None:
    """Copy ``values`` into ``row`` (float32), checking length and finiteness."""
    if not isinstance(values, list):
        raise Invalid("bad_values", "'values' must be an array of numbers")
    if len(values) != row.size:
        raise Invalid("wrong_length", f"{len(values)} values; the model takes {row.size}")
    try:
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            row.reshape(-1)[:] = values
    except (TypeError, ValueError):
        raise Invalid("bad_values", "'values' must hold numbers only") from None
    if not np.isfinite(row).all():
        if any(v is None or isinstance(v, bool) for v in values):
            raise Invalid("bad_values", "'values' must hold numbers only (null/true/false found)")
        raise Invalid("non_finite", "values must be finite (no NaN, no inf, within float32)")


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


def decode_window(
    value: bytes | None,
    headers: tuple | list | None,
    offset: int,
    timestamp_ms: int,
    row: np.ndarray,
    limits: Limits,
) -> Meta:
    """Decode one window message into ``row`` (a view into the batch); raise :class:`Invalid`."""
    value = value or b""
    ts_default = timestamp_ms / 1000.0
    h = _headers(headers)
    ctype = h.get("content-type")
    if ctype is not None and ctype != F32_CONTENT_TYPE and ctype != b"application/json":
        raise Invalid("unknown_content_type", f"content-type {ctype[:64]!r}")
    if ctype == F32_CONTENT_TYPE:
        if len(value) > limits.max_bytes:
            raise Invalid("too_large", f"{len(value)} bytes > limit {limits.max_bytes}")
        if len(value) != row.size * 4:
            raise Invalid("wrong_length", f"{len(value)} bytes; the model takes {row.size} float32")
        try:
            stream = _stream(h.get("stream", b"").decode(), limits)
            seq = _seq(int(h["seq"]), offset) if "seq" in h else offset
        except (UnicodeDecodeError, ValueError):
            raise Invalid(
                "bad_f32", "headers 'stream' (utf-8) and 'seq' (integer) required"
            ) from None
        row.reshape(-1)[:] = np.frombuffer(value, dtype="<f4")
        if not np.isfinite(row).all():
            raise Invalid("non_finite", "values must be finite (no NaN, no inf)")
        return Meta(stream, seq, ts_default)
    doc = _object(value, limits)
    stream = _stream(doc.get("stream"), limits)
    if "values" not in doc:
        raise Invalid("missing_values", "no 'values' array")
    _fill(row, doc["values"])
    return Meta(stream, _seq(doc.get("seq"), offset), _ts(doc.get("ts"), ts_default))


@dataclass(frozen=True)
class Sample:
    stream: str
    seq: int | None  # the per-stream sample index, when the producer sends one
    ts: float
    values: np.ndarray  # float32 [channels]


def decode_sample(value: bytes | None, timestamp_ms: int, channels: int, limits: Limits) -> Sample:
    """Decode one sample message: ``value`` (one channel) or ``values`` (several)."""
    doc = _object(value or b"", limits)
    stream = _stream(doc.get("stream"), limits)
    raw = doc["values"] if "values" in doc else [doc["value"]] if "value" in doc else None
    if raw is None:
        raise Invalid("missing_values", "no 'value' or 'values'")
    out = np.empty(channels, dtype=np.float32)
    _fill(out, raw if isinstance(raw, list) else [raw])
    seq = doc.get("seq")
    return Sample(
        stream,
        None if seq is None else _seq(seq, 0),
        _ts(doc.get("ts"), timestamp_ms / 1000.0),
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
