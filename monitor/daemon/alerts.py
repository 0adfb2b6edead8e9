"""Output messages: alerts, per-window scores and dead letters."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import orjson


def alert_id(model_version: str, stream: str, seq: int) -> str:
    """Deterministic: the same window scored by the same model always has the same id."""
    return hashlib.sha256(f"{model_version}\x1f{stream}\x1f{seq}".encode()).hexdigest()[:32]


def contributors(top: np.ndarray, shape: tuple[int, ...]) -> list:
    """Flattened positions ``[windows, k]`` as indices into the input, for a whole batch at once:
    ints for 1-D inputs, ``[channel, step]`` or ``[row, col]`` lists otherwise."""
    if len(shape) == 1:
        return top.tolist()
    return np.stack(np.unravel_index(top, shape), axis=-1).tolist()


def alert(
    *,
    model: str,
    model_version: str,
    stream: str,
    seq: int,
    ts: float,
    score: float,
    threshold: float,
    top: list,
) -> bytes:
    """The alert JSON; ``top`` is the window's entry of :func:`contributors`."""
    return orjson.dumps(
        {
            "alert_id": alert_id(model_version, stream, seq),
            "stream": stream,
            "seq": seq,
            "ts": ts,
            "score": score,
            "threshold": threshold,
            "model": model,
            "model_version": model_version,
            "detected_at": time.time(),
            "top_contributors": top,
        }
    )


def score_record(
    stream: str,
    seq: int,
    ts: float,
    score: float,
    is_anomaly: bool,
    threshold: float | None = None,
    p: float | None = None,
) -> bytes:
    """A window's decision for the scores topic (``threshold`` where it varies per window, ``p``
    the window's tail probability where the stream has a score history)."""
    doc: dict[str, object] = {
        "stream": stream,
        "seq": seq,
        "ts": ts,
        "score": score,
        "is_anomaly": is_anomaly,
    }
    if threshold is not None:
        doc["threshold"] = threshold
    if p is not None:
        doc["p"] = p
    return orjson.dumps(doc)


def event_message(record: dict) -> bytes:
    """An event's open or resolved message (``record`` as ``events.event_record`` makes it)."""
    return orjson.dumps({**record, "detected_at": time.time()})


def dead_letter(
    topic: str, rec: object, reason: str, error: str, source: tuple[str, int], max_bytes: int
) -> tuple[str, bytes | None, bytes | None, list]:
    """A refused record as a dead letter: its bytes (cut to ``max_bytes``, with a
    ``truncated_from`` header giving the original size) and headers, plus why and where from."""
    value: bytes | None = rec.value  # type: ignore[attr-defined]
    headers = [
        *(rec.headers or ()),  # type: ignore[attr-defined]
        ("reason", reason.encode()),
        ("error", error.encode()[:1024]),
        ("source_topic", source[0].encode()),
        ("source_partition", str(source[1]).encode()),
        ("source_offset", str(rec.offset).encode()),  # type: ignore[attr-defined]
    ]
    if value is not None and len(value) > max_bytes:
        headers.append(("truncated_from", str(len(value)).encode()))
        value = value[:max_bytes]
    return topic, value, rec.key, headers  # type: ignore[attr-defined]
