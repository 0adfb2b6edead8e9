"""The time of day (or of the week) as model input: which streams see it, and what it lets a model
tell apart."""

import numpy as np
import pandas as pd
import pytest

import aemon
from aemon.series_detector import as_samples
from aemon.training.series import Plan, clocks, window_values
from tests.conftest import DAY_S, office_hours, office_weeks, two_streams


def test_a_stream_sees_the_hour_when_its_history_spans_a_day():
    plan = Plan()
    assert clocks(as_samples(two_streams(30)), plan) == {"a": "time_of_day", "b": "time_of_day"}
    # b has 5 hours of history: a blank clock (zeros) beside a, so both take one input
    assert clocks(as_samples(two_streams(5)), plan) == {"a": "time_of_day", "b": "blank"}
    # one model for both: the hour only when every history spans a day
    assert clocks(as_samples(two_streams(5)), plan, pooled=True) == {"a": None, "b": None}
    short = as_samples(office_hours(0.5))
    assert clocks(short, plan) == {"0": None}
    assert clocks(short, Plan(time_of_day="on")) == {"0": "time_of_day"}
    assert clocks(as_samples(two_streams(30)), Plan(time_of_day="off")) == {"a": None, "b": None}
    # two weeks of history: the time of week (each hour of the week seen twice), in the same
    # two channels; a pooled model sees the clock that every stream's history sees
    assert clocks(as_samples(office_weeks(15)), plan) == {"0": "time_of_week"}
    assert clocks(as_samples(office_weeks(13)), plan) == {"0": "time_of_day"}
    weeks = pd.concat(
        [office_weeks(15).assign(stream="a"), two_streams(5)[lambda f: f.stream == "b"]]
    )
    assert clocks(as_samples(weeks), plan) == {"a": "time_of_week", "b": "blank"}
    longer = pd.concat([office_weeks(15).assign(stream="a"), office_weeks(3).assign(stream="b")])
    assert clocks(as_samples(longer), plan, pooled=True) == {"a": "time_of_day", "b": "time_of_day"}
    assert clocks(short, Plan(time_of_day="week")) == {"0": "time_of_week"}
    assert window_values(short, Plan(time_of_day="week")) == 8 * (1 + 2 + 1)
    assert window_values(short, plan) == 8  # the time of day: its clock and the distances
    assert window_values(short, Plan(time_of_day="on")) == 8 * (1 + 2 + 1)
    assert window_values(short, Plan(time_of_day="on", daily_profile=False)) == 8 * (1 + 2)
    with pytest.raises(aemon.ConfigError, match="--time-of-day must be one of auto, on, week, off"):
        Plan(time_of_day="sometimes")


def test_daily_samples_get_no_clock_however_long_their_history():
    """Two months of one sample a day span many days, but every sample falls at one hour: ``auto``
    gives it no clock (it said "sees the time of day and its daily profile" and fed the model
    two constant channels); two samples a day see the day, and over two weeks the week."""
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    daily = as_samples(pd.DataFrame({"sales": range(60)}, index=days))
    assert clocks(daily, Plan()) == {"0": None}
    halves = days.repeat(2) + pd.to_timedelta([0, 12] * 60, unit="h")
    twice = as_samples(pd.DataFrame({"sales": range(120)}, index=halves))
    assert clocks(twice, Plan()) == {"0": "time_of_week"}
    fortnight = as_samples(pd.DataFrame({"sales": range(26)}, index=halves[:26]))
    assert clocks(fortnight, Plan()) == {"0": "time_of_day"}


def test_the_day_s_load_at_night_stands_out_only_to_a_model_that_sees_the_hour():
    """Two nights of the daytime level (10 from 2:00 to 5:00) after four normal days: every
    window of those hours holds values seen daily, so only the hour tells them apart (the
    windows wholly inside score against the median window)."""
    history = office_hours(4)
    later = office_hours(2, start=int(history.timestamp.iloc[-1]) + 600)
    hour = (later.timestamp % DAY_S) / 3600
    night = (hour >= 2) & (hour < 5)
    later.loc[night, "value"] += 9.0
    mid = night & (hour >= 3) & (hour < 4)  # windows wholly inside the plateau
    for time_of_day, stands_out in (("auto", True), ("off", False)):
        series = aemon.fit_series(history, time_of_day=time_of_day, epochs=30)
        det = series.detectors["0"]
        assert (det.meta.clock == "time_of_day") is stands_out
        assert series.summary().loc["0", "clock"] == det.meta.clock
        scored = series.score(later)
        at = scored["end"].isin(pd.to_datetime(later.timestamp[mid], unit="s", utc=True))
        ratio = scored.loc[at, "score"].median() / scored.loc[~at, "score"].median()
        assert ratio > 5 if stands_out else ratio < 2  # measured: 9.5 and 0.8


def test_a_weekday_at_the_weekend_s_level_stands_out_only_to_a_model_that_sees_the_week():
    """Four weeks of office hours on weekdays (weekends at the night's level), then two weeks
    whose second Wednesday stays at the night's level (a holiday): every window of it holds
    values seen each weekend, so only the day of the week tells it apart."""
    history = office_weeks(28)
    later = office_weeks(14, start=int(history.timestamp.iloc[-1]) + 3600)
    day = (later.timestamp - later.timestamp.iloc[0]) // DAY_S
    holiday = day == 9  # the second Wednesday
    later.loc[holiday, "value"] = 1.0 + 0.2 * np.random.default_rng(1).standard_normal(24)
    stamps = later.timestamp[holiday]
    for time_of_day, stands_out in (("auto", True), ("on", False)):  # auto: four weeks, the week
        series = aemon.fit_series(history, time_of_day=time_of_day, epochs=30)
        det = series.detectors["0"]
        assert det.meta.clock == ("time_of_week" if stands_out else "time_of_day")
        assert det.meta.profile.hours == (168 if stands_out else 24)
        opened = [e["start_ts"] for e in series.events(later) if e["state"] == "open"]
        inside = [t for t in opened if stamps.min() <= t <= stamps.max()]
        assert len(inside) == (1 if stands_out else 0), opened
        if stands_out:  # and nothing else: the weekends are the week's usual
            assert opened == inside


def test_a_clock_forced_on_a_history_that_does_not_cover_it_is_warned_of():
    with pytest.warns(
        UserWarning,
        match=r"stream '0': --time-of-day week, but its history does "
        r"not span two weeks at more than one sample a day",
    ):
        aemon.fit_series(office_hours(3), time_of_day="week", epochs=1)
    with pytest.warns(UserWarning, match=r"--time-of-day on, but its history does not span a day"):
        aemon.fit_series(office_hours(0.5, step=60), time_of_day="on", epochs=1)
