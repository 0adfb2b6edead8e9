"""The profile: each value's distance from its stream's usual level at that hour (of the day or
week)."""

import json

import numpy as np
import pandas as pd
import pytest

import aemon
from aemon.core import artifact
from aemon.core.detector import Detector
from aemon.core.errors import ArtifactError
from aemon.core.profile import HOURS, Profile, hour_of
from aemon.core.windowing import MONDAY, TIME_OF_DAY, TIME_OF_WEEK, clock_values, time_of_day
from tests.conftest import DAY_S, office_hours, office_weeks, two_streams


def clocked_windows(frame: pd.DataFrame, length: int = 8, kind: str = TIME_OF_DAY) -> np.ndarray:
    """Sliding windows ``[n, 3, length]`` of one value column and its two clock channels (of
    the day or the week), as the windower builds them (float32)."""
    clock = np.array([clock_values(kind, float(t)) for t in frame.timestamp], dtype=np.float32)
    rows = np.column_stack([frame.value.to_numpy(np.float32), clock])  # [samples, 3]
    idx = np.arange(length)[None] + np.arange(len(rows) - length + 1)[:, None]
    return rows[idx].transpose(0, 2, 1).copy()


def test_the_hour_is_read_back_from_the_clock_channels():
    ts = 1_700_000_000 + np.random.default_rng(0).uniform(0, 7 * DAY_S, 20_000)
    ts = ts[np.abs(ts / 3600 - np.round(ts / 3600)) * 3600 > 1.0]  # not within 1 s of an hour
    clock = np.array([time_of_day(float(t)) for t in ts], dtype=np.float32)
    got = hour_of(clock[:, 0], clock[:, 1])
    np.testing.assert_array_equal(got, ((ts % DAY_S) // 3600).astype(int))
    week = np.array([clock_values(TIME_OF_WEEK, float(t)) for t in ts], dtype=np.float32)
    got = hour_of(week[:, 0], week[:, 1], HOURS[TIME_OF_WEEK])
    np.testing.assert_array_equal(got, (((ts - MONDAY) % (7 * DAY_S)) // 3600).astype(int))
    assert clock_values(TIME_OF_WEEK, MONDAY + 7 * DAY_S * 2800) == pytest.approx((0.0, 1.0))


def test_the_profile_holds_each_hour_s_level_and_the_windows_gain_their_distances():
    windows = clocked_windows(office_hours(3))
    profile = Profile.fit(windows, 1, TIME_OF_DAY)
    day, night = profile.levels[8:20, 0], np.r_[profile.levels[:8, 0], profile.levels[20:, 0]]
    assert np.all(np.abs(day - 10) < 0.2) and np.all(np.abs(night - 1) < 0.2)
    x = profile(windows)
    assert x.shape == (len(windows), 4, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], windows[:, 0])  # the values, then the distances
    np.testing.assert_array_equal(x[:, 2:], windows[:, 1:])  # then the clock
    assert np.abs(x[:, 1]).max() < 1.5  # normal days sit on their profile
    shifted = windows.copy()
    shifted[:, 0] += 5.0
    np.testing.assert_allclose(profile(shifted)[:, 1], x[:, 1] + 5.0, atol=1e-4)
    # hours never seen in fitting take the median of every sample
    mornings = windows[hour_of(windows[:, 1, -1], windows[:, 2, -1]) < 6]
    partial = Profile.fit(mornings, 1, TIME_OF_DAY)
    assert np.all(partial.levels[8:22, 0] == np.median(mornings[:, 0]))  # 22-23: windows' starts


def test_a_profile_of_the_week_holds_each_weekday_s_hours_apart():
    frame = office_weeks(14, step=600)
    weekly = Profile.fit(clocked_windows(frame, kind=TIME_OF_WEEK), 1, TIME_OF_WEEK)
    assert weekly.levels.shape == (168, 1) and weekly.clock == TIME_OF_WEEK
    days = weekly.levels[:, 0].reshape(7, 24)  # Monday first
    assert np.all(np.abs(days[:5, 9:19] - 10) < 0.3) and np.all(np.abs(days[5:] - 1) < 0.3)
    # its usual level at a Wednesday noon and a Sunday noon, read as the model reads the hour
    noon = frame.timestamp[(frame.timestamp - frame.timestamp[0]) % DAY_S == 12 * 3600]
    np.testing.assert_allclose(weekly.at(noon.to_numpy()[[2, 6]])[:, 0], [10, 1], atol=0.3)
    # a profile of the day mixes them: a Sunday noon's usual level is the weekdays'
    daily = Profile.fit(clocked_windows(frame), 1, TIME_OF_DAY)
    assert daily.levels.shape == (24, 1) and abs(daily.levels[12, 0] - 10) < 0.3
    # a history with gaps: an hour of the week never seen takes its hour of the day's level
    gappy = frame[((frame.timestamp - frame.timestamp[0]) // DAY_S) % 7 != 1].reset_index()
    no_tuesday = Profile.fit(clocked_windows(gappy, kind=TIME_OF_WEEK), 1, TIME_OF_WEEK)
    tuesday = no_tuesday.levels[24:48, 0]
    assert np.abs(tuesday[9:19] - 10).max() < 0.3 and np.abs(tuesday[:7] - 1).max() < 0.3
    np.testing.assert_array_equal(no_tuesday.levels[48:, 0], weekly.levels[48:, 0])
    back = Profile.from_dict(weekly.to_dict(), 1, TIME_OF_WEEK)
    np.testing.assert_array_equal(back.levels, weekly.levels)
    with pytest.raises(ArtifactError, match="must be 168 lists of 1 finite numbers"):
        Profile.from_dict(daily.to_dict(), 1, TIME_OF_WEEK)


@pytest.fixture(scope="module")
def profiled():
    """A stream of office hours, fitted on four days: its model sees the time of day."""
    return aemon.fit_series(office_hours(4), epochs=30, adaptive_window=0)


def test_a_day_whose_peak_does_not_come_opens_an_event(profiled, tmp_path):
    """Hours 11-16 of the second later day stay at the night's level: every window of it holds
    values seen daily (nights), so only the hour and its usual level tell them apart."""
    det = profiled.detectors["0"]
    assert det.meta.clock == "time_of_day" and det.model_shape == (4, 8)
    assert det.input_shape == (3, 8)  # the daemon windows the same samples as without it
    later = office_hours(2, start=int(office_hours(4).timestamp.iloc[-1]) + 600)
    hour = (later.timestamp % DAY_S) / 3600
    flat = (later.timestamp >= later.timestamp.iloc[0] + DAY_S) & (hour >= 11) & (hour < 16)
    later.loc[flat, "value"] = 1.0 + 0.2 * np.random.default_rng(1).standard_normal(flat.sum())
    stamps = later.timestamp[flat]
    opened = [e["start_ts"] for e in profiled.events(later) if e["state"] == "open"]
    # one event, opened at the second window above (events open on 2 of 6 windows above)
    assert [t for t in opened if stamps.min() <= t <= stamps.max()] == [stamps.iloc[1]]
    scored = profiled.score(later)
    inside = scored["end"].isin(pd.to_datetime(stamps.iloc[8:], unit="s", utc=True))
    assert scored.loc[inside, "is_anomaly"].all()
    ratio = scored.loc[inside, "score"].median() / det.threshold
    assert ratio > 5  # measured: 18
    # saved and loaded, the same profile and the same scores
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m", device=det.device)
    np.testing.assert_array_equal(back.meta.profile.levels, det.meta.profile.levels)
    windows = clocked_windows(later)
    np.testing.assert_array_equal(back.score(windows), det.score(windows))
    assert back.reconstruct(windows[:4]).shape == (4, 3, 8)
    # the timeline draws the usual level at each sample's hour beside the values
    usual = det.meta.profile.at(later.timestamp.to_numpy())[:, 0]
    office = (hour >= 8) & (hour < 20)
    assert np.abs(usual[office] - 10).max() < 0.3 and np.abs(usual[~office] - 1).max() < 0.3
    (picture,) = profiled.report(tmp_path / "pics", later)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda p: {**p, "levels": p["levels"][:-1]},
            "input.profile.levels must be 24 lists of 1 finite numbers",
        ),
        (lambda p: {**p, "levels": [[1e39]] * 24}, "within float32"),
        (lambda p: {**p, "levels": [["x"]] * 24}, "input.profile.levels must be"),
        (lambda p: "flat", "input.profile.levels must be"),
    ],
)
def test_a_corrupt_profile_is_refused(profiled, tmp_path, edit, message):
    path = profiled.detectors["0"].save(tmp_path / "m")
    meta = json.loads((path / artifact.META_FILE).read_text())
    meta["input"]["profile"] = edit(meta["input"]["profile"])
    (path / artifact.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=message):
        Detector.load(path)


def test_a_profile_needs_a_clock_that_is_not_blank(profiled, tmp_path):
    path = profiled.detectors["0"].save(tmp_path / "m")
    meta = json.loads((path / artifact.META_FILE).read_text())
    meta["input"]["clock"] = "blank"
    (path / artifact.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(
        ArtifactError,
        match=r"input\.profile needs input\.clock time_of_day or time_of_week, got 'blank'",
    ):
        Detector.load(path)


def test_a_shared_model_keeps_each_stream_s_profile_and_one_for_any_stream_has_none():
    df = two_streams(30)  # a: three days every 10 minutes; b: 30 hours every minute
    shared = aemon.fit_series(df, shared=True, epochs=5)
    a, b = shared.detectors["a"], shared.detectors["b"]
    assert a.model_shape == b.model_shape == (4, 8)
    assert not np.array_equal(a.meta.profile.levels, b.meta.profile.levels)  # each its own
    assert np.isfinite(shared.score(df)["score"]).all()
    one = aemon.fit_series(df, any_stream=True, epochs=5).detectors[""]
    assert one.meta.profile is None and one.model_shape == one.input_shape == (3, 8)
    off = aemon.fit_series(df, daily_profile=False, epochs=5).detectors["a"]
    assert off.meta.clock == "time_of_day" and off.meta.profile is None
    assert off.model_shape == off.input_shape == (3, 8)
