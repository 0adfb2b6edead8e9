"""``aemon bench --scorer``: the daemon's scoring path alone (no Kafka), per model family, batch
size and number of torch threads.

Each cell times :meth:`aemon.daemon.scoring.Scorer.score` (scaling, the forward pass, scores,
flags and the contributors of flagged windows) on full batches of held-out normal ECG windows,
as the daemon calls it, for about ``seconds`` after one warm-up batch. The trained demo detector
is one row; the other families are built from the window presets at the same input shape with
untrained weights (the cost of a forward pass does not depend on the values of its weights), the
demo's scaling, and a threshold that flags as many of the windows as the trained one does (the
contributors of flagged windows cost time too: with every window flagged, 1.35x).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from aemon.core.detector import Detector
from aemon.core.families.registry import build
from aemon.daemon.scoring import Scorer
from aemon.training.presets import WINDOW_PRESETS

BATCHES = (1, 64, 256, 1024, 4096, 16384)


def family_detectors(trained: Detector, windows: np.ndarray) -> dict[str, Detector]:
    """The trained detector, and one detector per window preset family at its input shape,
    its threshold set where as many ``windows`` exceed it as exceed the trained one's (so that
    each flags, and finds the contributors of, as many windows)."""
    out = {f"{trained.meta.family} (trained)": trained}
    shape = list(trained.input_shape)
    flagged = float(np.mean(trained.score(windows) > trained.threshold))
    for name, recipe in WINDOW_PRESETS.items():
        model = build(recipe.family, {"input_shape": shape, **recipe.hparams}).eval()
        det = dataclasses.replace(trained, model=model.to(trained.device))
        det.threshold = float(np.quantile(det.score(windows), 1 - flagged))
        out[name] = det
    return out


def windows_per_second(det: Detector, windows: np.ndarray, batch: int, seconds: float) -> float:
    scorer = Scorer([det], batch, top_k=5)
    try:
        rows = np.resize(windows, (batch, *windows.shape[1:])).astype(np.float32)
        scorer.score(rows)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            scorer.score(rows)
            count += batch
        return count / (time.perf_counter() - start)
    finally:
        scorer.close()


def table(
    trained: Detector,
    windows: np.ndarray,
    threads: tuple[int, ...],
    batches: tuple[int, ...] = BATCHES,
    seconds: float = 0.5,
    step: Callable[[], None] | None = None,
) -> list[dict[str, object]]:
    """One row per family and thread count: windows/s at each batch size."""
    rows: list[dict[str, object]] = []
    before = torch.get_num_threads()
    try:
        for name, det in family_detectors(trained, windows).items():
            for n in threads:
                torch.set_num_threads(n)
                wps = {}
                for b in batches:
                    wps[str(b)] = round(windows_per_second(det, windows, b, seconds))
                    if step:
                        step()
                rows.append({"family": name, "threads": n, "windows_per_s": wps})
    finally:
        torch.set_num_threads(before)
    return rows
