"""Telemetry series: one model per stream from a multi-stream sample CSV, in time order.

For each stream, the first ``train_rows`` samples (all of them by default) are its normal
history. The earlier part is fitted; the last ``calibration_fraction`` of it calibrates the
threshold: its windows start after the last fitted window ends, so none shares a sample with a
fitted window. The threshold is never below the largest calibration score, the artifact records
the event rule and the expected false alarms per day, and the models are saved into one
directory, ``OUT/<stream>/``, that ``aemon serve`` and ``aemon score`` route streams through.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from aemon.core.cadence import spoken
from aemon.core.catalog import ANY
from aemon.core.detector import Detector
from aemon.core.errors import ConfigError
from aemon.core.events import DEFAULT_EVENT_RULE, Rule
from aemon.core.learning import Learning
from aemon.core.profile import HOURS, Profile, with_distances
from aemon.core.rates import check_rate
from aemon.core.specs import CLOCK_CHOICES
from aemon.core.table import WindowTable
from aemon.core.windowing import (
    BLANK,
    CLOCK_CHANNELS,
    DAY,
    TIME_OF_DAY,
    TIME_OF_WEEK,
    WEEK,
    check_stride,
    window_channels,
)
from aemon.core.wording import counted, listed
from aemon.training.datasets.cut import windows_of
from aemon.training.datasets.samples import Samples
from aemon.training.pipeline import check_normal, fit_detector, fit_model, fit_scaling
from aemon.training.presets import Recipe

WEEKS_SEEN = 2  # auto: the time of week once a history spans this many weeks

# A metric whose median moves one way from each quarter of its fitted windows to the next, fast
# enough to leave the 5-95% range of those windows (a steady trend: a disk filling up) before its
# model's first trained update, its least-squares slope at least TREND_T standard errors from
# zero with the residuals' lag-1 correlation counted (so that noise, slow wander included, is
# seldom taken for a trend; see _warn_drifting).
QUARTERS, TREND_T = 4, 3.0

# A metric up at this share of its fitted steps or more, and down at no more than RESET_SHARE
# of them (a counter's resets) and at no more than a half of its rises (a counter climbs more
# than once between resets; a level stepping up and back down does not), only rises: a counter
# (see _warn_rising).
RISING_SHARE, RESET_SHARE, RISES_PER_RESET = 0.01, 0.01, 2


@dataclass(frozen=True)
class Plan:
    """How each stream's history is cut and split (``aemon train series`` flags)."""

    length: int = 8
    stride: int = 1
    train_fraction: float = 1.0
    max_train_rows: int | None = None
    events: dict[str, object] = field(default_factory=lambda: dict(DEFAULT_EVENT_RULE))
    false_alarms_per_day: float | None = None  # the calibrated threshold set for this rate
    time_of_day: str = "auto"  # the clock models see: auto (see clocks), on (the day), week, off
    daily_profile: bool = True  # models that see the time of day (or week) also see its profile
    learning: Learning | None = None  # each stream's model keeps learning on it (None: never)

    def __post_init__(self) -> None:
        if self.time_of_day not in CLOCK_CHOICES:
            raise ConfigError(
                f"--time-of-day must be one of {', '.join(CLOCK_CHOICES)}, got {self.time_of_day!r}"
            )
        if self.length < 1:
            raise ConfigError(f"--length must be >= 1, got {self.length}")
        check_stride(self.stride, self.length, f"--length {self.length}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"--train-fraction must be in (0, 1], got {self.train_fraction}")
        if self.max_train_rows is not None and self.max_train_rows < 1:
            raise ConfigError(f"--max-train-rows must be >= 1, got {self.max_train_rows}")
        if self.false_alarms_per_day is not None:
            check_rate(self.false_alarms_per_day, "--false-alarms-per-day")
        try:
            Rule(threshold=0.0, **self.events)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"event rule: {exc}") from None

    def train_rows(self, n: int) -> int:
        rows = math.floor(self.train_fraction * n)
        return min(rows, self.max_train_rows) if self.max_train_rows else rows


