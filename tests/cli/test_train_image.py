"""``aemon train image`` on digits (no files) and on tiny IDX files the test writes."""

import gzip
import json

import numpy as np
import pytest

from aemon.cli import main
from aemon.core.detector import Detector
from aemon.training.datasets.images import IDX_FILES
from tests.unit.test_images import idx_bytes


def train(capsys, out, *extra):
    argv = ["train", "image", "--epochs", "3", "--json", "--quiet", "--out", str(out), *extra]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model", ["dense", "conv", "vae", "aae"])
def test_each_model_reconstructs_digits_and_round_trips(model, tmp_path, capsys):
    out = tmp_path / model
    doc = train(capsys, out, "--model", model)
    assert 0 < doc["test_mse"] < 0.2
    det = Detector.load(out, device="cpu")
    assert det.meta.doc["input"] == {"kind": "image", "shape": [8, 8]}
    assert np.isfinite(det.score(np.random.default_rng(0).random((5, 8, 8)))).all()
    assert (out / "report" / "reconstructions.png").stat().st_size > 1000
    drawn = (out / "report" / "samples.png").exists()
    assert drawn == (model in ("vae", "aae"))


def test_denoising_and_one_class_tasks(tmp_path, capsys):
    doc = train(capsys, tmp_path / "dn", "--model", "conv", "--denoise", "gaussian:0.2")
    assert doc["denoise_mse"] > 0 and (tmp_path / "dn" / "report" / "denoising.png").exists()
    doc = train(capsys, tmp_path / "oc", "--normal-class", "0", "--epochs", "20")
    assert doc["n_anomalies"] == doc["n"] - 36  # digits' test split holds 36 zeros
    assert doc["roc_auc"] > 0.8
    assert sorted(doc["per_class_auc"]) == [str(c) for c in range(1, 10)]
    assert min(doc["per_class_auc"].values()) > 0.5
    assert (tmp_path / "oc" / "report" / "per_class_auc.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "oc" / "report" / "metrics.json").read_text())
    assert saved["per_class_auc"] == doc["per_class_auc"] and saved["test_mse"] == doc["test_mse"]


def test_a_two_dimensional_latent_is_drawn_by_class(tmp_path, capsys):
    train(capsys, tmp_path / "z2", "--model", "vae", "--latent-dim", "2")
    assert (tmp_path / "z2" / "report" / "latent.png").stat().st_size > 1000
    train(capsys, tmp_path / "z16", "--model", "vae")
    assert not (tmp_path / "z16" / "report" / "latent.png").exists()


def test_idx_data_sets_and_their_errors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        imgs, labs = IDX_FILES[split]
        (tmp_path / imgs).write_bytes(gzip.compress(idx_bytes(rng.integers(0, 256, (40, 12, 12)))))
        (tmp_path / labs).write_bytes(gzip.compress(idx_bytes(rng.integers(0, 3, 40))))
    doc = train(
        capsys,
        tmp_path / "m",
        "--dataset",
        "mnist",
        "--data-root",
        str(tmp_path),
        "--model",
        "conv",
    )
    assert doc["test_mse"] > 0
    assert main(["train", "image", "--dataset", "mnist", "--out", str(tmp_path / "x")]) == 2
    assert "needs --data-root" in capsys.readouterr().err
    assert main(["train", "image", "--normal-class", "12", "--out", str(tmp_path / "x")]) == 2
    assert "digits has no class 12" in capsys.readouterr().err
