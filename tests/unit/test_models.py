"""A models directory in the daemon: routing by stream, and each model reloaded on its own."""

import json
import os
import shutil

import numpy as np
import pytest

import aemon
from aemon.core.catalog import ANY
from aemon.core.errors import ArtifactError
from aemon.daemon.batching import as_windows
from aemon.daemon.routing import Models
from tests.conftest import samples_csv, two_streams


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    csv = samples_csv(root / "s.csv", n=120, streams=("a", "b"))
    return aemon.fit_series(csv, epochs=2).save(root / "m")


def test_streams_are_routed_to_their_own_models(models):
    m = Models(str(models), device="cpu")
    a, b = m.index("a"), m.index("b")
    assert {a, b} == {0, 1} and m.index("c") is None
    assert m.detectors[a].meta.stream == "a" and m.series and not m.single
    # adaptive window, delay, within, resolve_after; then learning's every, delay and span
    assert m.history == 2000 + 300 + 6 + 12 + 1000 + 1000 + 3000
    line = m.describe()  # the start-up line names every model and what it serves
    assert line.startswith("2 models: ") and "stream 'a'" in line and "stream 'b'" in line
    assert m.detectors[a].version in line and m.detectors[b].version in line


def test_each_model_reloads_on_its_own_and_a_bad_one_keeps_running(models, tmp_path):
    m = Models(str(models), device="cpu")
    b = m.index("b")
    path = m.paths[b] / "detector.json"
    original = path.read_text()
    meta = json.loads(original)
    meta["events"]["resolve_after"] = 30
    path.write_text(json.dumps(meta))
    os.utime(path, ns=(1, 1))  # a new stamp, whatever the clock's resolution
    assert m.changed() == [b]
    swapped, refused = m.reload(m.changed())
    assert [i for i, _ in swapped] == [b] and refused == 0 and m.rules[b].resolve_after == 30
    assert m.changed() == []
    path.write_text("{broken")
    os.utime(path, ns=(2, 2))
    old = m.detectors[b]
    assert m.reload(m.changed()) == ([], 1) and m.detectors[b] is old  # refused, the old one runs
    path.write_text(original)


def test_a_catch_all_artifact_serves_every_stream(models, tmp_path):
    one = next(p for p in models.iterdir() if p.is_dir())
    meta = json.loads((one / "detector.json").read_text())
    del meta["stream"]
    (one / "detector.json").write_text(json.dumps(meta))
    m = Models(str(one), device="cpu")
    assert list(m.route) == [ANY] and m.index("anything") == 0


def test_a_directory_without_artifacts_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match=r"no detector\.json"):
        Models(str(tmp_path))


def test_a_model_whose_clock_changes_is_refused_and_clocks_may_differ(tmp_path):
    """A reload may not change what a model's clock channels hold (the stream's buffered samples
    carry the old); models with and without clock channels serve side by side (each stream is
    windowed as its model takes it)."""
    root = aemon.fit_series(two_streams(5), epochs=1).save(tmp_path / "m")
    m = Models(str(root), device="cpu")
    b = m.index("b")
    assert sorted(d.meta.clock for d in m.detectors) == ["blank", "time_of_day"]
    assert m.takes[m.index("a")].clock == "time_of_day" and m.takes[b].clock == "blank"
    path = m.paths[b] / "detector.json"
    meta = json.loads(path.read_text())
    meta["input"]["clock"] = "time_of_day"
    path.write_text(json.dumps(meta))
    os.utime(path, ns=(1, 1))
    old = m.detectors[b]
    assert m.reload(m.changed()) == ([], 1) and m.detectors[b] is old
    del meta["input"]["clock"]  # the same shape read as three metrics, without a clock
    path.write_text(json.dumps(meta))
    m = Models(str(root), device="cpu")
    assert m.takes[b] == (3, None, (3, 8))  # values, clock, windows
    assert m.row_shape == (3, 8)  # one shape: rows as the models take them


def test_series_models_of_several_widths_share_one_daemon(tmp_path):
    """One metric beside two, trained apart into one directory: batch rows as long as the widest
    window, each model's windows at their start; window lengths must still agree."""
    frame = two_streams(30)
    one = frame[frame.stream == "a"]
    two = frame[frame.stream == "b"].assign(other=lambda f: f.value * 2)
    aemon.fit_series(one, epochs=1).save(tmp_path / "m")
    aemon.fit_series(two, epochs=1).save(tmp_path / "m")
    m = Models(str(tmp_path / "m"), device="cpu")
    a, b = m.index("a"), m.index("b")
    assert (m.detectors[a].input_shape, m.detectors[b].input_shape) == ((3, 8), (4, 8))
    assert m.row_shape == (32,)
    rows = np.arange(64, dtype=np.float32).reshape(2, 32)
    np.testing.assert_array_equal(as_windows(rows, (3, 8)), rows[:, :24].reshape(2, 3, 8))
    assert as_windows(rows, (32,)) is rows
    aemon.fit_series(two.assign(stream="c"), epochs=1, length=6).save(tmp_path / "m")
    with pytest.raises(ArtifactError, match=r"models take different windows \(a: 8 samples"):
        Models(str(tmp_path / "m"), device="cpu")


def test_an_artifact_added_after_start_is_named_once_as_waiting_for_a_restart(models, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(models, root)
    m = Models(str(root), device="cpu")
    assert m.unserved() == []
    (root / "c").mkdir()  # being copied in: no detector.json yet
    assert m.unserved() == []
    shutil.copytree(m.paths[0], root / "c", dirs_exist_ok=True)
    assert m.unserved() == [root / "c"] and m.unserved() == []  # said once
    assert root / "c" not in m.paths and len(m.detectors) == 2  # served after a restart
