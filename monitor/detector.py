"""The API's :class:`Detector`: the core detector, plus its report (plots from training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aemon.core import detector as core
from aemon.core.errors import DataError


class Detector(core.Detector):
    """Score, predict, evaluate, save (the core's), and report."""

    @classmethod
    def of(cls, det: core.Detector) -> Detector:
        return cls(det.model, det.meta, det.normaliser, det.device, det.amp)

    def report(self, path: str | Path, values: Any = None, labels: Any = None) -> list[Path]:
        """Pictures (and ``metrics.json``) into ``path``: the loss curves; with ``values``,
        reconstructions; with ``labels`` too, the score histogram and ROC/PR curves."""
        from aemon.training.report import run_report

        x = None if values is None else core.as_windows(values, self.input_shape)
        if labels is not None and x is None:
            raise DataError("labels need the values they label")
        y = None if labels is None else core.labels_of(labels, len(x))
        return run_report(self, Path(path), x, y)
