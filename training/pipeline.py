"""One training run: split normals, normalise, fit, calibrate, evaluate, report, write artifact."""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from aemon.core import artifact
from aemon.core.artifact import Meta
from aemon.core.detector import Detector
from aemon.core.errors import DataError
from aemon.core.evaluation import evaluate
from aemon.core.families import build
from aemon.core.families.base import Autoencoder
from aemon.core.normalise import Normaliser
from aemon.core.profile import Profile, level_channels, with_distances
from aemon.core.rates import exceed_probability, log_normal, value_exceeded_with
from aemon.core.table import WindowTable
from aemon.training import noise
from aemon.training.calibration import calibrate, check_sample_size
from aemon.training.fit import FitResult, fit
from aemon.training.presets import Recipe

FEW_CALIBRATION = 20  # calibration windows below which the threshold is a rough guess
FEW_NORMAL = 4  # normal training windows below which nothing is fitted


def check_normal(whose: str, normal: int, labelled: bool) -> None:
    """DataError unless there are at least ``FEW_NORMAL`` normal windows to fit."""
    if normal < FEW_NORMAL:
        why = " (windows labelled 1 are never fitted)" if labelled else ""
        raise DataError(
            f"{whose}: only {normal} normal training windows{why}; need at least {FEW_NORMAL}"
        )


def unit_of(kind: str) -> str:
    return "images" if kind == "image" else "windows"


def stage(progress: bool, text: str) -> None:
    """One line on stderr per stage of a run (``progress``), terminal or log file alike."""
    if progress:
        print(f"aemon: {text}", file=sys.stderr, flush=True)


SCALE_RATIO = 100.0  # streams whose spreads differ more than this should not share a scaling


def _by_stream(table: WindowTable) -> list[np.ndarray]:
    """Row positions of each stream, in order of first appearance (all rows without streams)."""
    if table.stream is None:
        return [np.arange(len(table))]
    _, first, inverse = np.unique(table.stream, return_index=True, return_inverse=True)
    return [np.flatnonzero(inverse == k) for k in np.argsort(first)]


def ordered_split(table: WindowTable, fraction: float, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, test rows): the last ``fraction`` of each stream's windows held back and the
    ``gap`` windows before them left out, so that every stream is tested on its own future."""
    kept, held = [], []
    for rows in _by_stream(table):
        n_test = max(1, round(len(rows) * fraction))
        kept.append(rows[: max(0, len(rows) - n_test - gap)])
        held.append(rows[len(rows) - n_test :])
    return np.concatenate(kept), np.concatenate(held)


def warn_if_scales_differ(table: WindowTable) -> None:
    """One normaliser covers every window: say so when the streams' scales are far apart."""
    groups = _by_stream(table)
    if len(groups) < 2:
        return
    spreads = []
    for rows in groups:
        v = table.values[rows]
        spreads.append(max(float(np.quantile(v, 0.95) - np.quantile(v, 0.05)), 1e-12))
    ratio = max(spreads) / min(spreads)
    if ratio > SCALE_RATIO:
        warnings.warn(
            f"the {len(groups)} streams' value ranges differ {ratio:.3g}-fold and one scaling "
            "covers them all, so the small ones barely count: train them with 'aemon train "
            "series' (a model and a scaling per stream) or scale each stream first",
            stacklevel=2,
        )


def warn_if_columns_differ(name: str, windows: np.ndarray) -> None:
    """One scaling covers every value of a window: say so when the values' ranges at some
    positions are far from those at others (several metrics side by side in a window, as in a
    feature matrix), which one scaling would mostly ignore."""
    flat = windows.reshape(len(windows), -1)
    spread = np.quantile(flat, 0.95, axis=0) - np.quantile(flat, 0.05, axis=0)
    moving = np.flatnonzero(spread > 0)  # a constant position is no scale
    if len(moving) < 2:
        return
    wide, narrow = moving[np.argmax(spread[moving])], moving[np.argmin(spread[moving])]
    ratio = spread[wide] / spread[narrow]
    if ratio > SCALE_RATIO:
        warnings.warn(
            f"{name}: the ranges of a window's values differ {ratio:.3g}-fold (value {wide + 1} "
            f"against value {narrow + 1} of {flat.shape[1]}) and one scaling covers them all, so "
            "the small ones barely count: for several metrics side by side, name the columns "
            "METRIC@T as 'aemon windows' does (train windows then scales each metric apart), "
            "scale each first, or train them with 'aemon train series'",
            stacklevel=3,
        )


