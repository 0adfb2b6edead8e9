"""Cut a sample CSV into windows exactly as the daemon windows sample streams.

Each stream's samples go, in file order, through the same :class:`aemon.core.windowing.Windower`
the daemon uses, so offline and streaming windows are identical (a stream's windows start
afresh after each of its ends, as the daemon's after an end marker). A window takes the ``seq`` of
its last sample (the per-stream index, or the CSV's ``seq``), its ``start``/``ts`` times (first
and last sample), and is labelled 1 when any of its samples is. Several value columns become
channels, written channel by channel (``cpu@0 .. cpu@7, mem@0 ..``: the metrics' names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aemon.core.errors import DataError
from aemon.core.table import WindowTable
from aemon.core.windowing import LateSample, Windower, clock_values, window_channels
from aemon.training.datasets.samples import Samples, read_samples


@dataclass
class Cut:
    """Windows of a sample CSV and where they lie: rows of the CSV and times."""

    table: WindowTable  # values, stream, seq, ts and start (times of last and first sample), label
    last_row: np.ndarray  # int64 [n]: CSV data row (0-based) of each window's last sample


def windows_of(
    samples: Samples, length: int, stride: int | None = None, clock: str | None = None
) -> Cut:
    """Windows of ``length`` samples every ``stride`` samples (default ``length``) per stream;
    with a ``clock`` (``time_of_day`` or ``blank``), each sample's two clock channels after its
    values, as the daemon adds them."""
    stride = stride or length
    if length < 1:
        raise DataError(f"window length must be >= 1, got {length}")
    if not 1 <= stride <= length:
        raise DataError(f"stride must be between 1 and the window length {length}")
    channels = samples.values.shape[1]
    wide = window_channels(channels, clock is not None)
    shape = (length,) if wide == 1 else (wide, length)
    rows: dict[str, list] = {k: [] for k in ("values", "stream", "seq", "ts", "start", "last")}
    labels: list[int] = []
    out = np.zeros(shape, dtype=np.float32)
    for stream, run in ((s, run) for s in samples.streams() for run in samples.runs_of(s)):
        w = Windower(length, stride)  # afresh after each end, as the daemon forgets the stream
        accepted: list[int] = []
        for i in run:
            seq = None if samples.seq is None else int(samples.seq[i])
            try:
                values = samples.values[i].astype(np.float32)
                ticks = clock_values(clock, float(samples.ts[i]))  # its clock channels, if any
                end = w.push(0, int(i), stream, seq, values, out, ticks)
            except LateSample:  # a repeated seq: skipped, as the daemon refuses it
                continue
            accepted.append(int(i))
            if end is None:
                continue
            held = accepted[-length:]
            first = held[0]
            rows["values"].append(out.reshape(-1).copy())
            rows["stream"].append(stream)
            rows["seq"].append(end)
            rows["ts"].append(samples.ts[i])
            rows["start"].append(samples.ts[first])
            rows["last"].append(int(i))
            if samples.label is not None:
                labels.append(int(samples.label[held].max()))
    if not rows["values"]:
        longest = max(len(samples.rows_of(stream)) for stream in samples.streams())
        if longest >= length:  # enough samples, never that many in a row by their seq
            raise DataError(f"no stream has {length} samples in a row: its seq jumps or repeats")
        raise DataError(f"no stream has {length} samples")
    table = WindowTable(
        np.asarray(rows["values"], dtype=np.float32),
        stream=np.asarray(rows["stream"]),
        seq=np.asarray(rows["seq"], dtype=np.int64),
        ts=np.asarray(rows["ts"]),
        start=np.asarray(rows["start"]),
        label=np.asarray(labels, dtype=np.int8) if samples.label is not None else None,
        channels=tuple(samples.channels) if wide > 1 and clock is None else None,
    )
    return Cut(table, np.asarray(rows["last"], dtype=np.int64))


def cut(
    path: str | Path,
    length: int,
    stride: int | None = None,
    missing: str = "refuse",
    metrics: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> WindowTable:
    """The windows of the sample CSV at ``path`` (see :func:`windows_of`; ``missing``,
    ``metrics``, ``ignore``: :func:`~aemon.training.datasets.samples.samples_of`): one window
    CSV, so its streams must have the same metrics."""
    samples = read_samples(path, missing, metrics, ignore)
    if len(samples.kinds()) > 1:
        raise DataError(
            f"{path}: its streams have different metrics, and a window CSV holds windows of "
            "one width: cut each set of streams from a file of its own"
        )
    return windows_of(samples, length, stride).table
