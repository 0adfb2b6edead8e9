"""Event-level evaluation of a series against labelled incidents.

An *incident* is a maximal run of a stream's samples labelled 1. An event *detects* an incident
when the window that opened it ends inside the incident. Reported: incidents and events, event
precision (events that open inside an incident), recall (incidents detected), F1, the delay from
an incident's first sample to its first detection, false alarms (events opening outside every
incident) per day, and the NAB score with NAB's standard costs (Lavin & Ahmad 2015): each
incident's earliest detection earns up to 1 by how early it comes, a missed incident costs 1, a
false alarm up to 0.11; 100 is perfect, 0 as good as never detecting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STANDARD = {"tp": 1.0, "fn": 1.0, "fp": 0.11}


def runs(label: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last)]`` positions of the runs of 1s in ``label``."""
    padded = np.r_[0, np.asarray(label, dtype=np.int8), 0]
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _scaled_sigmoid(x: float) -> float:
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def nab_raw(incidents: list[tuple[int, int]], detections: list[int]) -> float:
    """NAB's raw score of detections (row positions) against incident windows (row ranges)
    (NAB's sweeper: the earliest detection in a window scores by its position, each false
    alarm by its distance after the last window, each missed window -1)."""
    cost = STANDARD
    max_tp = _scaled_sigmoid(-1.0)
    hit: dict[int, float] = {}
    fp = 0.0
    dets = sorted(set(detections))
    for d in dets:
        w = next((k for k, (a, b) in enumerate(incidents) if a <= d <= b), None)
        if w is not None:
            a, b = incidents[w]
            weight = _scaled_sigmoid(-(b - d + 1) / (b - a + 1)) * cost["tp"] / max_tp
            hit[w] = max(hit.get(w, -math.inf), weight)
            continue
        before = [(a, b) for a, b in incidents if b < d]
        if before:
            a, b = before[-1]
            width = b - a + 1
            fp += _scaled_sigmoid(abs(b - d) / (width - 1) if width > 1 else 3.1) * cost["fp"]
        else:
            fp -= cost["fp"]
    missed = len(incidents) - len(hit)
    return sum(hit.values()) + fp - missed * cost["fn"]


@dataclass
class StreamResult:
    incidents: int
    detected: int
    events: int
    true_events: int
    delays: list[float]
    days: float
    raw: float
    null: float
    perfect: float


def nab_normalised(raw: float, null: float, perfect: float) -> float:
    """NAB's normalised score of pooled raw scores: 0 for a detector that flags nothing, 100 for
    a perfect one (``perfect`` above ``null``: some incident to find)."""
    return 100 * (raw - null) / (perfect - null)


def stream_result(ts: np.ndarray, label: np.ndarray, opening_rows: list[int]) -> StreamResult:
    """One stream: its samples' times and labels, and the sample rows where events opened."""
    incidents = runs(label)
    detected, delays, true_events = 0, [], 0
    for a, b in incidents:
        inside = [r for r in opening_rows if a <= r <= b]
        if inside:
            detected += 1
            delays.append(float(ts[min(inside)] - ts[a]))
    true_events = sum(any(a <= r <= b for a, b in incidents) for r in opening_rows)
    days = float(ts[-1] - ts[0]) / 86400.0 if len(ts) > 1 else 0.0
    return StreamResult(
        len(incidents),
        detected,
        len(opening_rows),
        true_events,
        delays,
        days,
        nab_raw(incidents, opening_rows),
        nab_raw(incidents, []),
        float(len(incidents)) * STANDARD["tp"],
    )