def split_normals(
    normal: np.ndarray, fraction: float, seed: int, gap: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, calibration) rows. ``gap`` None: a random split (independent rows such as beats or
    images). Otherwise time order: calibrate on the last ``fraction`` of the rows and fit on the
    rows before them less ``gap`` rows, so that no calibration window shares a sample with a
    fitted one (overlapping windows of a series)."""
    if fraction <= 0:
        return normal, normal
    n_cal = max(2, round(len(normal) * fraction))
    if gap is None:
        perm = np.random.default_rng(seed).permutation(len(normal))
        return normal[perm[n_cal:]], normal[perm[:n_cal]]
    n_fit = len(normal) - n_cal - gap
    if n_fit < 2:
        raise DataError(
            f"only {len(normal)} normal windows: too few to fit, leave a gap of {gap} and "
            "calibrate on a later stretch"
        )
    return normal[:n_fit], normal[-n_cal:]


HISTORY_INCIDENT_CHANCE = 0.01  # see history_incidents
HISTORY_INCIDENT_SHARE = 0.25  # an incident holds at most this share of the calibration windows


def history_incidents(
    fit: dict[str, float], cal_scores: np.ndarray, fit_scores: np.ndarray
) -> np.ndarray:
    """Which calibration windows are an incident inside the history (a boolean mask): those
    scoring above the score that the calibration scores' robust log-normal expects among them
    with a 1% chance. None when a window of the fitted stretch scores as high, or when more than
    a quarter of the calibration windows do (the robust fit's upper quartile would then be the
    incident itself): that stream has such scores routinely."""
    bound = value_exceeded_with(fit, HISTORY_INCIDENT_CHANCE / (len(cal_scores) + 1))
    above = cal_scores > bound
    if (fit_scores > bound).any() or above.mean() > HISTORY_INCIDENT_SHARE:
        return np.zeros(len(cal_scores), dtype=bool)
    return above


def _series_facts(
    threshold: dict[str, object],
    series: dict[str, object],
    cal_scores: np.ndarray,
    fit_scores: np.ndarray,
) -> dict[str, object]:
    """A series model's additions to ``detector.json``: the threshold never below the largest
    calibration score, the calibration tail that seeds the adaptive threshold (both without the
    windows of an incident inside the history), the expected false alarms (all into
    ``threshold``), and the event rule, stream and facts (returned)."""
    rule: dict = dict(series["events"])  # type: ignore[arg-type]
    window = int(rule.get("adaptive_window", 0))
    fit = log_normal(cal_scores)
    incident = history_incidents(fit, cal_scores, fit_scores)
    k = int(incident.sum())
    if k:
        whose = f"stream {series['stream']!r}" if series["stream"] else "the any-stream model"
        warnings.warn(
            f"{whose}: {k:,} of its {len(cal_scores):,} calibration windows "
            f"score{'s' if k == 1 else ''} far above the rest and above every fitted window: "
            "taken as an incident inside the history, left out of its threshold",
            stacklevel=3,
        )
        cal_scores = cal_scores[~incident]
    per_day = 86400.0 / float(series["seconds_per_window"])  # type: ignore[arg-type]
    target = series.get("false_alarms_per_day")
    if target is not None:  # the user's rate, as the fitted calibration tail expects it
        value = value_exceeded_with(fit, min(float(target) / per_day, 0.5))  # type: ignore[arg-type]
        threshold.update(method="false_alarms_per_day", param=float(target))  # type: ignore[arg-type]
    else:
        value = max(float(threshold["value"]), float(cal_scores.max()))  # type: ignore[arg-type]
        threshold["at_least"] = "the largest calibration score"
    p = exceed_probability(fit, value)
    threshold.update(
        value=value,
        history_incident_windows=k,
        calibration_tail=[float(v) for v in cal_scores[-window:]] if window else [],
        **fit,
        windows_per_day=per_day,
        exceed_probability=p,
        expected_false_alarms_per_day=p * per_day,
    )
    facts = {"events": rule, "stream": series["stream"], "series": series["facts"]}
    learning = series.get("learning")
    if learning is not None:
        facts["learning"] = learning.to_dict()  # type: ignore[attr-defined]
    return facts


CHANNEL_QUANTILE = 0.99  # of each channel's calibration errors: its error on normal data
CHANNEL_FLOOR = 1e-6  # a channel's scale at least this fraction of the largest one


def channel_scale(detector: Detector, calibration: np.ndarray) -> dict[str, object]:
    """Each channel's normal error, for a several-metric series model: the 99% quantile of its
    mean window error over the calibration windows (a channel reconstructed perfectly gets a
    small floor, not zero), so that every metric's error counts in units of its own."""
    _, per = detector.score_series(calibration)
    assert per is not None
    q = np.quantile(per.astype(np.float64), CHANNEL_QUANTILE, axis=0)
    q = np.maximum(q, CHANNEL_FLOOR * max(float(q.max()), 1e-12))
    return {
        "values": [float(v) for v in q],
        "quantile": CHANNEL_QUANTILE,
        "fitted_on": "the calibration windows' errors per channel",
    }


