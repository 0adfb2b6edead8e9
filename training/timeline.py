"""Offline scoring of sample CSVs on the time axis: every window's start, end, score, threshold
and verdict, and the anomaly events of each stream, decided exactly as the daemon decides them
(the same windowing, scoring path and :class:`aemon.core.events.Decider`)."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aemon.core.cadence import cadence_of
from aemon.core.detector import Detector
from aemon.core.errors import DataError
from aemon.core.events import Decider, Rule, event_record, raised_line
from aemon.core.learner import learned_scores
from aemon.core.table import writing
from aemon.core.times import iso
from aemon.core.windowing import window_index
from aemon.core.wording import counted, listed
from aemon.training.datasets.cut import windows_of
from aemon.training.datasets.samples import Samples


@dataclass
class Timeline:
    """Scored windows (one row each, per stream in order) and the events they formed."""

    stream: list[str] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    last_row: list[int] = field(default_factory=list)  # CSV row of each window's last sample
    score: list[float] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    above: list[bool] = field(default_factory=list)
    p: list[float | None] = field(default_factory=list)  # tail probability (None: no history)
    label: list[int] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # streams without a model
    models: dict[str, Detector] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.score)

    def p_values(self) -> np.ndarray:
        """The windows' tail probabilities as floats (NaN where a window has none)."""
        return np.array([np.nan if v is None else v for v in self.p], dtype=np.float64)


def _check_columns(columns: list[str], det: Detector, stream: str, where: str) -> None:
    """DataError unless a stream's value ``columns`` are what its model was trained on: as
    many, and with several metrics the same names in the same order (a sample's values are
    taken by position, as the daemon takes a sample's ``values``). The message names what
    differs (the first few of a machine's dozens of metrics)."""
    want = det.meta.recorded_metrics
    n = det.meta.value_channels
    if len(columns) == n and (n == 1 or want is None or columns == want):
        return
    if want is None or n == 1:
        have = f"{len(columns)} value column(s) ({listed(columns)})"
        raise DataError(f"stream {stream!r}: {have} where its model in {where} takes {n}")
    missing = [c for c in want if c not in columns]
    extra = [c for c in columns if c not in want]
    if not missing and not extra:  # the same names (each once), another order
        i = next(i for i, (a, b) in enumerate(zip(columns, want, strict=True)) if a != b)
        raise DataError(
            f"stream {stream!r}: value columns {listed(columns)} where its model in {where} was "
            f"trained on {listed(want)}, in that order (values are taken by position: column "
            f"{i + 1} is {columns[i]!r}, the model's {want[i]!r})"
        )
    differs = [f"missing {listed(missing)}"] if missing else []
    differs += [f"not in the model {listed(extra)}"] if extra else []
    raise DataError(
        f"stream {stream!r}: {len(columns)} value column(s) where its model in {where} was "
        f"trained on {n} ({listed(want)}): {'; '.join(differs)}"
    )


def score_samples(
    samples: Samples, route: Callable[[str], Detector | None], where: str = "this SeriesDetector"
) -> Timeline:
    """Score every stream of ``samples`` with the detector ``route`` gives it (none: skipped,
    with one warning naming them and ``where`` the models are; none for any stream:
    DataError)."""
    out = Timeline()
    for stream in samples.streams():
        det = route(stream)
        if det is None:
            out.skipped.append(stream)
            continue
        runs = samples.runs_of(stream)
        first = samples.own_metrics(runs[0])  # a stream's metrics are those of its first row
        _check_columns(first.channels, det, stream, where)
        out.models[stream] = det
        for k, run in enumerate(runs):
            sub = first if k == 0 else samples.own_metrics(run)
            _score_run(out, sub, stream, run, det, after_end=k > 0)
    if out.skipped and not out.models:  # nothing to score: a mistake, not a quiet empty result
        names = ", ".join(repr(s) for s in out.skipped[:5]) + (", ..." * (len(out.skipped) > 5))
        hint = " (samples without a 'stream' column are one stream, '0')" if names == "'0'" else ""
        raise DataError(f"no stream of the samples has a model in {where}: {names}{hint}")
    if out.skipped:
        many = len(out.skipped) > 1
        warnings.warn(
            f"{counted(len(out.skipped), 'stream')} of the samples "
            f"{'have' if many else 'has'} no model in {where} and {'are' if many else 'is'} not "
            f"scored: {listed([repr(s) for s in out.skipped])}",
            stacklevel=2,
        )
    return out


