"""PNG plots of a training run, written into the artifact's ``report/`` directory."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn import metrics

from aemon.training.fit import FitResult


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curves(fit: FitResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(fit.train_loss, label="training")
    if fit.val_loss:
        ax.plot(fit.val_loss, label="validation")
        ax.axvline(fit.best_epoch, color="grey", ls=":", label=f"best epoch {fit.best_epoch}")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss", yscale="log")
    ax.legend()
    return _save(fig, path)


def error_histogram(
    scores: np.ndarray, labels: np.ndarray | None, threshold: float, path: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, np.quantile(scores, 0.995) * 1.1, 60)
    if labels is None:
        ax.hist(scores, bins=bins, alpha=0.7, label="windows")
    else:
        ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal")
        ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous")
    ax.axvline(threshold, color="red", ls="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="reconstruction error", ylabel="windows", title="Reconstruction error")
    ax.legend()
    return _save(fig, path)


def roc_pr(scores: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    a.plot(fpr, tpr, label=f"AUC {metrics.auc(fpr, tpr):.4f}")
    a.plot([0, 1], [0, 1], color="grey", ls=":")
    a.set(
        xlabel="false positive rate", ylabel="true positive rate", title="ROC (anomaly = positive)"
    )
    a.legend(loc="lower right")
    prec, rec, _ = metrics.precision_recall_curve(labels, scores)
    ap = metrics.average_precision_score(labels, scores)
    b.plot(rec, prec, label=f"AP {ap:.4f}")
    b.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    b.legend(loc="lower left")
    return _save(fig, path)


def reconstructions(
    values: np.ndarray, recon: np.ndarray, labels: np.ndarray | None, path: Path, n: int = 3
) -> Path:
    """Input and reconstruction with the error shaded, normal windows above anomalous ones."""
    groups = (
        [("normal", labels == 0), ("anomalous", labels == 1)]
        if labels is not None
        else [("window", np.ones(len(values), bool))]
    )
    groups = [(name, np.flatnonzero(mask)[:n]) for name, mask in groups if mask.any()]
    fig, axes = plt.subplots(len(groups), n, figsize=(4 * n, 3 * len(groups)), squeeze=False)
    for row, (name, idx) in enumerate(groups):
        for col in range(n):
            ax = axes[row][col]
            if col >= len(idx):
                ax.axis("off")
                continue
            x, r = values[idx[col]].ravel(), recon[idx[col]].ravel()
            t = np.arange(len(x))
            ax.plot(t, x, "b", label="input")
            ax.plot(t, r, "r", label="reconstruction")
            ax.fill_between(t, r, x, color="lightcoral", label="error")
            ax.set_title(f"{name} #{idx[col]}")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def _grid(rows: list[list[np.ndarray]], path: Path, row_titles: list[str] | None = None) -> Path:
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 1.1, n_rows * 1.2), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row):
                ax.imshow(row[j], cmap="gray", vmin=0, vmax=1)
        if row_titles:
            axes[i][0].set_title(row_titles[i], fontsize=8, loc="left")
    return _save(fig, path)


def image_pairs(images: np.ndarray, recon: np.ndarray, path: Path, n: int = 24) -> Path:
    """Original | reconstruction in alternating columns, six pairs a row."""
    pairs = [img for k in range(min(n, len(images))) for img in (images[k], recon[k])]
    return _grid([pairs[i : i + 12] for i in range(0, len(pairs), 12)], path)


def denoise_rows(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray, path: Path) -> Path:
    """Rows: noisy input, the model's output, the clean image."""
    k = min(10, len(clean))
    rows = [list(noisy[:k]), list(denoised[:k]), list(clean[:k])]
    return _grid(rows, path, ["noisy", "denoised", "clean"])


def image_grid(images: np.ndarray, path: Path) -> Path:
    """An 8 x 8 grid, e.g. samples drawn from a VAE's or AAE's prior."""
    return _grid([list(images[i : i + 8]) for i in range(0, min(64, len(images)), 8)], path)


def latent_scatter(z: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """A 2-D latent space, one colour per class."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    ax.legend(*points.legend_elements(), title="class", fontsize=7, loc="best")
    ax.set(xlabel="z1", ylabel="z2", title="Latent space of the test images")
    return _save(fig, path)


def per_class_auc(aucs: dict[int, float], normal: int, path: Path) -> Path:
    """ROC-AUC of the normal class against each other class on its own."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    classes = sorted(aucs)
    ax.bar([str(c) for c in classes], [aucs[c] for c in classes], color="tab:blue")
    ax.axhline(0.5, color="grey", ls=":")
    ax.set(
        ylim=(0, 1),
        xlabel="anomalous class",
        ylabel="ROC-AUC",
        title=f"Normal class {normal} against each other class",
    )
    return _save(fig, path)


def write_metrics(metrics_doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(metrics_doc, indent=2) + "\n")
    return path


def series_timeline(
    path: Path,
    title: str,
    ts: np.ndarray,
    values: np.ndarray,
    channels: list[str],
    windows: dict[str, np.ndarray],
    events: list[dict],
    incidents: list[tuple[float, float]],
) -> Path:
    """One stream on one time axis: its values (in the user's units) with detected events shaded
    and labelled incidents marked; below, each window's score and threshold (log scale)."""

    def when(t: object) -> np.ndarray:  # epoch seconds -> datetime64 for the time axis
        return (np.asarray(t, dtype=np.float64) * 1000).astype(np.int64).astype("datetime64[ms]")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, height_ratios=[3, 2])
    for j, name in enumerate(channels):
        top.plot(when(ts), values[:, j], lw=0.7, label=name)
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
    for k, e in enumerate(opened):
        end = ends.get(e["event_id"], {}).get("end_ts", e["end_ts"])
        for ax in (top, bottom):
            ax.axvspan(when(e["start_ts"]), when(max(end, e["start_ts"])), color="red", alpha=0.25)
            ax.axvline(
                when(e["start_ts"]),
                color="red",
                lw=1,
                label="event opened" if k == 0 and ax is top else None,
            )
    top.set(ylabel="value", title=title)
    top.legend(loc="upper left", fontsize=8)
    end_t = when(windows["end"])
    bottom.plot(end_t, windows["score"], lw=0.7, color="tab:blue", label="window score")
    bottom.plot(end_t, windows["threshold"], lw=1, color="black", ls="--", label="threshold")
    bottom.set(yscale="log", ylabel="reconstruction error", xlabel="time (UTC)")
    bottom.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)
