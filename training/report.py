"""PNG plots of a training run, written into the artifact's ``report/`` directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn import metrics

from aemon.core.detector import as_windows
from aemon.core.evaluation import evaluate
from aemon.core.wording import counted

if TYPE_CHECKING:
    from aemon.core.detector import Detector


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curves(history: dict, title: str, path: Path) -> Path:
    """Training and calibration-set loss per epoch (whole epochs from 1), the kept epoch marked."""
    train, cal = history["train"], history.get("calibration") or []
    loss = history.get("loss", "")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = np.arange(1, len(train) + 1)
    unit = history.get("unit", "windows")
    ax.plot(epochs, train, marker="." if len(train) < 30 else None, label=f"training {unit}")
    if cal:
        ax.plot(epochs[: len(cal)], cal, label="calibration set (held out of fitting)")
        best = int(np.argmin(cal)) + 1
        ax.axvline(best, color="grey", ls=":", label=f"kept: epoch {best} (lowest calibration)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="epoch",
        ylabel=f"{loss}\non normalised values",
        title=f"{title}: loss per epoch",
        yscale="log",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def error_histogram(
    scores: np.ndarray, labels: np.ndarray | None, threshold: float, title: str, path: Path
) -> Path:
    """Score densities of normal and anomalous windows over the full range (log axis when the
    scores span more than two decades), the threshold marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lo, hi = float(scores.min()), float(scores.max())
    log = lo > 0 and hi / lo > 100
    bins = np.geomspace(lo, hi, 70) if log else np.linspace(lo, hi if hi > lo else lo + 1, 70)
    groups = [("windows", np.ones(len(scores), bool), "tab:blue")]
    if labels is not None:
        groups = [("normal", labels == 0, "tab:blue"), ("anomalous", labels == 1, "tab:orange")]
    for name, pick, colour in groups:
        if pick.any():
            above = float(np.mean(scores[pick] > threshold))
            ax.hist(
                scores[pick],
                bins=bins,
                density=True,
                alpha=0.45,
                color=colour,
                label=f"{name} (n={int(pick.sum())}, {above:.1%} above)",
            )
    ax.axvline(threshold, color="red", ls="--", label=f"threshold {threshold:.4g}")
    ax.set(
        xlabel="reconstruction error (score)" + (", log scale" if log else ""),
        ylabel="density (each group sums to 1)",
        title=f"{title}: score distribution",
    )
    if log:
        ax.set_xscale("log")
    ax.legend(fontsize=8)
    return _save(fig, path)


