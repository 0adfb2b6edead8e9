"""Sample CSVs: one row per sample of one or more telemetry streams, one format everywhere.

Columns: a time column named ``timestamp``, ``ts``, ``time``, ``date`` or ``datetime`` (ISO
8601, zone-less times taken as UTC, or epoch seconds, not milliseconds: see
:mod:`aemon.core.times`); optional ``stream`` (default one stream,
``"0"``), ``seq`` (the per-stream sample index: an id, never a value), ``label`` (1 =
anomalous sample) and ``end`` (1 = the stream's end marker follows this sample: what comes after
is a new stream of the same name, windowed, learned and decided afresh, as the daemon takes a
marker); every other column is a value channel, in order (or only those that ``metrics``
names, in its order, or all but those that ``ignore`` names: a host's name, say, is not
read). Values must be finite float32 numbers, as the daemon requires. Rows keep file order:
the clock never reorders samples (see :mod:`aemon.core.windowing`).
"""

from __future__ import annotations

import csv
import shlex
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from aemon.core.errors import ConfigError, DataError
from aemon.core.specs import MISSING_RULES
from aemon.core.table import (
    F32_MAX,
    MISSING,
    TIME_COLUMNS,
    cell_error,
    check_case,
    check_header,
    first_outside,
    is_name,
    refuse_labels,
    refuse_names,
)
from aemon.core.times import time_problem
from aemon.core.wording import listed

ID_COLUMNS = ("stream", "seq", "label", "end")
# A stream whose time goes back at this share of its steps or more is not in time order (a
# daylight-saving hour stamped twice or a clock stepping back goes back once).
UNORDERED_SHARE = 0.01


class Rows(NamedTuple):
    """How messages name a table's rows: a sample CSV's by line (its header is line 1), an
    in-memory table's (a DataFrame's) by position, as ``frame.iloc`` counts them."""

    name: str
    in_file: bool

    @classmethod
    def of(cls, path: str | None) -> Rows:
        return cls(path, True) if path is not None else cls("samples", False)

    def at(self, i: int) -> str:
        """Where data row ``i`` (0-based) is: ``s.csv:12`` or ``samples, row 10``."""
        return f"{self.name}:{i + 2}" if self.in_file else f"{self.name}, row {i}"

    def line(self, i: int) -> str:
        """Data row ``i`` within a message about its table: ``line 12`` or ``row 10``."""
        return f"line {i + 2}" if self.in_file else f"row {i}"

    @property
    def header(self) -> str:
        """Where the column names are."""
        return f"{self.name}:1" if self.in_file else self.name


@dataclass
class Samples:
    """The rows of a sample CSV, in file order."""

    stream: np.ndarray  # str [n]
    ts: np.ndarray  # float64 epoch seconds [n]
    values: np.ndarray  # float64 [n, channels]
    channels: list[str]
    seq: np.ndarray | None = None  # int64 [n]
    label: np.ndarray | None = None  # int8 [n]
    zoneless: bool = False  # times had no zone and were taken as UTC
    end: np.ndarray | None = None  # bool [n]: the stream's end marker follows the sample

    def __len__(self) -> int:
        return len(self.ts)

    def streams(self) -> list[str]:
        """Stream ids in order of first appearance."""
        return list(dict.fromkeys(self.stream.tolist()))

    def rows_of(self, stream: str) -> np.ndarray:
        return np.flatnonzero(self.stream == stream)

    def runs_of(self, stream: str) -> list[np.ndarray]:
        """The rows of ``stream`` cut after each of its ends: the streams of that name the
        daemon meets one after another (one run without an ``end`` column)."""
        rows = self.rows_of(stream)
        if self.end is None:
            return [rows]
        cuts = np.flatnonzero(self.end[rows[:-1]]) + 1
        return np.split(rows, cuts)

    def subset(self, rows: np.ndarray, columns: list[int] | None = None) -> Samples:
        """The samples at ``rows`` (positions), in that order; ``columns``: only those values."""
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        values, channels = self.values[rows], self.channels
        if columns is not None:
            values, channels = values[:, columns], [channels[j] for j in columns]
        return Samples(
            self.stream[rows],
            self.ts[rows],
            values,
            channels,
            pick(self.seq),
            pick(self.label),
            self.zoneless,
            pick(self.end),
        )

    def columns(self) -> dict[str, tuple[int, ...]]:
        """Each stream's value columns, in order of first appearance: in a file of streams with
        different metrics, a stream's rows leave the others' columns empty (NaN here; the reader
        allows no other gap, so a stream's first row says)."""
        names, first = np.unique(self.stream, return_index=True)
        present = ~np.isnan(self.values[first])
        have = {
            str(n): tuple(np.flatnonzero(p).tolist()) for n, p in zip(names, present, strict=True)
        }
        return {s: have[s] for s in self.streams()}

    def own_metrics(self, rows: np.ndarray) -> Samples:
        """The samples at ``rows``, all of one stream (:meth:`rows_of`), with the metrics it has."""
        return self.subset(rows, np.flatnonzero(~np.isnan(self.values[rows[0]])).tolist())

    def kinds(self) -> list[Samples]:
        """The samples in parts of streams with the same metrics, each with those columns only
        (one part, these samples, when every stream has every column)."""
        if not np.isnan(self.values).any():
            return [self]
        groups: dict[tuple[int, ...], list[str]] = {}
        for stream, columns in self.columns().items():
            groups.setdefault(columns, []).append(stream)
        return [
            self.subset(np.flatnonzero(np.isin(self.stream, streams)), list(columns))
            for columns, streams in groups.items()
        ]


