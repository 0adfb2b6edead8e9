import json
import shutil

import numpy as np
import pytest
import torch

from aemon.core import artifact
from aemon.core.detector import Detector
from aemon.core.errors import ArtifactError
from aemon.core.families import build

META = {
    "name": "t",
    "family": "dense",
    "input": {"kind": "window", "shape": [16]},
    "normaliser": {"kind": "zscore", "shift": 0.5, "scale": 2.0},
    "score": "mae",
    "threshold": {"value": 0.3, "method": "quantile", "param": 0.99, "n": 10, "details": {}},
}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build("dense", {"input_shape": [16], "widths": [8], "latent": 4})
    return artifact.save(tmp_path / "art", model, dict(META)), model


def test_round_trip_scores_identically(saved):
    path, model = saved
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    det = Detector.load(path, device="cpu")
    with torch.inference_mode():
        expected = model((torch.from_numpy(x) - 0.5) / 2.0) - (torch.from_numpy(x) - 0.5) / 2.0
    np.testing.assert_allclose(det.score(x), expected.abs().mean(1).numpy(), rtol=1e-6)
    meta = artifact.read_meta(path).doc
    assert meta["model_version"] == meta["weights"]["sha256"][:12]
    assert meta["versions"]["torch"] == torch.__version__
    assert det.threshold == 0.3 and det.input_shape == (16,)


def test_the_scoring_digest_follows_what_scores_depend_on_and_not_the_threshold(saved):
    """What a running daemon compares when a model is swapped in: a new threshold keeps the
    digest (and the version changes); other weights or another scaling change it."""
    path, _ = saved
    meta = artifact.read_meta(path)
    rethresholded = meta.with_threshold(0.9)
    assert rethresholded.model_version != meta.model_version
    assert rethresholded.scoring == meta.scoring
    for key, value in (
        ("weights", {**meta.doc["weights"], "sha256": "0" * 64}),
        ("normaliser", {**meta.doc["normaliser"], "scale": 3.0}),
    ):
        assert artifact.Meta({**meta.doc, key: value}).scoring != meta.scoring, key


def test_tampered_weights_are_refused(saved):
    path, _ = saved
    w = path / artifact.WEIGHTS_FILE
    data = bytearray(w.read_bytes())
    data[-3] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Detector.load(path)


def test_truncated_weights_with_forged_checksum_are_refused(saved):
    path, _ = saved
    w = path / artifact.WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[:40])
    meta = json.loads((path / artifact.META_FILE).read_text())
    meta["weights"]["sha256"] = artifact.sha256(w)
    (path / artifact.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="unreadable safetensors"):
        Detector.load(path)


def test_hparams_that_do_not_fit_the_weights_are_refused(saved):
    path, _ = saved
    meta = json.loads((path / artifact.META_FILE).read_text())
    meta["hparams"]["latent"] = 5
    (path / artifact.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="tensors do not match 'dense' model"):
        Detector.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: "{not json", "corrupt JSON"),
        (lambda m: json.dumps({**m, "schema_version": 99}), "schema version 99"),
        (lambda m: json.dumps({**m, "family": "transformer"}), "unknown model family"),
        (lambda m: json.dumps({**m, "score": "hinge"}), "unknown score function"),
        (
            lambda m: json.dumps({k: v for k, v in m.items() if k != "threshold"}),
            "missing threshold",
        ),
        (  # one channel: nothing to scale
            lambda m: json.dumps({**m, "channel_scale": {"values": [1.0]}}),
            "channel_scale.values must be one finite number > 0 per value channel",
        ),
        (  # an unknown clock, and a clock on a one-channel input
            lambda m: json.dumps({**m, "input": {**m["input"], "clock": "weather"}}),
            "input.clock must be one of time_of_day, time_of_week, blank",
        ),
        (
            lambda m: json.dumps({**m, "input": {**m["input"], "clock": "time_of_day"}}),
            r"then input.shape \[channels >= 3, length\]",
        ),
    ],
)
def test_bad_metadata_is_refused(saved, edit, message):
    path, _ = saved
    meta = json.loads((path / artifact.META_FILE).read_text())
    (path / artifact.META_FILE).write_text(edit(meta))
    with pytest.raises(ArtifactError, match=message):
        Detector.load(path)


def test_things_that_are_not_artifacts(tmp_path, saved):
    path, _ = saved
    with pytest.raises(ArtifactError, match="not an aemon artifact directory"):
        Detector.load(tmp_path / "model.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"no detector\.json"):
        Detector.load(tmp_path / "empty")
    with pytest.raises(ArtifactError, match=r"detector\.json: give the artifact's directory \("):
        Detector.load(path / "detector.json")
    shutil.copy(path / artifact.META_FILE, tmp_path / "empty" / artifact.META_FILE)
    with pytest.raises(ArtifactError, match="missing weights file"):
        Detector.load(tmp_path / "empty")
