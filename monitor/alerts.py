"""Output messages: alerts, per-window scores and dead letters."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import orjson


def alert_id(model_version: str, stream: str, seq: int) -> str:
    """Deterministic: the same window scored by the same model always has the same id."""
    return hashlib.sha256(f"{model_version}\x1f{stream}\x1f{seq}".encode()).hexdigest()[:32]


def alert(
    *,
    model: str,
    model_version: str,
    stream: str,
    seq: int,
    ts: float,
    score: float,
    threshold: float,
    top: np.ndarray,
    errors_shape: tuple[int, ...],
) -> bytes:
    """The alert JSON; ``top`` are flattened positions, reported as indices into the input."""
    positions = [list(np.unravel_index(int(i), errors_shape)) for i in top]
    return orjson.dumps(
        {
            "alert_id": alert_id(model_version, stream, seq),
            "stream": stream,
            "seq": seq,
            "ts": ts,
            "score": float(score),
            "threshold": threshold,
            "model": model,
            "model_version": model_version,
            "detected_at": time.time(),
            "top_contributors": [
                [int(v) for v in p] if len(p) > 1 else int(p[0]) for p in positions
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def score_record(stream: str, seq: int, ts: float, score: float, is_anomaly: bool) -> bytes:
    return orjson.dumps(
        {"stream": stream, "seq": seq, "ts": ts, "score": float(score), "is_anomaly": is_anomaly}
    )


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
