"""``aemon skab``: the Skoltech Anomaly Benchmark for :mod:`aemon.tools.benchmark`.

Every labelled run (``valve1/``, ``valve2/``, ``other/``: 34 files of 8 sensors at 1 s; the
anomaly-free run is not scored by SKAB) is one stream (``<folder>/<file>.csv``) with all eight
channels. SKAB's protocol: each model trains on its file's first 400 rows; the rest is scored,
point-wise, pooled over files. Detections: one CSV per file (``datetime,is_anomaly``, every row,
the first 400 never flagged) for ``segment_score.py DATA DETECTIONS --skip 400``. Runs in
this layout without the ``anomaly`` column (nobody labelled them) give the detections alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aemon.core.errors import DataError
from aemon.tools.benchmark import Prepared, all_labelled, read_frame
from aemon.training.timeline import Timeline, flagged_rows

TRAIN_ROWS = 400
LABELS = ("anomaly", "changepoint")


def _runs(skab: Path) -> list[Path]:
    found = [p for p in sorted(skab.glob("*/*.csv")) if p.parent.name != "anomaly-free"]
    if not found:
        raise DataError(f"{skab}: no <folder>/<file>.csv runs (is it SKAB's directory?)")
    return found


def _read(path: Path) -> pd.DataFrame:
    return read_frame(path, "datetime", LABELS, "a SKAB run", sep=";")


def prepare(skab: Path, out: Path) -> Prepared:
    """A history CSV of every run whole (each model trains on its first 400 rows), a stream CSV
    of the rows after them, and a labelled copy of those for evaluation when every run has an
    ``anomaly`` column (none: detections only, as for runs nobody labelled)."""
    runs = [(f"{p.parent.name}/{p.name}", _read(p)) for p in _runs(skab)]
    unlabelled = [stream for stream, frame in runs if "anomaly" not in frame.columns]
    labels = all_labelled(skab, unlabelled, len(runs), "anomaly", "runs")
    out.mkdir(parents=True, exist_ok=True)  # nothing written before every run is read
    parts, stamps, anomalies = [], {}, []
    for stream, frame in runs:
        stamps[stream] = frame["datetime"].tolist()
        values = frame.drop(columns=[c for c in LABELS if c in frame.columns])
        values.insert(1, "stream", stream)
        parts.append(values)
        if labels:
            anomalies.append(frame["anomaly"].iloc[TRAIN_ROWS:].astype(int))
    history = pd.concat(parts, ignore_index=True)
    rest = pd.concat([p.iloc[TRAIN_ROWS:] for p in parts], ignore_index=True)
    history.to_csv(out / "history.csv", index=False)
    rest.to_csv(out / "stream.csv", index=False)
    labelled = None
    if labels:
        labelled = out / "labelled.csv"
        rest.assign(label=pd.concat(anomalies, ignore_index=True).to_numpy()).to_csv(
            labelled, index=False
        )
    return Prepared(out / "history.csv", out / "stream.csv", 1.0, TRAIN_ROWS, stamps, labelled)


def write_detections(prepared: Prepared, t: Timeline, events: list[dict], out: Path) -> None:
    """Per run, every row's flag (the training rows 0), in SKAB's time column."""
    flags = flagged_rows(t, events, sum(len(s) - TRAIN_ROWS for s in prepared.stamps.values()))
    at = 0
    for stream, stamps in prepared.stamps.items():
        n = len(stamps) - TRAIN_ROWS
        path = out / stream
        path.parent.mkdir(parents=True, exist_ok=True)
        column = [0] * TRAIN_ROWS + flags[at : at + n].tolist()
        pd.DataFrame({"datetime": stamps, "is_anomaly": column}).to_csv(path, index=False)
        at += n
