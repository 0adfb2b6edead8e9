import numpy as np
import pytest

from aemon.core.rates import log_normal
from aemon.core.specs import parse_threshold
from aemon.training.calibration import calibrate, pot
from aemon.training.pipeline import history_incidents

RNG = np.random.default_rng(7)


def test_mean_std_on_a_gaussian_lands_at_k_sigma():
    s = RNG.normal(5.0, 2.0, 200_000)
    t = calibrate(s, "mean-std:1.5")
    assert t.value == pytest.approx(5.0 + 1.5 * 2.0, abs=0.03)
    assert (t.method, t.param, t.n) == ("mean-std", 1.5, len(s))


def test_quantile_on_a_uniform_is_the_probability():
    t = calibrate(RNG.uniform(0, 1, 100_000), "quantile:0.99")
    assert t.value == pytest.approx(0.99, abs=0.003)


def test_pot_recovers_an_exponential_tail_beyond_the_sample():
    s = RNG.exponential(1.0, 50_000)
    risk = 1e-6  # far past the largest of 50k samples (about ln(50k) = 10.8)
    t = calibrate(s, f"pot:{risk}")
    assert t.value == pytest.approx(-np.log(risk), rel=0.15)
    assert t.value > s.max()
    assert t.details["peaks"] == pytest.approx(0.02 * len(s), rel=0.01)


def test_pot_on_a_bounded_tail_stays_below_the_bound():
    # Uniform excesses have a negative shape: the GPD has a finite end point at 1.
    t = pot(RNG.uniform(0, 1, 50_000), 1e-6)
    assert t["gamma"] < -0.5
    assert 0.98 < t["value"] <= 1.01


def test_mad_on_a_lognormal_ignores_outliers():
    s = RNG.lognormal(mean=-3.0, sigma=0.4, size=20_000)
    clean = calibrate(s, "mad:3").value
    dirty = calibrate(np.r_[s, np.full(400, 50.0)], "mad:3").value  # 2% wild outliers
    assert clean == pytest.approx(np.exp(-3.0 + 3 * 0.4), rel=0.03)
    assert dirty == pytest.approx(clean, rel=0.05)
    assert calibrate(np.r_[s, np.full(400, 50.0)], "mean-std:3").value > 5 * clean


def test_fitted_max_reaches_as_far_as_the_calibration_scores_do():
    # Log-normal scores: at M = 1 the fit's 1 - 1/(n + 1) quantile, about the largest of the n
    # scores, whatever n (mad:K stays at K deviations whatever n).
    z = {64: 2.154, 2000: 3.291}  # the normal quantiles at 1 - 1/(n + 1)
    for n, zn in z.items():
        s = RNG.lognormal(mean=-3.0, sigma=0.5, size=(200, n))
        values = np.array([calibrate(row, "fitted-max:1").value for row in s])
        assert np.median(np.log(values)) == pytest.approx(-3.0 + zn * 0.5, abs=0.05)
        assert np.median(values / s.max(axis=1)) == pytest.approx(1.0, abs=0.15)
    # More windows in view (M) reach farther into the same tail.
    s = RNG.lognormal(mean=-3.0, sigma=0.5, size=500)
    one, ten = calibrate(s, "fitted-max:1"), calibrate(s, "fitted-max:10")
    assert ten.value > one.value
    assert one.details.keys() == {"log_median", "log_mad"}


def test_fitted_max_varies_less_than_mad_from_few_scores():
    # 64 scores, as a short history's calibration holds: mad:2.5 reaches past the expected
    # largest (z 2.5 > 2.15) and its spread grows with z.
    s = RNG.lognormal(mean=-3.0, sigma=0.5, size=(400, 64))
    fm = np.log([calibrate(row, "fitted-max:1").value for row in s])
    mad = np.log([calibrate(row, "mad:2.5").value for row in s])
    assert fm.std() < mad.std()
    assert np.median(fm) < np.median(mad)


@pytest.mark.parametrize(
    "spec",
    ["quantile", "quantile:1.5", "pot:0", "mean-std:-1", "median:3", "mad:x", "", "fitted-max:0"],
)
def test_bad_specs_are_refused(spec):
    with pytest.raises(ValueError):
        parse_threshold(spec)


def test_calibration_refuses_non_finite_scores():
    with pytest.raises(ValueError, match="finite"):
        calibrate(np.array([1.0, np.nan, 2.0]), "quantile:0.5")


def test_an_incident_inside_the_history_is_a_few_windows_not_a_routine():
    """Calibration windows far above the rest are an incident (left out of the threshold) when
    they are few; when more than a quarter of them, or a fitted window, score as high, that is
    how the stream behaves, and none is left out."""
    rng = np.random.default_rng(11)
    normal = np.exp(rng.normal(0.0, 0.2, 200))
    fitted = np.exp(rng.normal(0.0, 0.2, 400))
    for share, left_out in ((0.10, True), (0.24, True), (0.30, False), (0.40, False)):
        cal = normal.copy()
        k = int(share * len(cal))
        cal[-k:] = 10.0  # an incident's windows
        got = history_incidents(log_normal(cal), cal, fitted)
        assert got.sum() == (k if left_out else 0), share
        assert not got[:-k].any()
    cal = normal.copy()
    cal[-20:] = 10.0
    assert history_incidents(log_normal(cal), cal, fitted).sum() == 20
    routine = np.append(fitted, 10.0)  # the fitted stretch reaches as high
    assert not history_incidents(log_normal(cal), cal, routine).any()
