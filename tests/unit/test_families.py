"""Every family trains a few epochs through the real pipeline, round-trips through the artifact
and scores the same after loading; family-specific behaviour is checked beside it."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from aemon.core.detector import Detector
from aemon.core.errors import ArtifactError
from aemon.core.families import FAMILIES, build
from aemon.core.table import WindowTable
from aemon.training.datasets.images import load_digits
from aemon.training.fit import fit
from aemon.training.noise import parse
from aemon.training.pipeline import fit_detector
from aemon.training.presets import IMAGE_PRESETS, WINDOW_PRESETS, FitConfig, Recipe
from tests.conftest import make_windows

CPU = torch.device("cpu")
FIT = FitConfig(epochs=8, batch_size=64, lr=3e-3)

WINDOW_RECIPES = {
    "dense": Recipe("dense", {"widths": [16], "latent": 4}, FIT, normaliser="zscore"),
    "conv1d": Recipe("conv1d", {"widths": [8, 16], "kernel": 5}, FIT, normaliser="zscore"),
    "vae": Recipe("vae", {"widths": [16], "latent": 4}, FIT, normaliser="zscore", score="elbo"),
    "aae": Recipe(
        "aae", {"widths": [16], "latent": 4, "disc_widths": [16]}, FIT, normaliser="zscore"
    ),
}


def test_every_registered_family_is_covered():
    assert set(FAMILIES) == {*WINDOW_RECIPES, "conv2d"}


@pytest.mark.parametrize("family", sorted(WINDOW_RECIPES))
def test_family_trains_round_trips_and_scores(family, tmp_path):
    data = make_windows(300, 40, seed=1)
    train, test = data.subset(slice(0, 200)), data.subset(slice(200, None))
    out = tmp_path / family
    summary = fit_detector(
        name=family,
        train=train,
        test=test,
        recipe=WINDOW_RECIPES[family],
        device=CPU,
        facts={},
        progress=False,
    ).summary()
    fitted = fit_detector(
        name=family, train=train, test=None, recipe=WINDOW_RECIPES[family], device=CPU, facts={}
    )
    fitted.save(out)
    det = Detector.load(out, device="cpu")
    assert det.version == fitted.version  # the version is known before the artifact is written
    assert det.meta.family == family and det.threshold == summary["threshold"]
    scores = det.score(test.values)
    assert np.isfinite(scores).all()
    assert summary["roc_auc"] > 0.6, summary  # a few epochs already separate the bursts
    again = Detector.load(out, device="cpu").score(test.values)
    np.testing.assert_array_equal(scores, again)


def test_conv1d_handles_channels_and_lengths_that_do_not_halve():
    model = build("conv1d", {"input_shape": [2, 30], "widths": [4, 8], "kernel": 3})
    x = torch.randn(5, 2, 30)
    assert model(x).shape == x.shape
    model = build("conv1d", {"input_shape": [30], "widths": [4], "kernel": 7})
    assert model(torch.randn(3, 30)).shape == (3, 30)


def test_a_conv_latent_is_a_dense_bottleneck_and_models_without_one_are_unchanged():
    """Without one, a 1-D conv AE keeps more codes than the window has values (140 -> 35 x 32)
    and rebuilds anomalous ECG beats as well as normal ones (validation ROC-AUC 0.82-0.94
    against 0.99 with ``latent`` 8); artifacts written before ``latent`` load as they were."""
    wide = build("conv1d", {"input_shape": [140], "widths": [16, 32], "kernel": 5})
    assert wide.encode(torch.randn(2, 140)).shape == (2, 32, 35)
    assert "latent" not in wide.hparams and "encoder.0.weight" in wide.state_dict()
    for shape, x in (([140], torch.randn(3, 140)), ([3, 8], torch.randn(3, 3, 8))):
        narrow = build("conv1d", {"input_shape": shape, "widths": [16, 32], "latent": 4})
        assert narrow.encode(x).shape == (3, 4) and narrow(x).shape == x.shape
        assert narrow.hparams["latent"] == 4
    assert WINDOW_PRESETS["conv1d"].hparams["latent"] == 8


def test_conv2d_is_the_tutorials_shape_on_mnist_and_trains_on_digits():
    big = build("conv2d", {"input_shape": [28, 28], "widths": [16, 8], "output": "sigmoid"})
    assert big.encode(torch.rand(2, 28, 28)).shape == (2, 8, 7, 7)
    assert big(torch.rand(2, 28, 28)).shape == (2, 28, 28)
    train, test = load_digits()
    torch.manual_seed(0)
    model = build("conv2d", {"input_shape": [8, 8], "widths": [16, 8], "output": "sigmoid"})
    result = fit(
        model,
        train.images,
        test.images,
        replace(FIT, epochs=15, loss="l2"),
        CPU,
        corrupt=parse("gaussian:0.2", clip=(0.0, 1.0)),
        progress=False,
    )
    assert result.val_loss[-1] < 0.6 * result.val_loss[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("family", sorted(IMAGE_PRESETS))
def test_every_image_family_trains_on_cuda_under_autocast(family):
    """As ``aemon train image --device cuda`` trains (bf16 autocast on): the image VAE's
    binary cross-entropy once raised there (CUDA refuses it under autocast)."""
    train, test = load_digits()
    recipe = IMAGE_PRESETS[family]
    assert recipe.fit.amp
    torch.manual_seed(0)
    model = build(recipe.family, {"input_shape": [8, 8], **recipe.hparams})
    cuda = torch.device("cuda")
    fit_cfg = replace(recipe.fit, epochs=5)
    result = fit(model, train.images, test.images, fit_cfg, cuda, progress=False)
    assert np.isfinite(result.val_loss).all() and result.val_loss[-1] < result.val_loss[0]


def test_vae_elbo_score_adds_the_kl_and_samples_come_from_the_prior():
    torch.manual_seed(0)
    vae = build("vae", {"input_shape": [12], "widths": [8], "latent": 3})
    x = torch.randn(4, 12)
    with torch.no_grad():
        rec = vae.errors(x, "mse").mean(1)
        elbo = vae.errors(x, "elbo").mean(1)
        mu, logvar = vae._posterior(x)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1) / 12
    torch.testing.assert_close(elbo, rec + kl)
    assert vae.sample(6).shape == (6, 12)
    with pytest.raises(ArtifactError, match="sigmoid"):
        build("vae", {"input_shape": [4], "widths": [], "latent": 2, "recon": "bce"})


def test_aae_updates_its_discriminator_and_samples():
    torch.manual_seed(0)
    aae = build("aae", {"input_shape": [16], "widths": [8], "latent": 2, "disc_widths": [8]})
    before = [p.clone() for p in aae.discriminator.parameters()]
    fit(aae, make_windows(100, 0).values[:, :16], None, replace(FIT, epochs=2), CPU, progress=False)
    after = list(aae.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert aae.sample(5).shape == (5, 16)


def test_noise_kinds():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 50)
    g = parse("gaussian:0.3", clip=(0.0, 1.0))(x, gen)
    assert g.min() >= 0 and g.max() <= 1 and not torch.equal(g, x)
    sp = parse("saltpepper:0.2")(x, gen)
    changed = sp != x
    assert 0.15 < changed.float().mean() < 0.25
    assert set(torch.unique(sp[changed]).tolist()) <= {x.min().item(), x.max().item()}
    m = parse("mask:0.25")(x, gen)
    assert 0.2 < (m == 0).float().mean() < 0.3
    for bad in ("gaussian", "blur:0.1", "mask:1.5", "gaussian:-1", "mask:x"):
        with pytest.raises(ValueError):
            parse(bad)


def test_window_table_subset_keeps_rows_aligned():
    t = WindowTable(np.arange(12, dtype=np.float32).reshape(4, 3), seq=np.arange(4))
    assert t.subset(np.array([2, 0])).seq.tolist() == [2, 0]


def _member(packed, k: int):
    """Member ``k`` of a packed dense ensemble as a one-member DenseAE with its weights."""
    single = build("dense", {**packed.hparams, "members": 1})
    for (name, p), (_, q) in zip(
        packed.state_dict().items(), single.state_dict().items(), strict=True
    ):
        w = p[k].squeeze(0)
        q.copy_(w.T if w.ndim == 2 and name.endswith("weight") else w)
    return single


def test_a_packed_dense_ensemble_is_its_members_side_by_side():
    torch.manual_seed(0)
    packed = build("dense", {"input_shape": [3, 8], "widths": [16], "latent": 4, "members": 3})
    x = torch.randn(10, 3, 8)
    members = [_member(packed, k) for k in range(3)]
    errors = torch.stack([m.errors(x, "mae") for m in members]).mean(0)
    torch.testing.assert_close(packed.errors(x, "mae"), errors)
    torch.testing.assert_close(packed(x), torch.stack([m(x) for m in members]).mean(0))
    assert not torch.allclose(members[0](x), members[1](x))  # initialised apart
    # training: each member's gradient is its own loss's, divided by the number of members
    packed.training_loss(x, x, "l1").backward()
    for k, m in enumerate(members):
        m.training_loss(x, x, "l1").backward()
        for p, q in zip(packed.parameters(), m.parameters(), strict=True):
            g = p.grad[k].squeeze(0)
            g = g.T if g.ndim == 2 else g
            torch.testing.assert_close(g * 3, q.grad)


def test_a_packed_ensemble_trains_round_trips_and_old_artifacts_keep_one_member(tmp_path):
    data = make_windows(300, 40, seed=1)
    recipe = replace(WINDOW_RECIPES["dense"], hparams={"widths": [16], "latent": 4, "members": 3})
    fitted = fit_detector(
        name="ens", train=data.subset(slice(0, 200)), test=None, recipe=recipe, device=CPU, facts={}
    )
    fitted.save(tmp_path / "ens")
    det = Detector.load(tmp_path / "ens", device="cpu")
    assert det.meta.doc["hparams"]["members"] == 3
    scores = det.score(data.values[200:])
    np.testing.assert_array_equal(scores, fitted.score(data.values[200:]))
    one = build("dense", {"input_shape": [40], "widths": [16], "latent": 4})
    assert "members" not in one.hparams  # artifacts of one model read and write as before
    with pytest.raises(ArtifactError, match="members"):
        build("dense", {"input_shape": [40], "widths": [16], "latent": 4, "members": 0})


@pytest.mark.parametrize("family", ["dense", "conv1d"])
def test_a_batch_larger_than_a_cpu_pass_scores_as_its_windows_do_in_small_batches(family):
    """On the CPU a batch goes through the model its family's ``cpu_rows`` windows at a time:
    the scores, the flagged windows and their contributors are those of the windows scored in
    small batches."""
    data = make_windows(150, 30, seed=2)
    det = fit_detector(
        name=family, train=data, test=None, recipe=WINDOW_RECIPES[family], device=CPU, facts={}
    )
    det.model.cpu_rows = rows = 300
    passes: list[int] = []  # the windows each layer took at once
    for layer in det.model.modules():
        layer.register_forward_pre_hook(lambda _, args: passes.append(len(args[0])))
    n = 2 * rows + 500
    values = np.resize(data.values, (n, data.values.shape[1]))
    x = torch.from_numpy(det.inputs(values))
    small = [det.score_tensor(x[i : i + 100], det.threshold, 3) for i in range(0, n, 100)]
    passes.clear()
    scores, flagged, top = det.score_tensor(x, det.threshold, 3)
    assert max(passes) == rows
    np.testing.assert_allclose(scores, np.concatenate([s for s, _, _ in small]), rtol=1e-5)
    expected = np.concatenate([f + 100 * i for i, (_, f, _) in enumerate(small)])
    np.testing.assert_array_equal(flagged, expected)
    assert flagged.max() > 2 * rows  # windows of the last pass are flagged at their rows
    np.testing.assert_array_equal(top, np.concatenate([t for _, f, t in small if f.size]))