def parse_times(column: pd.Series, rows: Rows) -> tuple[np.ndarray, bool]:
    """Epoch seconds from numbers, ISO 8601 texts or datetimes (a DataFrame's); also whether
    the times named no zone (those are taken as UTC)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        zoneless = getattr(column.dt, "tz", None) is None
        stamps = column.dt.tz_localize("UTC") if zoneless else column.dt.tz_convert("UTC")
        if stamps.isna().any():
            row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
            raise DataError(f"{rows.at(row)}: {column.name} is not a time")
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        return ((stamps - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64), zoneless
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        out = numeric.to_numpy(dtype=np.float64)
        i = first_outside(out)
        if i is not None:
            cell = column.iloc[i]
            raise DataError(f"{rows.at(i)}: {column.name} {cell} {time_problem(out[i])}")
        return out, False
    text = column.astype(str)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(
            f"{rows.at(row)}: {column.name} {text.iloc[row]!r} is not a time (ISO 8601, such"
            " as 2026-01-31T14:05:00Z, or seconds since the epoch)"
        )
    zoneless = not text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).any()
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((parsed - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64), zoneless


def _whole(frame: pd.DataFrame, name: str, rows: Rows) -> np.ndarray:
    raw = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(raw) | (raw != np.round(raw))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{rows.at(row)}: column {name!r} must hold whole numbers")
    return raw.astype(np.int64)


def _flags(
    frame: pd.DataFrame, name: str, rows: Rows, meaning: str, dtype: type
) -> np.ndarray | None:
    """Column ``name`` of 0s and 1s, as ``dtype`` (None without it); another number is refused
    with its row and what the two mean."""
    if name not in frame:
        return None
    flags = _whole(frame, name, rows)
    if not np.isin(flags, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(flags, (0, 1)))[0])
        raise DataError(f"{rows.at(row)}: {name} must be {meaning}")
    return flags.astype(dtype)


def read_samples(
    path: str | Path,
    missing: str = "refuse",
    metrics: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> Samples:
    """Read and check a sample CSV (see the module doc; ``missing``, ``metrics``, ``ignore``:
    :func:`samples_of`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
        check_header([h.strip() for h in header], str(path))  # before pandas renames doubles
        # Every cell as written: pandas would read "NA", "null" or "None" as missing, which
        # turns a stream called NA into an empty id and a text value into a number (nan).
        frame = pd.read_csv(
            path,
            dtype={"stream": str, **dict.fromkeys(TIME_COLUMNS, str)},
            skipinitialspace=True,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split())  # pandas may end its message with a newline
        raise DataError(f"{path}: not a readable CSV ({reason})") from None
    return samples_of(frame, str(path), missing, metrics, ignore)


def samples_of(
    frame: pd.DataFrame,
    path: str | None = None,
    missing: str = "refuse",
    metrics: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> Samples:
    """Check a table of samples with the columns of a sample CSV (see the module doc): the
    file at ``path`` (messages name its lines, the header line 1), or else a table in memory
    (messages name its rows by position). A missing value (an empty cell, NaN, ``NA``, ``null``
    in a metric its stream has) is refused with its line, or with ``missing="skip"`` its row is
    left out (one warning), as the daemon dead-letters such a sample: the stream's neighbouring
    samples then follow each other, or its windows start again where ``seq`` jumps.
    ``metrics``: the value columns, in this order (None: every column but the time and id
    columns, in table order); ``ignore``: columns that are no metric (a host's name, a unit),
    not read."""
    if missing not in MISSING_RULES:
        raise ConfigError(f"missing must be one of {', '.join(MISSING_RULES)}, not {missing!r}")
    rows = Rows.of(path)
    table = rows.name
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    twice = frame.columns[frame.columns.duplicated()]
    if len(twice):
        raise DataError(f"{table}: column {twice[0]!r} appears twice")
    times = [c for c in TIME_COLUMNS if c in frame.columns]
    if len(times) > 1:
        raise DataError(f"{table}: several time columns ({', '.join(times)}); keep one")
    time_col = times[0] if times else None
    value_cols = [c for c in frame.columns if c not in (*TIME_COLUMNS, *ID_COLUMNS)]
    check_case(value_cols, (*TIME_COLUMNS, *ID_COLUMNS), rows.header)
    if metrics is not None or ignore:
        value_cols = _chosen(metrics, list(ignore), value_cols, rows.header)
    if time_col is None:
        raise DataError(f"{table}: needs a time column named {', '.join(TIME_COLUMNS)}")
    if not len(frame):
        raise DataError(f"{table}: a header but no rows")
    if not value_cols:
        raise DataError(f"{table}: no value columns")
    values = frame[value_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (np.abs(values) > F32_MAX)
    gaps = np.zeros(len(frame), dtype=bool)  # rows left out: a missing value, with "skip"
    if bad.any():
        absent, blank = _absent(frame, value_cols, table)
        bad &= ~absent
        if missing == "skip":
            gaps = (bad & blank).any(axis=1)
            bad &= ~blank
        if bad.any():
            i, j = np.argwhere(bad)[0]
            refuse_names(rows.at(0), {c: frame[c].tolist() for c in value_cols}, "stream" in frame)
            if len(value_cols) > 1 and all(map(is_name, frame[value_cols[j]])):  # a host's name
                raise _text_column(rows, i, value_cols[j], frame[value_cols[j]].iloc[i])
            error = cell_error(rows.at(i), value_cols[j], frame[value_cols[j]].iloc[i])
            if blank[i, j] and rows.in_file:  # a file: read by a command that takes --missing
                error = DataError(f"{error} (or give --missing skip to leave such rows out)")
            raise error
    for j, name in enumerate(value_cols):
        column = values[:, j]
        refuse_labels(rows.header, name, column[~np.isnan(column)])
    ts, zoneless = parse_times(frame[time_col], rows)
    stream = (
        frame["stream"].astype(object).where(frame["stream"].notna(), "").astype(str).to_numpy()
        if "stream" in frame
        else np.full(len(ts), "0")
    )
    if (stream == "").any():
        raise DataError(f"{rows.at(int(np.flatnonzero(stream == '')[0]))}: empty stream id")
    label = _flags(frame, "label", rows, "0 (normal) or 1 (anomaly)", np.int8)
    end = _flags(frame, "end", rows, "0 or 1 (the stream ends after the row)", bool)
    seq = _whole(frame, "seq", rows) if "seq" in frame else None
    _warn_if_unordered(stream, ts, frame[time_col], rows)
    if seq is not None:
        _warn_if_seq_jumps(stream, seq, rows, end)
        _warn_if_seq_from_one(stream, seq, rows)
    out = Samples(stream, ts, values, value_cols, seq, label, zoneless, end)
    if not gaps.any():
        return out
    if gaps.all():
        raise DataError(f"{table}: every row has a missing value")
    i = int(np.flatnonzero(gaps)[0])
    j = int(np.flatnonzero(~np.isfinite(values[i]))[0])
    warnings.warn(
        f"{rows.at(i)}: left out {int(gaps.sum()):,} of {len(gaps):,} rows with a missing "
        f"value (the first: {value_cols[j]!r}), as the daemon leaves out such samples",
        stacklevel=2,
    )
    if end is not None:
        _keep_ends(stream, end, gaps)
    return out.subset(np.flatnonzero(~gaps))


def _text_column(rows: Rows, i: int, column: str, cell: object) -> DataError:
    """A column of text in every row (a host's name, a unit) among the value columns: how to
    leave it out."""
    said = f"{rows.at(i)}: column {column!r} holds {cell!r}, text in every row: no metric; "
    if rows.in_file:  # read by a command that takes --ignore and --metrics
        return DataError(
            f"{said}leave it out with --ignore {shlex.quote(column)} (or name the metrics to "
            "read with --metrics)"
        )
    return DataError(f"{said}leave it out of the table")


def _chosen(
    metrics: Sequence[str] | None, ignore: list[str], columns: list[str], header: str
) -> list[str]:
    """The value columns: those ``metrics`` names, in its order, or ``columns`` but those
    ``ignore`` names; each name once, a value column of the table (not its time or an id
    column)."""
    if metrics is not None and ignore:
        raise ConfigError("name the metrics to read or the columns to ignore, not both")
    what, names = ("metrics", list(metrics)) if metrics is not None else ("ignore", ignore)
    if not names:
        raise ConfigError(f"{what}: name at least one column")
    twice = next((m for k, m in enumerate(names) if m in names[:k]), None)
    if twice is not None:
        raise ConfigError(f"{what}: {twice!r} is named twice")
    for name in names:
        if name in (*TIME_COLUMNS, *ID_COLUMNS):
            raise ConfigError(
                f"{name!r} is the time column or an id column ({', '.join(ID_COLUMNS)}), never "
                "a metric"
            )
        if name not in columns:
            raise DataError(f"{header}: no value column {name!r} (they are {listed(columns)})")
    if metrics is not None:
        return names
    kept = [c for c in columns if c not in names]
    if not kept:
        raise DataError(f"{header}: no value column left once {listed(names)} are ignored")
    return kept


def _keep_ends(stream: np.ndarray, end: np.ndarray, gaps: np.ndarray) -> None:
    """A row left out that its stream's end follows hands the end to the stream's last row kept
    before it: the daemon dead-letters such a sample, and the marker after it still ends the
    stream (a stream that ended there already, or has no row kept, is ended alike)."""
    for i in np.flatnonzero(gaps & end).tolist():
        kept = np.flatnonzero((stream[:i] == stream[i]) & ~gaps[:i])
        if len(kept):
            end[kept[-1]] = True


def _absent(frame: pd.DataFrame, value_cols: list[str], path: str) -> tuple[np.ndarray, np.ndarray]:
    """Cells ``[n, columns]`` of metrics a stream does not have: empty in every row of its
    stream, where other streams have values (one file for streams of different metrics; their
    values are NaN); and the cells that are missing values (empty, NaN, ``NA``, ...). A column
    empty in every row, or a stream with no metric, is refused."""
    cells = frame[value_cols].astype(str).apply(lambda c: c.str.strip().str.lower())
    missing = cells.isin(MISSING).to_numpy() | frame[value_cols].isna().to_numpy()
    if len(frame) < 2:  # one row: a gap as much as a metric it does not have
        return np.zeros_like(missing), missing
    everywhere = missing.all(axis=0)
    if everywhere.any():
        column = value_cols[int(np.flatnonzero(everywhere)[0])]
        raise DataError(f"{path}: column {column!r} is empty in every row: leave it out")
    if "stream" not in frame:
        return np.zeros_like(missing), missing
    ids = frame["stream"].astype(str).to_numpy()
    whole = pd.DataFrame(missing).groupby(ids).transform("all").to_numpy()  # per stream
    none = whole.all(axis=1)
    if none.any():
        stream = ids[int(np.flatnonzero(none)[0])]
        raise DataError(f"{path}: stream {stream!r} has no value in any column")
    return missing & whole, missing


class _Steps(NamedTuple):
    """The first stream whose steps (a sample to its stream's next, in file order) are odd at
    least twice and at 1% or more of them: how often, and the first such step's data rows."""

    stream: str
    count: int
    steps: int
    row: int  # the later sample's data row (0-based)
    prev: int  # the earlier one's
    more: int  # other streams as odd


def _odd_steps(
    stream: np.ndarray,
    values: np.ndarray,
    odd: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ends: np.ndarray | None = None,
) -> _Steps | None:
    """``ends``: rows after which a stream ends (the step from such a row is not counted)."""
    codes, names = pd.factorize(stream)
    order = np.argsort(codes, kind="stable")  # each stream's rows together, in file order
    by_stream, ordered = codes[order], values[order]
    step = by_stream[1:] == by_stream[:-1]
    if ends is not None:
        step &= ~ends[order][:-1]
    hit = step & odd(ordered[:-1], ordered[1:])
    counts = np.bincount(by_stream[1:][hit], minlength=len(names))
    steps = np.bincount(by_stream[1:][step], minlength=len(names))
    bad = np.flatnonzero((counts >= 2) & (counts >= UNORDERED_SHARE * steps))
    if not len(bad):
        return None
    k = int(bad[0])
    first = int(np.flatnonzero(hit & (by_stream[1:] == k))[0])
    row, prev = int(order[first + 1]), int(order[first])
    return _Steps(str(names[k]), int(counts[k]), int(steps[k]), row, prev, len(bad) - 1)


def _others(more: int) -> str:
    return f" (and {more} more streams)" if more else ""


def _warn_if_seq_jumps(
    stream: np.ndarray, seq: np.ndarray, rows: Rows, ends: np.ndarray | None
) -> None:
    """One warning when a stream's ``seq`` is not its sample index: where it jumps, the stream's
    windows start again (samples missing), and where it does not rise the sample is skipped (a
    repeat), as the daemon does; a ``seq`` counting seconds, or one counter over several
    streams, would leave a stream few windows or none. After an end it may start again."""
    odd = _odd_steps(stream, seq, lambda earlier, later: later != earlier + 1, ends)
    if odd is None:
        return
    warnings.warn(
        f"{rows.at(odd.row)}: stream {odd.stream!r}{_others(odd.more)} does not count its "
        f"samples in seq at {odd.count:,} of its {odd.steps:,} steps ({seq[odd.row]} after "
        f"{seq[odd.prev]} on {rows.line(odd.prev)}); seq is each stream's sample index (0, 1, "
        "2, ...): a jump starts the stream's windows again and a repeat is skipped. Leave the "
        "column out to number samples in file order",
        stacklevel=2,
    )


def _warn_if_seq_from_one(stream: np.ndarray, seq: np.ndarray, rows: Rows) -> None:
    """One warning when streams count ``seq`` from 1: scored here from their first window, but
    the daemon meets such a stream at its window 1, as one whose start it never read, and
    decides nothing in its first windows (its warm-up)."""
    _, first = np.unique(stream, return_index=True)
    ones = np.sort(first[seq[first] == 1])
    if not len(ones):
        return
    warnings.warn(
        f"{rows.at(int(ones[0]))}: stream {stream[ones[0]]!r}{_others(len(ones) - 1)} counts "
        "seq from 1: the daemon takes such a stream as met in the middle (its sample 0 not "
        "read) and decides nothing in its first windows, where scoring here decides from the "
        "first; seq counts each stream's samples from 0",
        stacklevel=2,
    )


def _warn_if_unordered(stream: np.ndarray, ts: np.ndarray, cells: pd.Series, rows: Rows) -> None:
    """One warning when a stream's rows are not in time order (shuffled, newest first): rows
    are taken in file order, never sorted by their times (the clock rule), so such a file would
    be cut into windows of samples that did not follow each other."""
    odd = _odd_steps(stream, ts, lambda earlier, later: later < earlier)
    if odd is None:
        return
    warnings.warn(
        f"{rows.at(odd.row)}: stream {odd.stream!r}{_others(odd.more)} goes back in time at "
        f"{odd.count:,} of its {odd.steps:,} steps ({cells.iloc[odd.row]} after "
        f"{cells.iloc[odd.prev]} on {rows.line(odd.prev)}); "
        "rows are taken in file order, never sorted by time: sort the file by time if its rows "
        "are not in the order they happened",
        stacklevel=2,
    )
