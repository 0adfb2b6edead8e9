"""Numeric tables from CSV/TSV files, with errors that name the file, line and problem.

A *window CSV* has a header row. The optional id columns ``stream``, ``seq``, ``ts`` and
``label`` (1 = anomaly, 0 = normal) may stand anywhere; every other column is a value, in order.
Windows of several metrics are written metric by metric, each value column named ``METRIC@T``
(``cpu@0 .. cpu@7, mem@0 .. mem@7``), so that a reader knows the metrics apart.
Headerless numeric files (UCR TSVs, the TensorFlow tutorial's ``ecg.csv``) are read as a plain
matrix and their label column is picked by the caller.
"""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from aemon.core.errors import DataError
from aemon.core.times import EARLIEST, LATEST, time_problem

ID_COLUMNS = ("stream", "seq", "ts", "start", "label")
# What a sample's time column may be called (in a CSV or a DataFrame); never a value.
TIME_COLUMNS = ("timestamp", "ts", "time", "date", "datetime")
F32_MAX = float(np.finfo(np.float32).max)  # larger values are refused, as the daemon does
# Names other tools give a column of labels (NAB's, SKAB's, PyOD's ``y``): holding only 0 and 1
# among the values, such a column is refused rather than learned as a metric.
LABEL_NAMES = frozenset(
    {
        *("is_anomaly", "anomaly", "anomalies", "is_anomalous", "anomalous", "outlier"),
        *("is_outlier", "outliers", "ground_truth", "changepoint", "y", "target"),
    }
)


