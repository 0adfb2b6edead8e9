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
    one = shutil.copytree(next(p for p in models.iterdir() if p.is_dir()), tmp_path / "one")
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


def test_an_artifact_added_after_start_is_taken_in_when_it_fits(models, tmp_path):
    """A stream's model copied into the directory of a running daemon: listed once it has its
    detector.json, loaded and served from then on (the route comes last)."""
    root = tmp_path / "m"
    shutil.copytree(models, root)
    shutil.rmtree(next(p for p in root.iterdir() if "b" in p.name))
    m = Models(str(root), device="cpu")
    assert m.index("b") is None and m.unserved() == []
    (root / "b").mkdir()  # being copied in: no detector.json yet
    assert m.unserved() == []
    shutil.copytree(
        next(p for p in models.iterdir() if "b" in p.name), root / "b", dirs_exist_ok=True
    )
    assert m.unserved() == [root / "b"]
    (taken, refused) = m.load_new(m.unserved(), wide=1)
    assert refused == 0 and [(s, p) for s, p, _ in taken] == [("b", root / "b")]
    assert m.index("b") is None  # loading serves nothing yet
    m.add(*taken[0])
    assert m.index("b") == 1 and m.rules[1] and m.takes[1] == m.takes[0] and m.unserved() == []


def test_an_artifact_the_running_daemon_cannot_serve_waits_for_a_restart(models, tmp_path, caplog):
    """A model the daemon could only serve after a restart (another window, more metrics than
    the batch rows were sized for, learning in a daemon that does not learn, a stream served
    already) is refused once with why, and tried again when it changes."""
    root = tmp_path / "m"
    shutil.copytree(models, root)
    m = Models(str(root), device="cpu")
    frame = two_streams(30)
    aemon.fit_series(frame[frame.stream == "b"].assign(stream="w"), epochs=1, length=6).save(
        tmp_path / "other"
    )
    wide = frame[frame.stream == "b"].assign(stream="x", other=lambda f: f.value * 2)
    aemon.fit_series(wide, epochs=1).save(tmp_path / "other")
    again = next(p for p in models.iterdir() if "a" in p.name)
    for name in ("w", "x"):
        shutil.copytree(tmp_path / "other" / name, root / f"new-{name}")
    shutil.copytree(again, root / "a-again")
    assert sorted(p.name for p in m.unserved()) == ["a-again", "new-w", "new-x"]
    taken, refused = m.load_new(m.unserved(), wide=1)
    assert taken == [] and refused == 3 and m.unserved() == []  # each said once
    said = sorted(r.getMessage().split(": ", 1)[1] for r in caplog.records)
    assert said[0].startswith("its windows hold 32 values, more than the 8 of the batch rows")
    assert said[1].startswith("models take different windows (") and "6 samples" in said[1]
    assert said[2].startswith("stream 'a' is served by ")
    meta = root / "new-w" / "detector.json"
    os.utime(meta, ns=(5, 5))  # rewritten: tried again
    assert m.unserved() == [root / "new-w"] and len(m.unserved(again=True)) == 3


def test_a_learning_model_is_not_taken_into_a_daemon_that_does_not_learn(tmp_path):
    csv = samples_csv(tmp_path / "s.csv", n=120, streams=("a", "b"))
    aemon.fit_series(csv, epochs=1, members=1, learn=False).save(tmp_path / "m")
    learns = aemon.fit_series(csv, epochs=1, members=1).save(tmp_path / "learns")
    shutil.rmtree(next(p for p in (tmp_path / "m").iterdir() if p.name == "b"))
    m = Models(str(tmp_path / "m"), device="cpu")
    shutil.copytree(learns / "b", tmp_path / "m" / "b")
    assert m.load_new(m.unserved(), wide=1) == ([], 1) and m.index("b") is None
