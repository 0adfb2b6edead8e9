"""``aemon asd``: the Application Server Dataset (InterFusion) for :mod:`aemon.tools.benchmark`.

Every server (a folder with ``train.csv`` and ``test.csv``: ASD's ``omi-1`` .. ``omi-12``, or any
other machines in that layout) is one stream of all its metrics (ASD: 19 at 5 min). Its model
trains on its unlabelled ``train.csv`` (ASD: 30 days) and its ``test.csv`` (15 days; labels in
its ``label`` column) is streamed and scored point-wise. Detections: ``<server>/test.csv``
(``timestamp,is_anomaly,anomaly_score``), every test row, for ``segment_score.py DATA
DETECTIONS`` (``--best-f1`` reads the scores).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from aemon.core.errors import DataError
from aemon.tools.benchmark import Prepared, all_labelled, read_frame
from aemon.training.timeline import Timeline, flagged_rows, row_scores


def _natural(name: str) -> list[str | int]:
    """A sort key that puts ``omi-2`` before ``omi-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _servers(asd: Path) -> list[Path]:
    """Every folder holding a ``test.csv``, in natural order; each must hold a ``train.csv``."""
    found = sorted(
        (p for p in asd.iterdir() if (p / "test.csv").is_file()) if asd.is_dir() else [],
        key=lambda p: _natural(p.name),
    )
    if not found:
        raise DataError(
            f"{asd}: no <server>/test.csv files, each beside its train.csv (is it the ASD "
            "directory?)"
        )
    for server in found:
        if not (server / "train.csv").is_file():
            raise DataError(f"{server}: test.csv without a train.csv to train the model on")
    return found


def _read(path: Path) -> pd.DataFrame:
    layout = "a CSV of metrics in ASD's layout: timestamp, metrics[, label]"
    return read_frame(path, "timestamp", ("label",), layout)


def prepare(asd: Path, out: Path) -> Prepared:
    """A history CSV of every server's train.csv, a stream CSV of every test.csv without its
    labels, and a labelled copy of it for evaluation when every test.csv has a ``label``
    column (none: detections only, as for machines nobody labelled)."""
    found = _servers(asd)  # refused before anything is written
    frames = [(s.name, _read(s / "train.csv"), _read(s / "test.csv")) for s in found]
    unlabelled = [name for name, _, test in frames if "label" not in test.columns]
    labels = all_labelled(asd, unlabelled, len(frames), "label", "servers' test.csv")
    out.mkdir(parents=True, exist_ok=True)
    history, rest, stamps = [], [], {}
    for name, train, test in frames:
        for frame in (train, test):
            frame.insert(1, "stream", name)
        history.append(train)
        rest.append(test)
        stamps[name] = test["timestamp"].tolist()
    tests = pd.concat(rest, ignore_index=True)
    pd.concat(history, ignore_index=True).to_csv(out / "history.csv", index=False)
    tests.drop(columns=["label"], errors="ignore").to_csv(out / "stream.csv", index=False)
    labelled = None
    if labels:
        labelled = out / "labelled.csv"
        tests.to_csv(labelled, index=False)
    return Prepared(out / "history.csv", out / "stream.csv", stamps=stamps, labelled=labelled)


def write_detections(prepared: Prepared, t: Timeline, events: list[dict], out: Path) -> None:
    """Per server, every test row's flag and score (empty before the first window)."""
    rows = sum(len(s) for s in prepared.stamps.values())
    flags, scores = flagged_rows(t, events, rows), row_scores(t, rows)
    at = 0
    for server, stamps in prepared.stamps.items():
        n = len(stamps)
        path = out / server / "test.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        score = scores[at : at + n]
        pd.DataFrame(
            {
                "timestamp": stamps,
                "is_anomaly": flags[at : at + n],
                "anomaly_score": np.where(np.isnan(score), "", score.astype(str)),
            }
        ).to_csv(path, index=False)
        at += n