def _score_run(
    out: Timeline, sub: Samples, stream: str, rows: np.ndarray, det: Detector, after_end: bool
) -> None:
    """One run of a stream (``sub``: its samples at ``rows``, up to an end or all of them, with
    the stream's metrics) scored and decided afresh, as the daemon meets it: windows, learning
    and decisions from the start; an event still open at the run's end resolves at its last
    window (``ended``). A run ``after_end`` whose first window is not the stream's first (its
    ``seq`` went on) is met in the middle, as the daemon meets it: its first
    :meth:`Rule.warmup` windows are scored, but events they open are not reported."""
    window = det.meta.window
    length = window.length
    ended = sub.end is not None and bool(sub.end[-1])
    if len(sub) < length:  # not one window yet, as in the daemon
        return
    cut = windows_of(sub, length, window.stride, det.meta.clock)
    index = window_index(cut.table.seq.astype(np.int64), length, window.stride)
    scores, channels = learned_scores(
        det, stream, cut.table.values.reshape(len(cut.table), *det.input_shape), index
    )
    rule = Rule.from_meta(det.meta)
    decider = Decider(rule, stream)
    cadence = cadence_of(stream, det.meta)
    first = int(index[0])
    quiet = rule.warmup(det.learning) if after_end and first else 0
    announced = False
    for i, sc in enumerate(scores.tolist()):
        seq, end = int(cut.table.seq[i]), float(cut.table.ts[i])
        v = decider.push(seq, end, sc, None if channels is None else channels[i])
        if v.raised:  # as the daemon's log names it
            warnings.warn(raised_line(stream, end, v.threshold, rule), stacklevel=3)
        if cadence is not None and (problem := cadence.push(seq, end)):
            warnings.warn(problem, stacklevel=3)
        out.stream.append(stream)
        out.seq.append(seq)
        out.start.append(float(cut.table.start[i]))
        out.end.append(end)
        out.last_row.append(int(rows[cut.last_row[i]]))
        out.score.append(sc)
        out.threshold.append(v.threshold)
        out.above.append(v.above)
        out.p.append(v.p)
        if cut.table.label is not None:
            out.label.append(int(cut.table.label[i]))
        if int(index[i]) - first < quiet:
            continue
        if v.resolved is not None and announced:
            out.events.append(event_record(v.resolved, det, "resolved"))
            announced = False
        if v.opened is not None:
            out.events.append(event_record(v.opened, det, "open"))
            announced = True
    if ended and (ev := decider.end()) is not None and announced:
        out.events.append(event_record(ev, det, "resolved", ended=True))


def write_windows_csv(path: Path, t: Timeline) -> None:
    """One row per window: stream, seq, start, end (ISO 8601 UTC), score, threshold, verdict and
    tail probability (empty without a score history); ``-``: to standard output."""
    with writing(path) as fh:
        w = csv.writer(fh)
        w.writerow(["stream", "seq", "start", "end", "score", "threshold", "is_anomaly", "p"])
        for i in range(len(t)):
            w.writerow(
                [
                    t.stream[i],
                    t.seq[i],
                    iso(t.start[i]),
                    iso(t.end[i]),
                    repr(t.score[i]),
                    repr(t.threshold[i]),
                    int(t.above[i]),
                    "" if t.p[i] is None else repr(t.p[i]),
                ]
            )


