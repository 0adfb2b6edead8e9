"""A models directory in the daemon: routing by stream, and each model reloaded on its own."""

import json
import os

import pytest

import aemon
from aemon.core.catalog import ANY
from aemon.core.errors import ArtifactError
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


def test_a_model_whose_clock_changes_is_refused_and_clocks_must_agree(tmp_path):
    """One daemon windows every stream alike: a reload may not change what a model's clock
    channels hold (the stream's buffered samples carry the old), and a directory that mixes
    models with and without clock channels is refused."""
    root = aemon.fit_series(two_streams(5), epochs=1).save(tmp_path / "m")
    m = Models(str(root), device="cpu")
    b = m.index("b")
    assert sorted(d.meta.clock for d in m.detectors) == ["blank", "time_of_day"]
    assert m.reads_clock(m.index("a")) and not m.reads_clock(b)
    path = m.paths[b] / "detector.json"
    meta = json.loads(path.read_text())
    meta["input"]["clock"] = "time_of_day"
    path.write_text(json.dumps(meta))
    os.utime(path, ns=(1, 1))
    old = m.detectors[b]
    assert m.reload(m.changed()) == ([], 1) and m.detectors[b] is old
    del meta["input"]["clock"]  # the same shape read as three metrics
    path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="differ in whether their input has clock channels"):
        Models(str(root), device="cpu")