def roc_pr(
    scores: np.ndarray, labels: np.ndarray, threshold: float, title: str, path: Path
) -> Path:
    """ROC and precision-recall curves with the operating point at the threshold and the PR
    baseline (the share of anomalies: a detector that guesses reaches it)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.3))
    pred = scores > threshold
    y = labels.astype(bool)
    tp = int((pred & y).sum())
    op_fpr, op_tpr = float(pred[~y].mean()), float(pred[y].mean())
    op_prec = tp / int(pred.sum()) if pred.any() else 1.0
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    a.plot(fpr, tpr, label=f"ROC, AUC {metrics.auc(fpr, tpr):.4f}")
    a.plot([0, 1], [0, 1], color="grey", ls=":", label="chance")
    a.plot(op_fpr, op_tpr, "o", color="red", label=f"threshold {threshold:.4g}")
    a.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC")
    a.legend(loc="lower right", fontsize=8)
    prec, rec, _ = metrics.precision_recall_curve(labels, scores)
    ap = metrics.average_precision_score(labels, scores)
    base = float(y.mean())
    b.plot(rec, prec, label=f"PR, AP {ap:.4f}")
    b.axhline(base, color="grey", ls=":", label=f"baseline: {base:.1%} anomalies")
    b.plot(
        op_tpr,
        op_prec,
        "o",
        color="red",
        label=f"threshold: precision {op_prec:.3f}, recall {op_tpr:.3f}",
    )
    b.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    b.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"{title} (anomaly = positive)")
    return _save(fig, path)


def _verdict(alert: bool, label: int | None, short: bool = False) -> str:
    """What the threshold decided, and whether the label agrees (``short``: for captions)."""
    if label is None:
        return ("ALERT" if alert else "ok") if short else ("alert" if alert else "no alert")
    long, brief = {
        (True, 1): ("alert: true positive", "ALERT"),
        (True, 0): ("alert: FALSE POSITIVE", "FALSE ALARM"),
        (False, 1): ("no alert: MISSED (false negative)", "MISSED"),
        (False, 0): ("no alert: true negative", "ok"),
    }[(alert, int(label))]
    return brief if short else long


def reconstructions(
    values: np.ndarray,
    recon: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    labels: np.ndarray | None,
    title: str,
    path: Path,
    rows: np.ndarray,
    n: int = 3,
    metrics: list[str] | None = None,
) -> Path:
    """Input and reconstruction in the input's units with the error shaded, normal windows above
    anomalous ones; each panel titled with its row (``rows``: in the data shown), score,
    threshold and verdict. Windows of several metrics (``[n, metrics, steps]``, given in their
    scaled units: metrics in other units would flatten each other) draw one line per metric."""
    several = values.ndim == 3 and values.shape[1] > 1
    groups = (
        [("normal", labels == 0), ("anomalous", labels == 1)]
        if labels is not None
        else [("window", np.ones(len(values), bool))]
    )
    groups = [(name, np.flatnonzero(mask)[:n]) for name, mask in groups if mask.any()]
    fig, axes = plt.subplots(
        len(groups), n, figsize=(4.3 * n, 3.2 * len(groups)), squeeze=False, sharey=True
    )
    for row, (name, idx) in enumerate(groups):
        for col in range(n):
            ax = axes[row][col]
            if col >= len(idx):
                ax.axis("off")
                continue
            i = idx[col]
            if several:
                t = np.arange(values.shape[2])
                for c in range(values.shape[1]):
                    x, r = values[i, c], recon[i, c]
                    (line,) = ax.plot(
                        t, x, lw=1, label=metrics[c] if metrics else f"metric {c + 1}"
                    )
                    ax.plot(t, r, "--", lw=1, color=line.get_color())
                    ax.fill_between(t, r, x, color="lightcoral", alpha=0.5)
            else:
                x, r = values[i].ravel(), recon[i].ravel()
                t = np.arange(len(x))
                ax.plot(t, x, "b", lw=1, label="input")
                ax.plot(t, r, "r", lw=1, label="reconstruction")
                ax.fill_between(t, r, x, color="lightcoral", label="error")
            label = None if labels is None else int(labels[i])
            sign = ">" if scores[i] > threshold else "<="
            ax.set_title(
                f"{name}, row {rows[i]}: score {scores[i]:.3g} {sign} {threshold:.3g}\n"
                f"{_verdict(bool(scores[i] > threshold), label)}",
                fontsize=9,
            )
            ax.set_xlabel("time step")
        axes[row][0].set_ylabel(
            "scaled (dashed: reconstruction)" if several else "value (input units)"
        )
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}: reconstructions")
    return _save(fig, path)


def _grid(
    rows: list[list[np.ndarray]],
    path: Path,
    title: str,
    row_titles: list[str] | None = None,
    captions: list[list[str]] | None = None,
) -> Path:
    """Grey images in a grid (pixels 0 black .. 1 white), a title above, optional row titles
    and a caption under each image."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    cell = 1.35 if captions else 1.15
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(max(n_cols * 1.15, 6), n_rows * cell + 0.6), squeeze=False
    )
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(row):
                ax.imshow(np.squeeze(row[j]), cmap="gray", vmin=0, vmax=1)
                if captions:
                    ax.set_xlabel(captions[i][j], fontsize=6.5)
        if row_titles:
            axes[i][0].set_ylabel(row_titles[i], fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def image_pairs(
    images: np.ndarray,
    recon: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    labels: np.ndarray | None,
    title: str,
    path: Path,
    n: int = 8,
) -> Path:
    """Rows: originals, their reconstructions; each captioned with its score and verdict
    (normal and anomalous images side by side when labelled)."""
    if labels is not None and len(np.unique(labels)) == 2:
        pick = np.r_[np.flatnonzero(labels == 0)[: n // 2], np.flatnonzero(labels == 1)[: n // 2]]
    else:
        pick = np.arange(min(n, len(images)))
    captions = []
    for i in pick:
        label = None if labels is None else int(labels[i])
        name = "" if label is None else ("anomalous\n" if label else "normal\n")
        verdict = _verdict(bool(scores[i] > threshold), label, short=True)
        captions.append(f"{name}{scores[i]:.3g} {verdict}")
    rows = [list(images[pick]), list(recon[pick])]
    return _grid(
        rows,
        path,
        f"{title}: reconstructions (score, threshold {threshold:.3g})",
        ["original", "reconstructed"],
        [[""] * len(pick), captions],
    )


def denoise_rows(
    noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray, title: str, path: Path
) -> Path:
    """Rows: noisy input, the model's output, the clean image."""
    k = min(10, len(clean))
    rows = [list(noisy[:k]), list(denoised[:k]), list(clean[:k])]
    return _grid(rows, path, f"{title}: denoising", ["noisy input", "model output", "clean"])


def image_grid(images: np.ndarray, title: str, path: Path) -> Path:
    """An 8 x 8 grid, e.g. samples drawn from a VAE's or AAE's prior."""
    rows = [list(images[i : i + 8]) for i in range(0, min(64, len(images)), 8)]
    return _grid(rows, path, title)


def latent_scatter(z: np.ndarray, labels: np.ndarray, title: str, path: Path) -> Path:
    """A 2-D latent space, one colour per class."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    ax.legend(*points.legend_elements(), title="class", fontsize=7, loc="best")
    ax.set(xlabel="latent z1", ylabel="latent z2", title=f"{title}: latent space of test images")
    return _save(fig, path)


def per_class_auc(aucs: dict[int, float], normal: int, title: str, path: Path) -> Path:
    """ROC-AUC of the normal class against each other class on its own."""
    fig, ax = plt.subplots(figsize=(7, 4))
    classes = sorted(aucs)
    ax.bar([str(c) for c in classes], [aucs[c] for c in classes], color="tab:blue")
    ax.axhline(0.5, color="grey", ls=":", label="chance")
    for k, c in enumerate(classes):
        ax.text(k, aucs[c] + 0.01, f"{aucs[c]:.2f}", ha="center", fontsize=7)
    ax.set(
        ylim=(0, 1.08),
        xlabel="anomalous class (test split)",
        ylabel="ROC-AUC against the normal class",
        title=f"{title}:\nnormal class {normal} against each other class",
    )
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def write_metrics(metrics_doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(metrics_doc, indent=2, default=plain) + "\n")
    return path


def plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def describe(det: Detector, split: str) -> str:
    """A figure's title: the model's name and family, and the data split shown."""
    return f"{det.name} ({det.meta.family} AE), {split}"


def run_report(
    det: Detector,
    out: Path,
    values: np.ndarray | None,
    labels: np.ndarray | None,
    split: str = "given windows",
) -> list[Path]:
    """The pictures of one detector: loss curves; with ``values``, reconstructions (image grids
    for images); with ``labels`` too, the score histogram and ROC/PR. And ``metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    title = describe(det, split)
    paths = []
    history = det.meta.training.get("history")
    if history and history.get("train"):
        paths.append(loss_curves(history, describe(det, "fit"), out / "loss.png"))
    doc = det.summary()
    if values is not None and len(values):
        scores = det.score(values)
        if labels is not None:
            doc["evaluated_on"] = split
            doc.update(evaluate(scores, labels, det.threshold))
            paths.append(error_histogram(scores, labels, det.threshold, title, out / "errors.png"))
            if len(np.unique(labels)) == 2:
                paths.append(roc_pr(scores, labels, det.threshold, title, out / "roc_pr.png"))
        paths.append(_reconstruction_picture(det, values, scores, labels, title, out))
    paths.append(write_metrics(doc, out / "metrics.json"))
    return paths


def _reconstruction_picture(
    det: Detector,
    values: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None,
    title: str,
    out: Path,
) -> Path:
    if labels is not None and len(np.unique(labels)) == 2:  # the first of each class
        rows = np.r_[np.flatnonzero(labels == 0)[:8], np.flatnonzero(labels == 1)[:8]]
    else:
        rows = np.arange(min(16, len(values)))
    x = as_windows(values[rows], det.input_shape)
    recon = det.reconstruct(x)
    y = None if labels is None else labels[rows]
    path = out / "reconstructions.png"
    if det.meta.kind == "image":
        return image_pairs(x, recon, scores[rows], det.threshold, y, title, path)
    metrics = None
    if x.ndim == 3 and x.shape[1] > 1:  # several metrics: each in its own scaled units
        x, recon = det.normaliser(x), det.normaliser(recon)
        named = det.meta.training.get("metrics")
        metrics = named if isinstance(named, list) and len(named) == x.shape[1] else None
    return reconstructions(x, recon, scores[rows], det.threshold, y, title, path, rows, 3, metrics)


def symlog_range(values: np.ndarray) -> float | None:
    """The linear range of a symlog value axis (the 5-95% range) when one spike would flatten
    the rest on a linear one (it lies more than 20 such ranges from the median), else None."""
    if not len(values):
        return None
    spread = float(np.quantile(values, 0.95) - np.quantile(values, 0.05))
    reach = float(np.abs(values - np.median(values)).max())
    return spread if spread > 0 and reach > 20 * spread else None


def events_title(stream: str, opened: int, version: str) -> str:
    return f"{stream}: {counted(opened, 'event')} (model version {version})"


def series_timeline(
    path: Path,
    title: str,
    ts: np.ndarray,
    values: np.ndarray,
    channels: list[str],
    windows: dict[str, np.ndarray],
    events: list[dict],
    incidents: list[tuple[float, float]],
    usual: np.ndarray | None = None,
) -> Path:
    """One stream on one time axis: its values with detected events shaded and labelled
    incidents marked; below, each window's score and threshold (log scale). One channel is drawn
    in its units, with ``usual`` (its profile's level at each sample's hour of the day or week,
    when the model has one) beside it; up to 8 each on its own robust scale (median 0, 5-95%
    range 1), so metrics far apart in scale are all visible; more as a heat map of those scaled
    values, one row each."""

    def when(t: object) -> np.ndarray:  # epoch seconds -> datetime64 for the time axis
        return (np.asarray(t, dtype=np.float64) * 1000).astype(np.int64).astype("datetime64[ms]")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, height_ratios=[3, 2])
    if len(channels) == 1:
        v = values[:, 0]
        top.plot(when(ts), v, lw=0.7, label=channels[0])
        if usual is not None:
            top.plot(when(ts), usual[:, 0], lw=0.8, color="grey", label="usual at this hour")
        top.set(ylabel="value")
        linear_within = symlog_range(v)
        if linear_within is not None:
            top.set_yscale("symlog", linthresh=linear_within)
            top.set(ylabel="value (symlog)")
    else:
        med = np.median(values, axis=0)
        spread = np.quantile(values, 0.95, axis=0) - np.quantile(values, 0.05, axis=0)
        scaled = (values - med) / np.where(spread > 0, spread, 1.0)
        if len(channels) <= 8:
            for j, name in enumerate(channels):
                top.plot(when(ts), scaled[:, j], lw=0.7, label=name)
            top.set(ylabel="scaled (5-95% = 1)")
        else:
            t0, t1 = mdates.date2num(when(ts[[0, -1]]))
            top.imshow(
                np.clip(scaled.T, -3, 3),
                aspect="auto",
                cmap="coolwarm",
                vmin=-3,
                vmax=3,
                interpolation="nearest",
                extent=(t0, t1, len(channels) - 0.5, -0.5),
            )
            step = max(1, len(channels) // 20)
            top.set_yticks(range(0, len(channels), step), channels[::step], fontsize=6)
            top.set(ylabel=f"{len(channels)} metrics, scaled")
    for k, (a, b) in enumerate(incidents):
        top.axvspan(
            when(a),
            when(b),
            color="gold",
            alpha=0.35,
            label="labelled incident" if k == 0 else None,
        )
    opened = [e for e in events if e["state"] == "open"]
    ends = {e["event_id"]: e for e in events if e["state"] == "resolved"}
    least = 0.004 * float(ts[-1] - ts[0]) if len(ts) > 1 else 0.0  # a short event stays visible
    for k, e in enumerate(opened):
        end = ends.get(e["event_id"], {}).get("end_ts", e["end_ts"])
        span = (when(e["start_ts"]), when(max(end, e["start_ts"] + least)))
        for ax in (top, bottom):
            ax.axvspan(*span, color="red", alpha=0.25)
            ax.axvline(
                when(e["start_ts"]),
                color="red",
                lw=1,
                label="event opened" if k == 0 and ax is top else None,
            )
    top.set(title=title)
    top.legend(loc="upper left", fontsize=8, ncols=min(4, len(channels) + 3))
    end_t = when(windows["end"])
    bottom.plot(end_t, windows["score"], lw=0.7, color="tab:blue", label="window score")
    bottom.plot(end_t, windows["threshold"], lw=1, color="black", ls="--", label="threshold")
    bottom.set(yscale="log", ylabel="score (log)", xlabel="time (UTC)")
    bottom.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)