def _windows(t: Timeline) -> dict[tuple[str, int, float], int]:
    """Each window's position by stream, seq and time: an event's opening (``start_seq``,
    ``start_ts``) or resolving window (a stream sent again after its end counts its seq anew)."""
    return {key: i for i, key in enumerate(zip(t.stream, t.seq, t.end, strict=True))}


def flagged_rows(t: Timeline, events: list[dict], rows: int) -> np.ndarray:
    """Per row of the scored CSV: 1 from each event's opening window to its last window above
    the threshold (the rows an operator sees the event cover), else 0."""
    at = _windows(t)
    resolved = {  # the window after the event's last: its resolving one, or after its end's
        e["event_id"]: at[(e["stream"], e["resolved_seq"], e["resolved_ts"])] + e.get("ended", 0)
        for e in events
        if e["state"] == "resolved"
    }
    flags = np.zeros(rows, dtype=np.int8)
    for e in events:
        if e["state"] != "open":
            continue
        first = at[(e["stream"], e["start_seq"], e["start_ts"])]
        stop = resolved.get(e["event_id"], len(t))
        inside = [i for i in range(first, stop) if t.stream[i] == e["stream"] and t.above[i]]
        last = inside[-1] if inside else first
        flags[t.last_row[first] : t.last_row[last] + 1] = 1
    return flags


def row_scores(t: Timeline, rows: int) -> np.ndarray:
    """Per row of the scored CSV: the score of the window ending there (NaN before a stream's
    first window)."""
    out = np.full(rows, np.nan)
    out[np.asarray(t.last_row, dtype=np.int64)] = t.score
    return out


def opening_positions(samples: Samples, t: Timeline) -> dict[str, list[int]]:
    """Per stream, the positions (within its samples) of the windows that opened its events."""
    at = _windows(t)
    out: dict[str, list[int]] = {stream: [] for stream in t.models}
    local = {stream: {int(r): k for k, r in enumerate(samples.rows_of(stream))} for stream in out}
    for e in t.events:
        if e["state"] == "open":
            stream = e["stream"]
            window = at[(stream, int(e["start_seq"]), e["start_ts"])]
            out[stream].append(local[stream][t.last_row[window]])
    return out


def evaluate_events(samples: Samples, t: Timeline) -> dict[str, object]:
    """Event-level metrics against the sample labels (see :mod:`aemon.training.incidents`)."""
    from aemon.training.incidents import stream_result, summarise

    assert samples.label is not None
    openings = opening_positions(samples, t)
    results = []
    for stream, positions in openings.items():
        rows = samples.rows_of(stream)
        results.append(stream_result(samples.ts[rows], samples.label[rows], positions))
    return summarise(results)


def draw(samples: Samples, t: Timeline, report: Path) -> list[Path]:
    """A timeline picture per stream (see :func:`aemon.training.report.series_timeline`)."""
    from aemon.training import report as plots
    from aemon.training.incidents import runs
    from aemon.training.series import stream_dir

    report.mkdir(parents=True, exist_ok=True)
    stream_of = np.asarray(t.stream)
    drawn = []
    for stream, det in t.models.items():
        rows = samples.rows_of(stream)
        ts = samples.ts[rows]
        incidents = []
        if samples.label is not None:
            incidents = [(ts[a], ts[b]) for a, b in runs(samples.label[rows])]
        pick = stream_of == stream
        windows = {
            "end": np.asarray(t.end)[pick],
            "score": np.asarray(t.score)[pick],
            "threshold": np.asarray(t.threshold)[pick],
        }
        events = [e for e in t.events if e["stream"] == stream]
        opened = sum(e["state"] == "open" for e in events)
        title = plots.events_title(stream, opened, det.version)
        path = report / f"{stream_dir(stream)}.png"
        profile = det.meta.profile
        usual = None if profile is None else profile.at(ts)
        own = samples.own_metrics(rows)
        plots.series_timeline(
            path,
            title,
            ts,
            own.values,
            own.channels,
            windows,
            events,
            incidents,
            usual,
        )
        drawn.append(path)
    return drawn
