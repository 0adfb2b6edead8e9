"""Input messages -> validated rows; every rejection carries a ``reason`` (a metric label).

Window messages (JSON ``{"stream", "seq"?, "ts"?, "values": [...]}`` or raw little-endian float32
with ``content-type: application/x-aemon-f32`` and ``stream``/``seq`` headers) are decoded straight
into a row of a preallocated float32 batch. Finiteness of window rows is checked once per batch
(:func:`non_finite_rows`), not per message; :func:`non_finite_reason` names a bad row's cause.
Sample messages (``{"stream", "ts"?, "value": x}`` or ``"values"`` for several channels) are
decoded into a small array for the windowing stage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

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


class Meta(NamedTuple):
    """Who a row belongs to. ``seq``/``ts`` fall back to the Kafka offset and timestamp.

    ``raw`` is a validated float32 payload still to be copied into the row (the caller copies a
    whole run of them at once); ``None`` when the row is already filled (JSON).
    """

    stream: str
    seq: int
    ts: float
    raw: bytes | None = None


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
    """Copy ``values`` into ``row`` (float32), checking the type and length (not finiteness)."""
    if not isinstance(values, list):
        raise Invalid("bad_values", "'values' must be an array of numbers")
    if len(values) != row.size:
        raise Invalid("wrong_length", f"{len(values)} values; the model takes {row.size}")
    try:
        row.reshape(-1)[:] = values
    except (TypeError, ValueError):
        raise Invalid("bad_values", "'values' must hold numbers only") from None


def copy_raw(flat: np.ndarray, rows: list[int], payloads: list[bytes]) -> None:
    """Copy float32 payloads into rows of ``flat`` ``[capacity, size]`` in one numpy call."""
    block = np.frombuffer(b"".join(payloads), dtype="<f4").reshape(len(rows), -1)
    if rows[-1] - rows[0] + 1 == len(rows):
        flat[rows[0] : rows[-1] + 1] = block
    else:
        flat[rows] = block


def non_finite_rows(rows: np.ndarray) -> np.ndarray:
    """Positions of rows holding NaN or inf (one vectorised check for a whole batch)."""
    if not len(rows):
        return np.empty(0, dtype=np.intp)
    flat = rows.reshape(len(rows), -1)
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def non_finite_reason(value: bytes | None) -> Invalid:
    """Why a decoded row is not finite: ``null`` among JSON values, or a NaN/inf/overflow."""
    try:
        values = orjson.loads(value or b"").get("values", [])
    except (orjson.JSONDecodeError, AttributeError):
        values = []  # raw float32: NaN or inf in the payload
    if any(v is None for v in values):
        return Invalid("bad_values", "'values' must hold numbers only (null found)")
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


def decode_window(
    value: bytes | None,
    headers: tuple | list | None,
    offset: int,
    timestamp_ms: int,
    row: np.ndarray,
    limits: Limits,
) -> Meta:
    """Decode one window message into ``row`` (a view into the batch); raise :class:`Invalid`.

    A float32 payload is validated but returned in ``Meta.raw`` for the caller to copy (see
    :func:`copy_raw`); finiteness is left to the caller, once per batch (:func:`non_finite_rows`).
    """
    value = value or b""
    ts_default = timestamp_ms / 1000.0
    ctype = stream_h = seq_h = None
    for key, v in headers or ():
        if key == "content-type":
            ctype = v
        elif key == "stream":
            stream_h = v
        elif key == "seq":
            seq_h = v
    if ctype == F32_CONTENT_TYPE:
        if len(value) > limits.max_bytes:
            raise Invalid("too_large", f"{len(value)} bytes > limit {limits.max_bytes}")
        if len(value) != row.size * 4:
            raise Invalid("wrong_length", f"{len(value)} bytes; the model takes {row.size} float32")
        try:
            stream = _stream((stream_h or b"").decode(), limits)
            seq = offset if seq_h is None else _seq(int(seq_h), offset)
        except (UnicodeDecodeError, ValueError):
            raise Invalid(
                "bad_f32", "headers 'stream' (utf-8) and 'seq' (integer) required"
            ) from None
        return Meta(stream, seq, ts_default, value)
    if ctype is not None and ctype != b"application/json":
        raise Invalid("unknown_content_type", f"content-type {ctype[:64]!r}")
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
    if not np.isfinite(out).all():
        raise non_finite_reason(value)
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