@dataclass
class WindowTable:
    """Windows (one per row) and their optional id columns."""

    values: np.ndarray  # float32 [n, length]
    stream: np.ndarray | None = None  # str [n]
    seq: np.ndarray | None = None  # int64 [n]
    ts: np.ndarray | None = None  # float64 [n]: the window's (last sample's) time
    start: np.ndarray | None = None  # float64 [n]: its first sample's time
    label: np.ndarray | None = None  # int8 [n], 1 = anomaly
    channels: tuple[str, ...] | None = None  # several metrics: their names, values metric by metric

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> WindowTable:
        """Rows at ``index`` (a boolean mask or integer positions)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return WindowTable(
            self.values[index],
            pick(self.stream),
            pick(self.seq),
            pick(self.ts),
            pick(self.start),
            pick(self.label),
            self.channels,
        )


def first_outside(ts: np.ndarray) -> int | None:
    """The position of the first of ``ts`` (epoch seconds) that is not a time aemon takes
    (:mod:`aemon.core.times`; NaN and inf included); None when every one is."""
    bad = ~((ts >= EARLIEST) & (ts < LATEST))
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def _open_rows(path: Path, delimiter: str) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first name
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh, delimiter=delimiter) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable text table ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return rows


SEPARATORS = ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"))


def check_header(names: list[str], where: str) -> None:
    """One clear line for the header mistakes people make: a file separated by something other
    than commas (read as one column), and a column name given twice."""
    if len(names) == 1:
        for sep, what in SEPARATORS:
            if sep in names[0]:
                raise DataError(
                    f"{where}:1: one column, {names[0][:60]!r}: the file looks separated by "
                    f"{what}; aemon reads comma-separated files"
                )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{where}:1: column {name!r} appears twice")
        seen.add(name)


def check_case(names: list[str], ids: tuple[str, ...], header: str) -> None:
    """An id column named in another case ("Stream", "Timestamp") would be read as a value
    column: one line naming the name to use instead (``header``: where the names are)."""
    for name in names:
        if name not in ids and name.lower() in ids:
            raise DataError(
                f"{header}: column names are case-sensitive: rename {name!r} to {name.lower()!r}"
            )


def _check_width(rows: list[list[str]], path: Path, first_line: int) -> int:
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{path}:{first_line + i}: {len(row)} columns where the first row has {width}"
            )
    return width


# How tables and DataFrames write a missing value (pandas' NA prints as "<NA>").
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>"})


def cell_error(where: str, column: str, cell: object) -> DataError:
    """The one wording, in every table aemon reads, for a cell that is not a finite float32
    number: a missing value (empty, NaN, ``NA``, ``null``), text that is no number at all, or
    the number it is."""
    if cell is None or str(cell).strip().lower() in MISSING:
        blank = cell is None or (isinstance(cell, str) and not cell.strip())
        shown = "empty" if blank else repr(cell) if isinstance(cell, str) else str(cell)
        return DataError(
            f"{where}: column {column!r} is {shown}, a missing value: aemon does not guess one; "
            "drop the row or fill it"
        )
    try:
        number = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return DataError(f"{where}: column {column!r} holds {cell!r}, not a number")
    return DataError(f"{where}: column {column!r} is {number} (not a finite float32 number)")


def is_name(cell: object) -> bool:
    """Text that is no number at all ("web-1"; not "", "NaN" or "inf")."""
    if not isinstance(cell, str) or not cell.strip():
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def refuse_labels(where: str, column: str, values: np.ndarray) -> None:
    """Refuse a value column named as labels are (``is_anomaly``, ``y``, ...) that holds only 0
    and 1: read as a metric, the labels would be learned and scored as one."""
    if str(column).lower() in LABEL_NAMES and len(values) and np.isin(values, (0, 1)).all():
        raise DataError(
            f"{where}: column {column!r} holds only 0 and 1, as labels do, and would be read as "
            "a value: name it 'label' (1 = anomaly) or leave it out"
        )


def refuse_names(first: str, columns: dict[str, Sequence[object]], has_stream: bool) -> None:
    """Refuse a column of names (``host``, say) among several value columns of a table without
    ``stream`` (``columns``: each value column's cells; ``first``: where the first data row is):
    say how to name it instead of calling its first cell no number."""
    if has_stream or len(columns) < 2:
        return
    for column, cells in columns.items():
        if all(map(is_name, cells)):
            raise DataError(
                f"{first}: column {column!r} holds {cells[0]!r}, text in every row: "
                "a column of stream ids must be named 'stream'"
            )


def _to_float(cells: list[list[str]], path: Path, first_line: int, names: list[str]) -> np.ndarray:
    """Convert a rectangular list of strings; on failure find the first bad cell and name it."""
    try:
        out = np.array(cells, dtype=np.float64)
    except ValueError:
        for i, row in enumerate(cells):
            for j, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    raise cell_error(f"{path}:{first_line + i}", names[j], cell) from None
        raise
    bad = ~np.isfinite(out) | (np.abs(out) > F32_MAX)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise cell_error(f"{path}:{first_line + i}", names[j], out[i, j])
    return out


def read_matrix(path: str | Path, delimiter: str | None = None) -> np.ndarray:
    """A headerless numeric file as a float64 matrix (TSV when the name ends in .tsv)."""
    path = Path(path)
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    rows = _open_rows(path, delimiter)
    width = _check_width(rows, path, 1)
    return _to_float(rows, path, 1, [str(j + 1) for j in range(width)])


def has_header(path: str | Path, delimiter: str = ",") -> bool:
    """True when the first row is not all numbers."""
    path = Path(path)
    rows = _open_rows(path, delimiter)
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        return True
    return False


def read_windows(path: str | Path, length: int | None = None) -> WindowTable:
    """A window CSV (header row; id columns by name; every other column a value)."""
    path = Path(path)
    rows = _open_rows(path, ",")
    header = [h.strip() for h in rows[0]]
    check_header(header, str(path))
    check_case(header, ID_COLUMNS, f"{path}:1")
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: a header but no rows")
    _check_width(rows, path, 1)
    value_cols = [j for j, h in enumerate(header) if h not in ID_COLUMNS]
    if not value_cols:
        raise DataError(f"{path}:1: no value columns (only {', '.join(header)})")
    names = [header[j] for j in value_cols]
    for name in names:
        if name in TIME_COLUMNS:  # "ts" is a window's own; the others name a sample's time
            raise DataError(
                f"{path}:1: column {name!r} is a sample CSV's time, and this reads windows (one "
                "per row, times in 'ts'): cut samples with 'aemon windows', or read them as "
                "samples ('train series', 'replay --samples')"
            )
    if length is not None and len(value_cols) != length:
        raise DataError(f"{path}: windows of {len(value_cols)} values; the model expects {length}")
    try:
        values = _to_float([[row[j] for j in value_cols] for row in body], path, 2, names)
    except DataError:  # a column of names, said so, before the first cell that is no number
        refuse_names(
            f"{path}:2",
            {header[j]: [row[j] for row in body] for j in value_cols},
            "stream" in header,
        )
        raise
    for j, name in enumerate(names):
        refuse_labels(f"{path}:1", name, values[:, j])
    table = WindowTable(values.astype(np.float32), channels=metrics_of(names))
    col = {h: j for j, h in enumerate(header) if h in ID_COLUMNS}
    if "stream" in col:
        table.stream = np.array([row[col["stream"]] for row in body], dtype=str)
    for name in ("seq", "ts", "start", "label"):
        if name not in col:
            continue
        raw = _to_float([[row[col[name]]] for row in body], path, 2, [name])[:, 0]
        if name in ("ts", "start"):
            i = first_outside(raw)
            if i is not None:
                cell = body[i][col[name]]
                raise DataError(f"{path}:{i + 2}: {name} {cell} {time_problem(raw[i])}")
            setattr(table, name, raw)
            continue
        if not np.array_equal(raw, np.round(raw)):
            i = int(np.flatnonzero(raw != np.round(raw))[0])
            raise DataError(f"{path}:{i + 2}: column {name!r} must hold whole numbers")
        if name == "label" and not np.isin(raw, (0, 1)).all():
            i = int(np.flatnonzero(~np.isin(raw, (0, 1)))[0])
            raise DataError(f"{path}:{i + 2}: label must be 0 (normal) or 1 (anomaly)")
        setattr(table, name, raw.astype(np.int8 if name == "label" else np.int64))
    return table


AT = "@"  # METRIC@T: a value column of a window of several metrics


def metrics_of(names: list[str]) -> tuple[str, ...] | None:
    """The metrics of value columns named ``METRIC@T``, metric by metric and ``T`` = 0, 1, ...
    within each (as :func:`write_windows` names them), when there are several; else None."""
    parts = [name.rpartition(AT) for name in names]
    if not all(at and t.isdigit() for _, at, t in parts):
        return None
    metrics = list(dict.fromkeys(m for m, _, _ in parts))
    steps = len(names) // len(metrics)
    expected = [(m, AT, str(t)) for m in metrics for t in range(steps)]
    return tuple(metrics) if len(metrics) > 1 and parts == expected else None


STDOUT = "-"  # an output file named so is standard output, as Unix tools take it


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[TextIO]:
    """A text file to write a table to (its folder made), or standard output for ``-``."""
    if str(path) == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        yield fh


def write_windows(path: str | Path, table: WindowTable) -> None:
    """Write a window CSV that :func:`read_windows` reads back exactly (float32 round-trips);
    ``-``: to standard output."""
    ids = [(n, getattr(table, n)) for n in ID_COLUMNS if getattr(table, n) is not None]
    flat = table.values.reshape(len(table.values), -1)
    length = flat.shape[1]
    if table.channels:  # metric by metric: each value named METRIC@T
        steps = length // len(table.channels)
        names = [f"{c}{AT}{t}" for c in table.channels for t in range(steps)]
    else:
        names = [f"v{i}" for i in range(length)]
    with writing(path) as fh:
        w = csv.writer(fh)
        w.writerow([n for n, _ in ids] + names)
        for i, row in enumerate(flat):
            w.writerow([_cell(col[i]) for _, col in ids] + [repr(float(v)) for v in row])


def _cell(value: object) -> str:
    return repr(float(value)) if isinstance(value, np.floating) else str(value)
