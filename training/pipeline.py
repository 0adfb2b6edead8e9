"""One training run: split normals, normalise, fit, calibrate, evaluate, report, write artifact."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from training import artifact, noise, report
from training.calibration import calibrate
from training.datasets.table import WindowTable
from training.detector import Detector
from training.evaluate import evaluate
from training.fit import fit
from training.models import build
from training.normalise import Normaliser
from training.presets import Recipe


def _split_normals(normal: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if fraction <= 0:
        return normal, normal
    perm = np.random.default_rng(seed).permutation(len(normal))
    n_cal = max(2, round(len(normal) * fraction))
    return normal[perm[n_cal:]], normal[perm[:n_cal]]


def train_detector(
    *,
    name: str,
    train: WindowTable,
    test: WindowTable | None,
    recipe: Recipe,
    out: Path,
    device: torch.device,
    facts: dict[str, object],
    progress: bool = True,
    stride: int | None = None,
    kind: str = "window",
) -> dict[str, object]:
    """Train on the normal rows of ``train``; evaluate on ``test`` when it has labels.

    ``stride`` is recorded for the monitor, which windows sample streams with it (default: the
    window length, i.e. back-to-back windows). ``kind="image"``: pixels in [0, 1], so denoising
    noise is clipped to that range and the report shows image grids.

    Returns the summary the CLI prints (metrics, threshold, timing, artifact path).
    """
    seed = recipe.fit.seed
    normal = train.values if train.label is None else train.values[train.label == 0]
    if len(normal) < 4:
        raise ValueError(f"only {len(normal)} normal training windows; need at least 4")
    fit_rows, cal_rows = _split_normals(normal, recipe.calibration_fraction, seed)
    normaliser = Normaliser.fit(recipe.normaliser, train.values)
    torch.manual_seed(seed)
    model = build(recipe.family, {"input_shape": list(normal.shape[1:]), **recipe.hparams})
    held_out = recipe.calibration_fraction > 0
    result = fit(
        model,
        normaliser(fit_rows),
        normaliser(cal_rows) if held_out else None,
        recipe.fit,
        device,
        corrupt=noise.parse(recipe.denoise, clip=(0.0, 1.0) if kind == "image" else None)
        if recipe.denoise
        else None,
        progress=progress,
    )
    meta: dict[str, object] = {
        "name": name,
        "family": recipe.family,
        "input": {"kind": kind, "shape": list(normal.shape[1:])},
        "normaliser": normaliser.to_dict(),
        "score": recipe.score,
    }
    if kind == "window":
        meta["input"]["window"] = {"length": normal.shape[-1], "stride": stride or normal.shape[-1]}
    detector = Detector(model, meta, normaliser, device)
    threshold = calibrate(detector.score(cal_rows), recipe.threshold)
    meta["threshold"] = {
        **threshold.to_dict(),
        "fitted_on": "held-out normal training windows" if held_out else "fitted normal windows",
    }
    summary: dict[str, object] = {
        "threshold": threshold.value,
        "threshold_method": threshold.spec,
        "fit_seconds": round(result.seconds, 3),
    }
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    report.loss_curves(result, report_dir / "loss.png")
    if test is not None and test.label is not None:
        scores = detector.score(test.values)
        summary.update(evaluate(scores, test.label, threshold.value))
        report.error_histogram(scores, test.label, threshold.value, report_dir / "errors.png")
        if len(np.unique(test.label)) == 2:
            report.roc_pr(scores, test.label, report_dir / "roc_pr.png")
    if test is not None:
        x = normaliser(test.values[:256])
        with torch.inference_mode():
            recon = model(torch.from_numpy(x).to(device)).cpu().numpy()
        if kind == "image":
            report.image_pairs(x, recon, report_dir / "reconstructions.png")
        else:
            report.reconstructions(x, recon, test.label, report_dir / "reconstructions.png")
    meta["training"] = {
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
    }
    meta["metrics"] = {k: v for k, v in summary.items() if k not in ("threshold", "fit_seconds")}
    artifact.save(out, model, meta)
    report.write_metrics(summary, report_dir / "metrics.json")
    summary["artifact"] = str(out)
    summary["model_version"] = artifact.read_meta(out)["model_version"]
    return summary
