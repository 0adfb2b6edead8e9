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
    stream: str, seq: int, ts: float, score: float, is_anomaly: bool, threshold: float | None = None
) -> bytes:
    """A window's decision for the scores topic (``threshold`` where it varies per window)."""
    doc = {"stream": stream, "seq": seq, "ts": ts, "score": score, "is_anomaly": is_anomaly}
    if threshold is not None:
        doc["threshold"] = threshold
    return orjson.dumps(doc)


def event_message(record: dict) -> bytes:
    """An event's open or resolved message (``record`` from training.timeline.event_record)."""
    return orjson.dumps({**record, "detected_at": time.time()})


def dead_letter_headers(
    original: tuple | list | None, reason: str, error: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """The original headers plus why and where the message came from."""
    return [
        *(original or ()),
        ("reason", reason.encode()),
        ("error", error.encode()[:1024]),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]
