"""``aemon nab``: the Numenta Anomaly Benchmark's data files for :mod:`aemon.tools.benchmark`.

Every ``data/<category>/<file>.csv`` is one stream (``<category>/<file>.csv``). Each model trains
on NAB's probationary period only (the first min(15%, 750) rows, which NAB never scores); the
rest is streamed. Detections: the row of the window that opened each event, one CSV per file
(``timestamp,is_anomaly``) in NAB's own layout, for NAB's scorer. NAB's labels (when the
directory has them) mark a copy of the streamed rows, read only to evaluate.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from aemon.core.errors import DataError
from aemon.core.table import cell_error
from aemon.tools.benchmark import Prepared
from aemon.training.timeline import Timeline

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


def _rows(path: Path) -> list[dict[str, str]]:
    """A data file's rows; DataError unless it is NAB's ``timestamp,value`` CSV with rows."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a CSV ({exc})") from None
    if not {"timestamp", "value"} <= columns:
        raise DataError(f"{path}: needs NAB's timestamp and value columns")
    if not rows:
        raise DataError(f"{path}: a header but no rows")
    for line, row in enumerate(rows, start=2):
        try:
            finite = math.isfinite(float(row["value"]))
        except (TypeError, ValueError):  # text, an empty cell, a short row (None)
            finite = False
        if not finite:
            raise cell_error(f"{path}:{line}", "value", row["value"])
    return rows


def prepare(nab: Path, out: Path) -> Prepared:
    """A history CSV of every row (each model trains on its probationary rows), a stream CSV of
    the rows after each probationary period, and its labelled copy when NAB's labels are there."""
    found = files(nab)  # refused before anything is written
    out.mkdir(parents=True, exist_ok=True)
    history, rest = out / "history.csv", out / "stream.csv"
    stamps: dict[str, list[str]] = {}
    with history.open("w", newline="") as h, rest.open("w", newline="") as r:
        hw, rw = csv.writer(h), csv.writer(r)
        hw.writerow(["timestamp", "stream", "value"])
        rw.writerow(["timestamp", "stream", "value"])
        for path in found:
            stream = f"{path.parent.name}/{path.name}"
            rows = _rows(path)
            stamps[stream] = [row["timestamp"] for row in rows]
            p = probationary(len(rows))
            for i, row in enumerate(rows):
                cells = [row["timestamp"], stream, row["value"]]
                hw.writerow(cells)
                if i >= p:
                    rw.writerow(cells)
    labelled = _labelled_copy(nab, rest, out / "labelled.csv")
    return Prepared(history, rest, TRAIN_FRACTION, MAX_TRAIN_ROWS, stamps, labelled)


def write_detections(prepared: Prepared, t: Timeline, events: list[dict], out: Path) -> None:
    """NAB detection CSVs: the row of each event's opening window is a detection. Event
    ``start_seq`` counts samples from the first streamed row (after the probationary period)."""
    for stream, ts in prepared.stamps.items():
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


def _labelled_copy(nab: Path, rest: Path, out: Path) -> Path | None:
    """The streamed rows with NAB's incident windows as per-sample labels (None when the
    directory has no labels)."""
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
