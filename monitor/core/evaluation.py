"""Detection metrics at the calibrated threshold, with the anomaly as the positive class."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def evaluate(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, object]:
    """ROC-AUC, PR-AUC, precision, recall, F1, accuracy and the confusion matrix.

    ``labels`` are 1 for anomalies. ``tutorial`` repeats precision/recall with the *normal* class
    as positive, as the TensorFlow tutorial reports them.
    """
    y = np.asarray(labels).astype(int)
    pred = (np.asarray(scores) > threshold).astype(int)
    both = len(np.unique(y)) == 2
    tn, fp, fn, tp = metrics.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    zero = {"zero_division": 0}
    return {
        "n": len(y),
        "n_anomalies": int(y.sum()),
        "roc_auc": float(metrics.roc_auc_score(y, scores)) if both else None,
        "pr_auc": float(metrics.average_precision_score(y, scores)) if both else None,
        "accuracy": float(metrics.accuracy_score(y, pred)),
        "precision": float(metrics.precision_score(y, pred, **zero)),
        "recall": float(metrics.recall_score(y, pred, **zero)),
        "f1": float(metrics.f1_score(y, pred, **zero)),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "tutorial": {
            "accuracy": float(metrics.accuracy_score(1 - y, 1 - pred)),
            "precision": float(metrics.precision_score(1 - y, 1 - pred, **zero)),
            "recall": float(metrics.recall_score(1 - y, 1 - pred, **zero)),
        },
    }