def _spans(samples: Samples, plan: Plan, stream: str, seconds: float) -> bool:
    """Whether a stream's history spans ``seconds`` at more than one sample a day (daily or
    weekly samples all fall at one hour: a clock would tell the model nothing)."""
    rows = samples.rows_of(stream)
    ts = samples.ts[rows[: plan.train_rows(len(rows))]]
    spans = len(ts) > 1 and float(ts.max() - ts.min()) >= seconds
    return spans and _seconds_per_window(np.sort(ts), 1) < DAY  # the median step between samples


def clocks(samples: Samples, plan: Plan, pooled: bool = False) -> dict[str, str | None]:
    """What each stream's model sees in its clock channels: ``time_of_day``, ``time_of_week``,
    ``blank`` (zeros) or None (no clock channels). ``auto``: the time of week for a stream whose
    history spans two weeks (each hour of the week seen twice, unless samples are missing), the
    time of day for one that spans at least a day, so that its model has seen every hour (one
    of minutes would meet hours it never saw, and call them anomalous), each at more than one
    sample a day; a blank clock for the others when some stream sees the hour, since one daemon
    serves models of one input; none when no stream does. One model for all (``pooled``): the
    clock every stream's history sees."""
    streams = samples.streams()
    if plan.time_of_day != "auto":
        forced = {"on": TIME_OF_DAY, "week": TIME_OF_WEEK}.get(plan.time_of_day)
        return dict.fromkeys(streams, forced)
    day = {s: _spans(samples, plan, s, DAY) for s in streams}
    week = {s: day[s] and _spans(samples, plan, s, WEEKS_SEEN * WEEK) for s in streams}
    if pooled:
        clock = TIME_OF_WEEK if all(week.values()) else TIME_OF_DAY if all(day.values()) else None
        return dict.fromkeys(streams, clock)
    if not any(day.values()):
        return dict.fromkeys(streams)
    return {s: TIME_OF_WEEK if week[s] else TIME_OF_DAY if day[s] else BLANK for s in streams}


def _warn_short_clock(samples: Samples, plan: Plan, clock: dict[str, str | None]) -> None:
    """One warning per stream given a clock (``--time-of-day on`` or ``week``) that its history
    does not cover as ``auto`` asks: hours it never saw will score as unusual. (``auto``'s own
    choices cover their histories.)"""
    if plan.time_of_day == "auto":
        return
    covers = {TIME_OF_DAY: (DAY, "a day"), TIME_OF_WEEK: (WEEKS_SEEN * WEEK, "two weeks")}
    for stream, seen in clock.items():
        if seen in covers and not _spans(samples, plan, stream, covers[seen][0]):
            warnings.warn(
                f"stream {stream!r}: --time-of-day {plan.time_of_day}, but its history does not "
                f"span {covers[seen][1]} at more than one sample a day: hours it never saw "
                "will score as unusual (auto gives each stream the clock its history covers)",
                stacklevel=2,
            )


def window_values(
    samples: Samples, plan: Plan, shared: bool = False, any_stream: bool = False
) -> int:
    """Values in one window of the model's input (what its size grows with): the window length
    times each sample's values, when the models have a clock its two and, when they see the
    time of day or of the week (of their own stream: not ``any_stream``), each value's distance
    from the stream's profile."""
    seen = set(clocks(samples, plan, shared or any_stream).values())
    values = samples.values.shape[1]
    profiled = plan.daily_profile and bool(seen & set(HOURS)) and not any_stream
    return plan.length * (window_channels(values, bool(seen - {None})) + profiled * values)


def _profile(fit: WindowTable, clock: str | None, plan: Plan) -> Profile | None:
    """The stream's profile of the day or the week, fitted on its fitted windows, when its model
    sees the time of day or of the week (and ``plan`` keeps the profile on)."""
    if clock not in HOURS or not plan.daily_profile:
        return None
    windows = _normal(fit)
    return Profile.fit(windows, windows.shape[1] - CLOCK_CHANNELS, str(clock))


