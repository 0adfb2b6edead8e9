"""Cut a sample CSV into a window CSV, aligned exactly as the monitor windows sample streams.

Input: a header row; a time column (``timestamp`` or ``ts``: numbers or dates), optional
``stream`` (default one stream) and ``label`` (1 = anomalous sample) columns, and one or more
value columns. Samples are ordered by time within each stream; the window ending at sample index
``i`` (0-based per stream) exists when ``i + 1 >= length`` and ``(i + 1 - length) % stride == 0``,
as in :class:`monitor.windowing.Windower`. A window takes the ``seq`` and ``ts`` of its last
sample and is labelled 1 when any of its samples is. Several value columns become channels,
written channel by channel (``c0t0 .. c0tL, c1t0 ..``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training.datasets.table import WindowTable
from training.errors import DataError

TIME_COLUMNS = ("timestamp", "ts")


def _times(column: pd.Series, path: Path) -> np.ndarray:
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(column, errors="coerce", utc=True)
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0]) + 2
        raise DataError(f"{path}:{row}: {column.name} {column.iloc[row - 2]!r} is not a time")
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((parsed - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)


def cut(path: str | Path, length: int, stride: int | None = None) -> WindowTable:
    """Windows of ``length`` samples every ``stride`` samples (default ``length``) per stream."""
    path = Path(path)
    stride = stride or length
    if not 1 <= stride <= length:
        raise DataError(f"stride must be between 1 and the window length {length}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_col is None:
        raise DataError(f"{path}: needs a 'timestamp' or 'ts' column")
    value_cols = [c for c in frame.columns if c not in (*TIME_COLUMNS, "stream", "label")]
    if not value_cols:
        raise DataError(f"{path}: no value columns")
    values = frame[value_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{path}:{i + 2}: column {value_cols[j]!r} is not a finite number")
    ts = _times(frame[time_col], path)
    streams = frame["stream"].astype(str).to_numpy() if "stream" in frame else np.full(len(ts), "0")
    labels = frame["label"].to_numpy() if "label" in frame else None
    out_values, out_stream, out_seq, out_ts, out_label = [], [], [], [], []
    for stream in dict.fromkeys(streams):
        idx = np.flatnonzero(streams == stream)
        idx = idx[np.argsort(ts[idx], kind="stable")]
        for end in range(length - 1, len(idx), stride):
            rows = idx[end - length + 1 : end + 1]
            out_values.append(values[rows].T.ravel())
            out_stream.append(stream)
            out_seq.append(end)
            out_ts.append(ts[rows[-1]])
            if labels is not None:
                out_label.append(int(np.any(labels[rows] == 1)))
    if not out_values:
        raise DataError(f"{path}: no stream has {length} samples")
    return WindowTable(
        np.asarray(out_values, dtype=np.float32),
        stream=np.asarray(out_stream),
        seq=np.asarray(out_seq, dtype=np.int64),
        ts=np.asarray(out_ts),
        label=None if labels is None else np.asarray(out_label, dtype=np.int8),
    )