def fit_scaling(
    kind: str, profile: Profile | None, windows: np.ndarray, per_channel: bool
) -> Normaliser:
    """The normaliser of a model's input: ``windows`` with their distances from ``profile``
    added (when there is one), each distance's floor in its value's units."""
    return Normaliser.fit(
        kind, with_distances(profile, windows), per_channel, level_channels(profile)
    )


def fit_model(
    recipe: Recipe,
    x: np.ndarray,
    val: np.ndarray | None,
    device: torch.device,
    kind: str = "window",
    progress: bool = True,
) -> tuple[Autoencoder, FitResult]:
    """A fresh model of the recipe fitted to normalised windows ``x``."""
    torch.manual_seed(recipe.fit.seed)
    model = build(recipe.family, {"input_shape": list(x.shape[1:]), **recipe.hparams})
    corrupt = None
    if recipe.denoise:
        corrupt = noise.parse(recipe.denoise, clip=(0.0, 1.0) if kind == "image" else None)
    result = fit(model, x, val, recipe.fit, device, corrupt=corrupt, progress=progress)
    return model, result


def fit_detector(
    *,
    name: str,
    train: WindowTable,
    test: WindowTable | None,
    recipe: Recipe,
    device: torch.device,
    facts: dict[str, object],
    progress: bool = True,
    stride: int | None = None,
    kind: str = "window",
    ordered_gap: int | None = None,
    calibration: np.ndarray | None = None,
    series: dict[str, object] | None = None,
    trained: tuple[Autoencoder, FitResult, Normaliser] | None = None,
    profile: Profile | None = None,
) -> Detector:
    """Fit on the normal rows of ``train``, calibrate, evaluate on ``test`` when it has labels:
    a detector in memory (nothing is written; :meth:`Detector.save` writes the artifact).

    ``stride`` is recorded for the monitor, which windows sample streams with it (default: the
    window length, i.e. back-to-back windows). ``kind="image"``: pixels in [0, 1], so denoising
    noise is clipped to that range.

    ``ordered_gap``: split fit and calibration rows in time order (see :func:`split_normals`);
    ``calibration``: calibrate on these rows instead and fit on every normal row. ``series``
    (sample streams): the stream's name, its event rule, the seconds a window stands for and the
    training facts; the threshold is then never below the largest calibration score, and the
    artifact records the calibration tail that seeds an adaptive threshold. ``trained``: a model
    already fitted (shared by several series) with its fit history and this artifact's
    normaliser; only calibration and evaluation are done here. ``profile``: the model also
    takes each value's distance from this profile (series with a clock of the day or week).
    """
    seed = recipe.fit.seed
    normal = train.values if train.label is None else train.values[train.label == 0]
    check_normal(name, len(normal), train.label is not None)
    if kind == "window" and trained is None and normal.ndim == 2:  # several metrics: apart
        warn_if_columns_differ(name, normal)
    if calibration is not None:
        fit_rows, cal_rows = normal, calibration
    else:
        fit_rows, cal_rows = split_normals(normal, recipe.calibration_fraction, seed, ordered_gap)
    check_sample_size(recipe.threshold, len(cal_rows))
    if len(cal_rows) < FEW_CALIBRATION:
        warnings.warn(
            f"{name}: the threshold is calibrated on only {len(cal_rows)} normal {unit_of(kind)}; "
            f"with fewer than {FEW_CALIBRATION} it is a rough guess (give more normal data)",
            stacklevel=2,
        )
    held_out = calibration is not None or recipe.calibration_fraction > 0
    unit = unit_of(kind)
    if trained is not None:
        model, result, normaliser = trained
    else:
        stage(progress, f"{name}: fitting {recipe.family} on {len(fit_rows)} normal {unit}")
        normaliser = fit_scaling(
            recipe.normaliser,
            profile,
            train.values,
            per_channel=kind == "series" or (kind == "window" and train.values.ndim == 3),
        )
        model, result = fit_model(
            recipe,
            normaliser(with_distances(profile, fit_rows)),
            normaliser(with_distances(profile, cal_rows)) if held_out else None,
            device,
            kind,
            progress,
        )
    doc: dict[str, Any] = {
        "name": name,
        "family": recipe.family,
        "input": {"kind": kind, "shape": list(normal.shape[1:])},
        "normaliser": normaliser.to_dict(),
        "score": recipe.score,
    }
    if kind in ("window", "series"):
        doc["input"]["window"] = {"length": normal.shape[-1], "stride": stride or normal.shape[-1]}
    if series is not None and series.get("clock"):
        doc["input"]["clock"] = series["clock"]
    if profile is not None:
        doc["input"]["profile"] = profile.to_dict()
    detector = Detector(model, Meta(doc), normaliser, device)
    if kind == "series" and detector.meta.value_channels > 1:
        doc["channel_scale"] = channel_scale(detector, cal_rows)
        detector = Detector(model, Meta(doc), normaliser, device)
    stage(
        progress,
        f"{name}: calibrating the threshold ({recipe.threshold}) on {len(cal_rows)} {unit}",
    )
    cal_scores = detector.score(cal_rows)
    threshold = calibrate(cal_scores, recipe.threshold)
    doc["threshold"] = {
        **threshold.to_dict(),
        "fitted_on": "held-out normal training windows" if held_out else "fitted normal windows",
    }
    if series is not None:
        fit_scores = detector.score(fit_rows)
        doc.update(_series_facts(doc["threshold"], series, cal_scores, fit_scores))
    metrics: dict[str, object] = {"threshold_method": threshold.spec}
    if test is not None and test.label is not None:
        stage(progress, f"{name}: evaluating on {len(test)} test {unit}")
        metrics.update(evaluate(detector.score(test.values), test.label, detector.threshold))
    doc["training"] = {
        **facts,
        "seed": seed,
        "recipe": {**asdict(recipe), "fit": asdict(recipe.fit)},
        "windows_fitted": len(fit_rows),
        "windows_calibration": len(cal_rows),
        "epochs_run": len(result.train_loss),
        "best_epoch": result.best_epoch,
        "fit_seconds": result.seconds,
        "device": result.device,
        "final_train_loss": result.train_loss[-1],
        "history": {
            "loss": model.loss_name(recipe.fit.loss),
            "unit": unit,
            "train": result.train_loss,
            "calibration": result.val_loss,
        },
    }
    doc["metrics"] = metrics
    _, sealed = artifact.seal(model, doc)
    return Detector(model, Meta(sealed), normaliser, device)