def stream_dir(stream: str) -> str:
    """A directory name for ``stream``: itself when it is safe, else a cleaned name + hash."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stream).strip("._") or "stream"
    if clean == stream:
        return clean
    return f"{clean[:80]}-{hashlib.sha256(stream.encode()).hexdigest()[:8]}"


def _seconds_per_window(ts: np.ndarray, stride: int) -> float:
    steps = np.diff(ts)
    steps = steps[steps > 0]
    return float(np.median(steps)) * stride if len(steps) else float(stride)


STILL_SHARE = 0.5  # a stream whose time stands still at this share of its steps has no step


def _warn_if_time_stands_still(stream: str, ts: np.ndarray) -> None:
    """Warn when a stream's training samples keep their time at half of its steps or more (all
    stamped alike, or stamped to the second at several a second): the step its model records
    (the median of the steps that move forward, 1 s where none does), on which its false alarms
    a day and the daemon's step check rest, is then not the stream's."""
    steps = np.diff(ts)
    still = int(np.count_nonzero(steps == 0))
    if not len(steps) or still < STILL_SHARE * len(steps):
        return
    how = ", from those that move forward" if (steps > 0).any() else ": none moves forward"
    taken = f"{spoken(_seconds_per_window(ts, 1))} apart{how}"
    warnings.warn(
        f"stream {stream!r}: {still:,} of its {len(steps):,} training steps keep the same time, "
        f"so its model takes its samples as {taken}; its false alarms a day and the daemon's "
        "step check rest on that step: give each sample the time it was taken",
        stacklevel=3,
    )


def _fit_kind(
    samples: Samples,
    recipe: Recipe,
    plan: Plan,
    device: torch.device,
    source: str,
    progress: bool,
    shared: bool,
    any_stream: bool,
    short: dict[str, int],
) -> dict[str, Detector]:
    """Every stream's detector, all with the same metrics, in memory (streams with too few
    training samples go into ``short`` instead).

    ``shared``: one model fitted to every stream's windows, each stream scaled by its own
    normaliser; each stream's artifact holds those weights with its own scaling and threshold.
    ``any_stream``: one detector (one model, scaling and calibrated threshold) fitted to every
    stream's windows that serves any stream, seen in training or not (key ``ANY``); each stream
    still has its own adaptive threshold and events in the monitor.
    """
    clock = clocks(samples, plan, shared or any_stream)
    _warn_short_clock(samples, plan, clock)
    parts = list(_parts(samples, recipe, plan, source, clock, short))
    if not parts:
        return {}
    if any_stream:
        parts = [_pooled(parts)]
    profiles = {p[0]: None if any_stream else _profile(p[1], p[4]["clock"], plan) for p in parts}
    for stream, fit, _, facts, _ in parts:
        _warn_constant(stream, facts["metrics"], fit.values)
        counters = _warn_rising(stream, facts["metrics"], fit.values)
        if stream != ANY:  # the any-stream model's windows are many streams', not one history
            _warn_drifting(stream, facts["metrics"], fit.values, profiles[stream], plan, counters)
    trained: dict[str, tuple] = {}
    if shared:
        inputs = {name: partial(with_distances, profiles[name]) for name in profiles}
        scale = {
            name: fit_scaling(recipe.normaliser, profiles[name], fit.values, True)
            for name, fit, *_ in parts
        }
        x = np.concatenate([scale[n](inputs[n](_normal(fit))) for n, fit, *_ in parts])
        val = np.concatenate([scale[n](inputs[n](_normal(cal))) for n, _, cal, *_ in parts])
        model, result = fit_model(recipe, x, val, device, "series", progress)
        trained = {name: (model, result, scale[name]) for name in scale}
    detectors: dict[str, Detector] = {}
    for stream, fit, cal, facts, series in parts:
        detectors[stream] = fit_detector(
            name=stream or "any-stream",
            train=fit,
            test=None,
            recipe=recipe,
            device=device,
            facts={**facts, "model": _whose(shared, any_stream)},
            progress=progress,
            stride=plan.stride,
            kind="series",
            calibration=_normal(cal),
            series=series,
            trained=trained.get(stream),
            profile=profiles[stream],
        )
    return detectors


def fit_series(
    samples: Samples,
    recipe_for: Callable[[int], Recipe],
    plan: Plan,
    device: torch.device,
    source: str,
    progress: bool = True,
    shared: bool = False,
    any_stream: bool = False,
) -> dict[str, Detector]:
    """Every stream's detector, in memory (``SeriesDetector.save`` writes ``OUT/<stream>/``):
    each kind of stream (streams with the same metrics: one file may hold a pump's 8 and a
    server's 19) fitted with the recipe ``recipe_for`` gives for its window's size
    (:func:`window_values`); ``shared`` and ``any_stream`` as in :func:`_fit_kind`."""
    if shared and any_stream:
        raise ConfigError("--shared and --any-stream exclude each other")
    kinds = samples.kinds()
    if len(kinds) > 1 and (shared or any_stream):
        sets = "; ".join(", ".join(kind.channels) for kind in kinds[:3])
        raise ConfigError(
            f"--shared and --any-stream fit one model to streams of the same metrics, and these "
            f"streams have {len(kinds)} sets ({sets}): train each set from a file of its own"
        )
    detectors: dict[str, Detector] = {}
    short: dict[str, int] = {}
    for kind in kinds:
        recipe = recipe_for(window_values(kind, plan, shared, any_stream))
        least, why = _too_short(plan, recipe.calibration_fraction)
        detectors |= _fit_kind(
            kind, recipe, plan, device, source, progress, shared, any_stream, short
        )
    if short:
        _left_out(short, least, why, bool(detectors), any_stream)
    return detectors


def _left_out(short: dict[str, int], least: int, why: str, others: bool, any_stream: bool) -> None:
    """Streams too short to train: a warning naming them when ``others`` were trained (their
    samples then have no model, unless the any-stream model serves them), else the refusal of
    the first."""
    first, n = next(iter(short.items()))
    if not others:
        more = f" (and {counted(len(short) - 1, 'more stream')} as short)" if len(short) > 1 else ""
        raise ConfigError(
            f"stream {first!r}: {counted(n, 'training sample')} "
            f"{'is' if n == 1 else 'are'} {why}: give it at least {least} "
            f"training samples, or leave it out{more}"
        )
    warnings.warn(
        f"left out {counted(len(short), 'stream')} with fewer than {least} training samples "
        f"({listed([f'{s!r}: {k}' for s, k in short.items()])}), {why}: "
        + (
            "the any-stream model serves them, fitted without them"
            if any_stream
            else "their samples have no model (the daemon dead-letters them as no_model)"
        ),
        stacklevel=3,
    )


def _whose(shared: bool, any_stream: bool) -> str:
    if any_stream:
        return "one for any stream"
    return "shared by every stream" if shared else "own"


def _pooled(parts: list[tuple]) -> tuple:
    """Every stream's fit and calibration windows as one part that serves any stream."""
    fit = WindowTable(np.concatenate([_normal(p[1]) for p in parts]))
    cal = WindowTable(np.concatenate([_normal(p[2]) for p in parts]))
    first = parts[0][3]
    facts = {
        **first,
        "stream": f"any ({len(parts)} streams in training)",
        "train_rows": sum(p[3]["train_rows"] for p in parts),
        "fit_rows": sum(p[3]["fit_rows"] for p in parts),
        "calibration_rows": sum(p[3]["calibration_rows"] for p in parts),
        "train_until": max(p[3]["train_until"] for p in parts),
    }
    per_window = float(np.median([p[4]["seconds_per_window"] for p in parts]))
    series = {**parts[0][4], "stream": ANY, "seconds_per_window": per_window, "facts": facts}
    return ANY, fit, cal, facts, series


def _normal(table: WindowTable) -> np.ndarray:
    """The windows no labelled sample touches (all of them without labels)."""
    return table.values if table.label is None else table.values[table.label == 0]


def _channels_first(table: WindowTable, channels: int) -> WindowTable:
    """The windows as the model and the daemon take them: ``[n, length]`` for one value column,
    ``[n, channels, length]`` for several (the windower's layout), so that the artifact records
    the window length, not length x channels."""
    if channels > 1:
        table.values = table.values.reshape(len(table), channels, -1)
    return table


def _warn_constant(stream: str, metrics: list[str], windows: np.ndarray) -> None:
    """Warn that metrics which never change in a model's fitted windows will make any change
    in them score as anomalous (their scale is the robust floor, see :class:`Normaliser`)."""
    values = windows.reshape(len(windows), -1, windows.shape[-1])[:, : len(metrics)]
    lo, hi = values.min(axis=(0, 2)), values.max(axis=(0, 2))
    flat = [f"{m} ({a:g})" for m, a, b in zip(metrics, lo, hi, strict=True) if a == b]
    if flat:
        whose = "the any-stream model" if stream == ANY else f"stream {stream!r}"
        warnings.warn(
            f"{whose}: {', '.join(flat)} never change{'s' if len(flat) == 1 else ''} in the "
            f"fitted history; any change in {'it' if len(flat) == 1 else 'them'} will score as "
            "anomalous",
            stacklevel=3,
        )


def _warn_rising(stream: str, metrics: list[str], windows: np.ndarray) -> set[str]:
    """Warn that metrics which only rise through a model's fitted windows (a counter such as
    Prometheus's ``*_total``, an uptime) will leave the range the model learned and score as
    anomalous from then on: their rate is what to give. Falls at no more than 1% of the steps
    and half the rises (a counter reset when its process restarts) still count as only
    rising. Returns the metrics it named."""
    values = windows.reshape(len(windows), -1, windows.shape[-1])[:, : len(metrics), 0]
    steps = np.diff(values.astype(np.float64), axis=0)  # window to window: the stride's step
    if len(steps) < 2:
        return set()
    rises, falls = (steps > 0).sum(axis=0), (steps < 0).sum(axis=0)
    named = {
        m: f"{m} (up at {r:,} of {len(steps):,} steps)"
        for m, r, f in zip(metrics, rises, falls, strict=True)
        if r >= max(3, RISING_SHARE * len(steps))
        and f <= RESET_SHARE * len(steps)
        and f * RISES_PER_RESET <= r
    }
    counters = list(named.values())
    if counters:
        whose = "the any-stream model" if stream == ANY else f"stream {stream!r}"
        one = len(counters) == 1
        warnings.warn(
            f"{whose}: {listed(counters)} only rise{'s' if one else ''} in the fitted "
            f"history, as a counter does: {'it' if one else 'they'} will leave the range the "
            "model learned and score as anomalous from then on; give "
            f"{'it as a rate' if one else 'them as rates'} (the change per sample)",
            stacklevel=3,
        )
    return set(named)


def _warn_drifting(
    stream: str,
    metrics: list[str],
    windows: np.ndarray,
    profile: Profile | None,
    plan: Plan,
    counters: set[str],
) -> None:
    """Warn that metrics drifting one way through a stream's fitted windows (a disk filling up)
    will leave the range its model learned before the model's first trained update (without
    learning, before the default learning's would come) and score as anomalous until then. The
    drift is measured on what the model sees (with a profile, each value's distance from its
    hour's level, so a daily cycle is no drift): its median moves one way from each quarter of
    the windows to the next, its least-squares slope stands ``TREND_T`` standard errors out
    (:func:`_trend_t`), and at the rate between the first and last quarters it reaches the edge
    of the windows' 5-95% range within that many windows of the last quarter's median. Counters
    (named by :func:`_warn_rising`) are left to their own line."""
    m, n = len(metrics), len(windows)
    if n < 10 * QUARTERS:
        return
    raw = windows.reshape(n, -1, windows.shape[-1])
    seen = raw if profile is None else with_distances(profile, raw)[:, m:]
    x = seen[:, :m, 0].astype(np.float64)
    medians = np.array([np.median(q, axis=0) for q in np.array_split(x, QUARTERS)])
    steps = np.diff(medians, axis=0)
    one_way = (steps > 0).all(axis=0) | (steps < 0).all(axis=0)
    lo, hi = np.percentile(x, [5, 95], axis=0)
    slope = (medians[-1] - medians[0]) / (n * (QUARTERS - 1) / QUARTERS)  # per window
    learning = plan.learning
    horizon = (learning or Learning()).first_trained
    drifting = []
    for k, name in enumerate(metrics):
        if name in counters or not one_way[k] or hi[k] <= lo[k] or _trend_t(x[:, k]) < TREND_T:
            continue
        edge = hi[k] if slope[k] > 0 else lo[k]
        within = (edge - medians[-1, k]) / slope[k]  # windows until it leaves the range
        if within <= horizon:
            share = abs(medians[-1, k] - medians[0, k]) / (hi[k] - lo[k])
            way = "up" if slope[k] > 0 else "down"
            drifting.append(f"{name} ({way} by {share:.2f} of its 5-95% range)")
    if not drifting:
        return
    one = len(drifting) == 1
    until = (
        f"the model's first trained update ({horizon:,} windows into the stream) and score as "
        "anomalous until then; train on a longer history, or set a faster cadence on this "
        "model (--learn-every, --learn-delay)"
        if learning is not None
        else f"{horizon:,} windows into the stream and score as anomalous from then on; train "
        "on a longer history, or let the model keep learning (--learn on)"
    )
    warnings.warn(
        f"stream {stream!r}: {listed(drifting)} drift{'s' if one else ''} one way through the "
        f"fitted history: at that rate {'it' if one else 'they'} will leave the range the "
        f"model learned before {until}",
        stacklevel=3,
    )


def _trend_t(x: np.ndarray) -> float:
    """How many standard errors the least-squares slope of ``x`` (in order) lies from zero, its
    residuals' lag-1 correlation shrinking the samples it counts as independent."""
    n = len(x)
    at = np.arange(n) - (n - 1) / 2
    slope = float((at * (x - x.mean())).sum() / (at * at).sum())
    resid = x - x.mean() - slope * at
    if not resid.std() > 0:
        return math.inf if slope else 0.0
    rho = float(np.corrcoef(resid[:-1], resid[1:])[0, 1])
    rho = min(max(rho, 0.0), 0.99) if math.isfinite(rho) else 0.0
    independent = n * (1 - rho) / (1 + rho)
    return abs(slope) / (resid.std() * math.sqrt(12 / (independent * (n * n - 1))))


def _too_short(plan: Plan, cal_fraction: float) -> tuple[int, str]:
    """The fewest training samples a stream's model needs (windows to fit and to calibrate on),
    and why, in words."""
    need, need_cal = plan.length + 3, plan.length + 1
    least = next(
        n
        for n in itertools.count(need + need_cal)
        if round(n * (1 - cal_fraction)) >= need and n - round(n * (1 - cal_fraction)) >= need_cal
    )
    why = (
        f"too few for windows of {plan.length} (the earlier {1 - cal_fraction:.0%} fits, at "
        f"least {need}; the later {cal_fraction:.0%} calibrates, at least {need_cal})"
    )
    return least, why


def _parts(
    samples: Samples,
    recipe: Recipe,
    plan: Plan,
    source: str,
    clock: dict[str, str | None],
    short: dict[str, int],
):
    """Per stream: (name, fit windows, calibration windows, facts, series settings); each
    sample's ``clock`` channels (the stream's: see :func:`clocks`) after its values. A stream
    with too few training samples goes into ``short`` (with how many it has) instead."""
    cal_fraction = recipe.calibration_fraction
    least, _ = _too_short(plan, cal_fraction)
    for stream in samples.streams():
        rows = samples.rows_of(stream)
        n_train = plan.train_rows(len(rows))
        if n_train < least:
            short[stream] = int(n_train)
            continue
        n_fit = round(n_train * (1 - cal_fraction))
        fit_part, cal_part = rows[:n_fit], rows[n_fit:n_train]
        channels = window_channels(samples.values.shape[1], clock[stream] is not None)
        cut = [
            windows_of(samples.subset(part), plan.length, plan.stride, clock[stream]).table
            for part in (fit_part, cal_part)
        ]
        fit, cal = (_channels_first(table, channels) for table in cut)
        check_normal(f"stream {stream!r}", len(_normal(fit)), fit.label is not None)
        facts = {
            "data": source,
            "stream": stream,
            "train_rows": int(n_train),
            "fit_rows": len(fit_part),
            "calibration_rows": len(cal_part),
            "train_until": float(samples.ts[rows[n_train - 1]]),
            "times": "zone-less, taken as UTC" if samples.zoneless else "as given",
            "metrics": list(samples.channels),
        }
        times = samples.ts[rows[:n_train]]
        _warn_if_time_stands_still(stream, times)
        series = {
            "stream": stream,
            "events": plan.events,
            "seconds_per_window": _seconds_per_window(times, plan.stride),
            "false_alarms_per_day": plan.false_alarms_per_day,
            "clock": clock[stream],
            "learning": plan.learning,
            "facts": facts,
        }
        yield stream, fit, cal, facts, series
