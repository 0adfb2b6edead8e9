"""aemon: autoencoder anomaly detection for windows, images and telemetry streams.

    import aemon

    det = aemon.fit(windows)            # numpy [n, length] or a DataFrame; nothing is written
    det.score(new)                      # one reconstruction error per window
    det.predict(new)                    # 1 where the score is above the calibrated threshold
    det.save("artifacts/pump")          # the artifact `aemon serve` and `aemon.load` read

    series = aemon.fit_series(frame)    # telemetry: one detector per stream, time-ordered
    series.events(later)                # open/resolved events, as the daemon publishes them

Names are imported when first used, so ``import aemon`` (and ``aemon --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aemon.core.version import __version__

# name -> the module that defines it
_EXPORTS = {
    "AemonError": "aemon.core.errors",
    "ArtifactError": "aemon.core.errors",
    "ConfigError": "aemon.core.errors",
    "DataError": "aemon.core.errors",
    "Detector": "aemon.detector",
    "SeriesDetector": "aemon.series_detector",
    "Settings": "aemon.daemon.config",
    "StageFailed": "aemon.daemon.supervisor",
    "fit": "aemon.api",
    "fit_series": "aemon.api",
    "load": "aemon.api",
    "read_prometheus": "aemon.api",
    "serve": "aemon.api",
}

__all__ = [
    "AemonError",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "Detector",
    "SeriesDetector",
    "Settings",
    "StageFailed",
    "__version__",
    "fit",
    "fit_series",
    "load",
    "read_prometheus",
    "serve",
]

if TYPE_CHECKING:
    from aemon.api import fit, fit_series, load, read_prometheus, serve
    from aemon.core.errors import AemonError, ArtifactError, ConfigError, DataError
    from aemon.daemon.config import Settings
    from aemon.daemon.supervisor import StageFailed
    from aemon.detector import Detector
    from aemon.series_detector import SeriesDetector


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aemon' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
