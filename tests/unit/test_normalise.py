"""Normalisers: one pair for every value, or one per channel of multichannel windows."""

import numpy as np
import pytest

from aemon.core.errors import ArtifactError
from aemon.core.normalise import Normaliser


def channels_apart(n=400, seed=0):
    """Windows [n, 3, 8] of three metrics whose scales differ by up to 10^8."""
    rng = np.random.default_rng(seed)
    scales = np.array([1e-3, 1.0, 1e5])[None, :, None]
    levels = np.array([0.0, 50.0, 3e7])[None, :, None]
    return (levels + scales * rng.normal(size=(n, 3, 8))).astype(np.float32)


def test_per_channel_robust_scaling_puts_every_metric_on_one_footing():
    x = channels_apart()
    per = Normaliser.fit("robust", x, per_channel=True)
    z = per(x)
    spread = np.quantile(z, 0.95, axis=(0, 2)) - np.quantile(z, 0.05, axis=(0, 2))
    assert np.allclose(np.median(z, axis=(0, 2)), 0, atol=0.05)
    assert np.allclose(spread, 1.0, atol=0.05)  # each metric spans about one unit
    one = Normaliser.fit("robust", x)
    z1 = one(x)
    assert np.ptp(z1[:, 0]) < 1e-6 * np.ptp(z1[:, 2])  # one pair: the small metric vanishes


def test_a_mostly_constant_series_is_scaled_by_its_excursions_not_the_floor():
    rng = np.random.default_rng(2)
    writes = np.zeros((500, 8), dtype=np.float32)  # a disk mostly idle: 3% of samples write
    busy = rng.random(writes.shape) < 0.03
    writes[busy] = rng.uniform(1e7, 2e7, busy.sum())
    n = Normaliser.fit("robust", writes)
    assert n.shift == 0.0 and n.scale == pytest.approx(float(writes.max()))
    assert np.abs(n(writes)).max() == pytest.approx(1.0)  # the bursts seen span one unit
    flat = Normaliser.fit("robust", np.full((50, 8), 45.0))
    assert flat.scale == pytest.approx(0.045)  # truly constant: the floor, 0.1% of the level


def test_per_channel_pairs_round_trip_through_the_artifact_and_invert():
    x = channels_apart()
    per = Normaliser.fit("zscore", x, per_channel=True)
    doc = per.to_dict()
    assert len(doc["shift"]) == 3 and per.channels == 3
    back = Normaliser.from_dict(doc)
    assert back == per
    assert np.allclose(back.inverse(back(x), x), x, rtol=1e-4, atol=1e-3)


def test_one_channel_windows_keep_one_pair():
    x = np.random.default_rng(1).normal(size=(100, 8))
    n = Normaliser.fit("robust", x, per_channel=True)
    assert isinstance(n.shift, float) and n.channels is None


@pytest.mark.parametrize(
    "shift, scale",
    [([1.0, 2.0], [1.0]), ([1.0, True], [1.0, 1.0]), ([1.0, 2.0], [1.0, 0.0]), ([], []), ("a", 1)],
)
def test_bad_per_channel_pairs_are_refused(shift, scale):
    with pytest.raises(ArtifactError, match="normaliser"):
        Normaliser.from_dict({"kind": "robust", "shift": shift, "scale": scale})


def test_a_channel_in_another_ones_units_takes_that_ones_floor():
    """A value near 3e7 that never moved and its distance from a profile (all zeros): by its own
    level the distance would be scaled by 0.001; in the value's units, by 0.1% of 3e7."""
    x = np.zeros((50, 2, 8))
    x[:, 0] = 3e7
    own = Normaliser.fit("robust", x, per_channel=True)
    assert own.scale == pytest.approx((3e4, 1e-3))
    shared = Normaliser.fit("robust", x, per_channel=True, level_from=[0, 0])
    assert shared.scale == pytest.approx((3e4, 3e4))


def test_a_metric_in_small_units_is_scaled_by_its_own_moves():
    """A metric near 2e-6 moving by 1e-7 (a rare error ratio, seconds of a fast call): scaled by
    its 5-95% range, as it would be in units 10^6 larger, not by a fixed 0.001 that hid its
    moves; one that never moves keeps 0.1% of its level, at least 0.001."""
    x = 2e-6 + 1e-7 * np.random.default_rng(3).normal(size=(400, 8))
    small = Normaliser.fit("robust", x)
    large = Normaliser.fit("robust", x * 1e6)
    assert small.scale == pytest.approx(large.scale * 1e-6)
    assert small.scale == pytest.approx(np.quantile(x, 0.95) - np.quantile(x, 0.05))
    assert Normaliser.fit("robust", np.full((50, 8), 2e-6)).scale == pytest.approx(1e-3)