def summarise(results: list[StreamResult]) -> dict[str, object]:
    """Totals over streams, NAB-normalised as NAB's runner does over a corpus."""
    inc = sum(r.incidents for r in results)
    det = sum(r.detected for r in results)
    ev = sum(r.events for r in results)
    tev = sum(r.true_events for r in results)
    days = sum(r.days for r in results)
    precision = tev / ev if ev else 0.0
    recall = det / inc if inc else 0.0
    raw, null, perfect = (sum(getattr(r, k) for r in results) for k in ("raw", "null", "perfect"))
    delays = [d for r in results for d in r.delays]
    return {
        "incidents": inc,
        "incidents_detected": det,
        "events": ev,
        "event_precision": precision,
        "event_recall": recall,
        "event_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "median_delay_seconds": float(np.median(delays)) if delays else None,
        "false_alarms_per_day": (ev - tev) / days if days else None,
        "nab_score": nab_normalised(raw, null, perfect) if perfect != null else None,
    }


def pointwise(streams: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """Point-wise figures over streams of ``(times, labels, flags, scores)`` per sample, counts
    pooled (as SKAB and ``segment_score.py`` pool them): precision, recall, F1, FAR and MAR (%
    of normal samples flagged, of anomalous ones missed), segment recall (labelled runs with a
    flagged sample), false alarms per day (flagged runs touching no labelled run), and the mean
    over streams of the average precision of the scores (PR-AUC; streams without anomalies
    left out, samples without a score ranked lowest)."""
    from sklearn.metrics import average_precision_score

    tp = fp = fn = tn = segments = hit = false_runs = 0
    days = 0.0
    aps = []
    for ts, label, flag, score in streams:
        y, f = label.astype(bool), flag.astype(bool)
        tp, fp = tp + int((y & f).sum()), fp + int((~y & f).sum())
        fn, tn = fn + int((y & ~f).sum()), tn + int((~y & ~f).sum())
        for a, b in runs(y):
            segments += 1
            hit += bool(f[a : b + 1].any())
        false_runs += sum(not y[a : b + 1].any() for a, b in runs(f))
        days += float(ts[-1] - ts[0]) / 86400 if len(ts) > 1 else 0.0
        if y.any():
            s = np.where(np.isfinite(score), score, -np.inf)
            s[~np.isfinite(s)] = np.min(s[np.isfinite(s)], initial=0.0) - 1
            aps.append(float(average_precision_score(y, s)))
    ratio = lambda a, b: a / b if b else None  # noqa: E731
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "far_percent": ratio(100 * fp, fp + tn),
        "mar_percent": ratio(100 * fn, fn + tp),
        "segments": segments,
        "segment_recall": ratio(hit, segments),
        "false_alarms_per_day": ratio(false_runs, days),
        "pr_auc": float(np.mean(aps)) if aps else None,
    }


def tail_shares(streams: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cut: float) -> dict:
    """How one cut-off on the tail probability ``p`` behaves across streams of ``(labels,
    scores, p)`` per window: each stream's share of normal windows (label 0, with a ``p``) at
    ``p <= cut``, pooled, and the median, 10% and 90% quantiles and number of streams with none,
    over streams with 100 or more; and the same for the one cut-off on the raw score that flags
    the same pooled share (what a shared threshold on scores does instead)."""
    normal = [(s[(y == 0) & np.isfinite(p)], p[(y == 0) & np.isfinite(p)]) for y, s, p in streams]
    normal = [(s, p) for s, p in normal if len(p) >= 100]
    if not normal:
        return {}
    pooled = float(np.mean(np.concatenate([p for _, p in normal]) <= cut))
    raw_cut = float(np.quantile(np.concatenate([s for s, _ in normal]), 1 - pooled))

    def spread(name: str, shares: list[float]) -> dict[str, float | int]:
        a = np.asarray(shares)
        return {
            f"{name}_median": float(np.median(a)),
            f"{name}_p10": float(np.quantile(a, 0.1)),
            f"{name}_p90": float(np.quantile(a, 0.9)),
            f"{name}_none": int((a == 0).sum()),
        }

    return {
        "cut": cut,
        "streams": len(normal),
        "pooled": pooled,
        **spread("streams", [float(np.mean(p <= cut)) for _, p in normal]),
        "raw_cut": raw_cut,
        **spread("raw_streams", [float(np.mean(s > raw_cut)) for s, _ in normal]),
    }
