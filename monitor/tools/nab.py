"""``aemon nab``: the label-blind protocol on the Numenta Anomaly Benchmark's data files.

1. Every ``data/<category>/<file>.csv`` under the NAB directory becomes one stream (named
   ``<category>/<file>.csv``) of one sample CSV.
2. ``aemon train series`` trains each stream's model on NAB's probationary period only (the first
   min(15%, 750) rows, which NAB never scores), with the same fixed settings for every file.
3. The rest of every file is one more sample CSV, replayed as raw samples through the broker into
   one daemon serving the whole models directory; the events it publishes are collected.
4. The same rows are scored offline (:mod:`aemon.training.timeline`); the two event lists must
   be equal.
5. Detections = the window that opened each event; one CSV per file (``timestamp,is_anomaly``)
   in NAB's own layout, ready for NAB's scorer.

6. Only then, NAB's labels (when the directory has them) mark the streamed rows, to evaluate the
   events and draw each file (``report/``). Nothing before this step reads them.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from aemon.core.errors import DataError

TRAIN_FRACTION = 0.15
MAX_TRAIN_ROWS = 750


def probationary(n: int) -> int:
    """NAB's probationary length: min(floor(0.15 n), 750)."""
    return min(math.floor(TRAIN_FRACTION * n), MAX_TRAIN_ROWS)


def files(nab: Path) -> list[Path]:
    found = sorted((nab / "data").glob("*/*.csv"))
    if not found:
        raise DataError(f"{nab}: no data/<category>/<file>.csv files (is it NAB's directory?)")
    return found


def build_csvs(nab: Path, out: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    """(history CSV of every row, stream CSV of the rows after each probationary period,
    {stream: the file's timestamps}) for every NAB file."""
    out.mkdir(parents=True, exist_ok=True)
    history, rest = out / "history.csv", out / "stream.csv"
    stamps: dict[str, list[str]] = {}
    with history.open("w", newline="") as h, rest.open("w", newline="") as r:
        hw, rw = csv.writer(h), csv.writer(r)
        hw.writerow(["timestamp", "stream", "value"])
        rw.writerow(["timestamp", "stream", "value"])
        for path in files(nab):
            stream = f"{path.parent.name}/{path.name}"
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            stamps[stream] = [row["timestamp"] for row in rows]
            p = probationary(len(rows))
            for i, row in enumerate(rows):
                cells = [row["timestamp"], stream, row["value"]]
                hw.writerow(cells)
                if i >= p:
                    rw.writerow(cells)
    return history, rest, stamps


def write_detections(events: list[dict], stamps: dict[str, list[str]], out: Path) -> dict[str, int]:
    """NAB detection CSVs: the row of each event's opening window is a detection. Event
    ``start_seq`` counts samples from the first streamed row (after the probationary period).
    Returns detections per stream."""
    counts = {}
    for stream, ts in stamps.items():
        p = probationary(len(ts))
        flags = np.zeros(len(ts), dtype=int)
        for ev in events:
            if ev["stream"] == stream and ev["state"] == "open":
                flags[p + int(ev["start_seq"])] = 1
        path = out / stream
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "is_anomaly"])
            w.writerows(zip(ts, flags.tolist(), strict=True))
        counts[stream] = int(flags.sum())
    return counts


def save_events(path: Path, events: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(e, sort_keys=True) for e in events) + "\n")


async def stream_events(
    models: Path, rest: Path, expected: int, bootstrap: str | None, partitions: int = 4
) -> tuple[list[dict], dict[str, float]]:
    """Replay ``rest`` as raw samples through the broker into one daemon serving ``models``;
    return the event messages it published once it has decided ``expected`` windows, and its
    counters."""
    import contextlib

    import orjson

    from aemon.daemon.config import local
    from aemon.daemon.service import Service
    from aemon.tools.broker import EmbeddedBroker, create_topics
    from aemon.tools.harness import started, until_decided
    from aemon.tools.replay import replay
    from aemon.tools.topics import read_topic

    async with contextlib.AsyncExitStack() as stack:
        if bootstrap is None:
            bootstrap = (await stack.enter_async_context(EmbeddedBroker())).bootstrap
        s = local(models, bootstrap, "nab")
        await create_topics(
            bootstrap, {s.input_topic: partitions, s.alerts_topic: 1, s.dlq_topic: 1}
        )
        svc = Service(s)
        daemon = await started(svc)
        await replay(rest, s.input_topic, bootstrap, samples=True)
        await until_decided(svc, daemon, expected, timeout=3600)
        t = svc.totals
        counters = {
            "windows_scored": float(t.windows),
            "anomalies": float(t.anomalies),
            "events_opened": float(t.opened),
            "events_resolved": float(t.resolved),
        }
        svc.stop()
        await daemon
        records = await read_topic(bootstrap, s.alerts_topic)
    return [orjson.loads(r.value) for r in records], counters


EXACT = ("event_id", "state", "stream", "start_seq", "end_seq", "windows_above", "resolved_seq")


def same_events(offline: list[dict], daemon: list[dict]) -> list[str]:
    """Differences between two event lists (empty: equal). Everything but the peak score must
    match exactly; peak scores to 1e-5 (float32 sums may differ in the last bit across batch
    sizes). The daemon's list may hold duplicates (at-least-once); they must be identical."""

    def key(e: dict) -> tuple:
        return tuple(e.get(k) for k in EXACT)

    a, b = {key(e): e for e in offline}, {key(e): e for e in daemon}
    problems = [f"offline only: {k}" for k in a.keys() - b.keys()]
    problems += [f"daemon only: {k}" for k in b.keys() - a.keys()]
    for k in a.keys() & b.keys():
        pa, pb = a[k]["peak_score"], b[k]["peak_score"]
        if abs(pa - pb) > 1e-5 * max(abs(pa), 1e-12):
            problems.append(f"peak score {pa} against {pb}: {k}")
    return problems


def labelled_copy(nab: Path, rest: Path, out: Path) -> Path | None:
    """The streamed rows with NAB's incident windows as per-sample labels, to evaluate and draw
    after detection (None when the directory has no labels). Nothing above reads it."""
    labels = nab / "labels" / "combined_windows.json"
    if not labels.is_file():
        return None
    windows = {
        k: [(a[:19], b[:19]) for a, b in v] for k, v in json.loads(labels.read_text()).items()
    }
    with rest.open(newline="") as src, out.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow([*next(reader), "label"])
        for ts, stream, value in reader:
            inside = any(a <= ts[:19] <= b for a, b in windows.get(stream, ()))
            writer.writerow([ts, stream, value, int(inside)])
    return out
