"""The windows path over several streams: each stream tested on its own future, and a warning
when their scales are too far apart to share one normaliser."""

import warnings

import numpy as np
import pytest

from aemon.core.table import WindowTable, metrics_of, read_windows, write_windows
from aemon.training.pipeline import ordered_split, warn_if_columns_differ, warn_if_scales_differ


def table(scales=(1.0, 1.0), n=(100, 50)):
    rng = np.random.default_rng(0)
    values = np.concatenate([s * rng.normal(size=(k, 8)) for s, k in zip(scales, n, strict=True)])
    stream = np.concatenate([np.full(k, f"s{i}") for i, k in enumerate(n)])
    return WindowTable(values=values.astype(np.float32), stream=stream)


def test_the_ordered_split_holds_back_each_streams_last_windows():
    fit, test = ordered_split(table(), 0.2, gap=8)
    assert test.tolist() == [*range(80, 100), *range(140, 150)]  # both streams are tested
    assert fit.tolist() == [*range(0, 72), *range(100, 132)]  # a gap of 8 before each


def test_streams_far_apart_in_scale_are_told_to_train_series():
    with pytest.warns(UserWarning, match=r"differ 9.9.e\+05-fold .* 'aemon train series'"):
        warn_if_scales_differ(table(scales=(1.0, 1e6)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_scales_differ(table(scales=(1.0, 3.0)))  # alike enough: nothing said


def test_metrics_side_by_side_in_a_window_are_told_to_be_scaled_apart():
    """A feature matrix of cpu, memory bytes and a ratio (PyOD's input), or a window CSV of
    several metrics: one scaling covers every value, so the warning names the far-apart ones."""
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(50, 5, 300), rng.normal(1e9, 1e7, 300), rng.normal(0.5, 0.1, 300)]
    with pytest.warns(UserWarning, match=r"value 2 against value 3 of 3.*METRIC@T.*train series"):
        warn_if_columns_differ("d", x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_columns_differ("d", table(scales=(1.0, 3.0)).values)  # one signal: quiet
        warn_if_columns_differ("d", np.c_[x[:, :1], np.zeros(300)])  # a constant: no scale


def test_a_window_csv_of_several_metrics_reads_back_its_metrics(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(2, 6)
    write_windows(tmp_path / "w.csv", WindowTable(values, channels=("cpu", "mem")))
    assert (tmp_path / "w.csv").read_text().splitlines()[0] == "cpu@0,cpu@1,cpu@2,mem@0,mem@1,mem@2"
    back = read_windows(tmp_path / "w.csv")
    assert back.channels == ("cpu", "mem") and np.array_equal(back.values, values)
    for names in (["a@0", "a@1"], ["a@0", "b@0", "a@1", "b@1"], ["a@1", "a@0", "b@0", "b@1"]):
        assert metrics_of(names) is None  # one metric, or not metric by metric from 0
    assert metrics_of(["a@b@0", "a@b@1", "c@0", "c@1"]) == ("a@b", "c")
