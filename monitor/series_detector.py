"""The detectors of a set of telemetry streams, routed by stream id: what ``aemon train series``
writes (a models directory) and :func:`aemon.fit_series` returns."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aemon.core.catalog import ANY, catalog
from aemon.core.detector import Detector
from aemon.core.table import TIME_COLUMNS
from aemon.training.datasets.samples import Samples, read_samples, samples_of
from aemon.training.series import stream_dir
from aemon.training.timeline import Timeline, draw, score_samples


def as_samples(samples: Any) -> Samples:
    """A sample CSV's path, a DataFrame with a sample CSV's columns, or :class:`Samples` as they
    are; a time index (a ``DatetimeIndex``, or an index named like a time column) serves as the
    time column, and a Series is one value column."""
    if isinstance(samples, Samples):
        return samples
    if isinstance(samples, str | Path):
        return read_samples(samples)
    if isinstance(samples, pd.Series):
        samples = samples.to_frame(name=samples.name if samples.name is not None else "value")
    frame = pd.DataFrame(samples)
    timed = isinstance(frame.index, pd.DatetimeIndex) or frame.index.name in TIME_COLUMNS
    if timed and not any(c in frame.columns for c in TIME_COLUMNS):
        frame = frame.rename_axis(frame.index.name or "timestamp").reset_index()
    return samples_of(frame)


class SeriesDetector:
    """One detector per stream (or one for every stream: key ``""``), each with its own scaling,
    threshold and event rule; scores and events exactly as the daemon decides them."""

    def __init__(self, detectors: Mapping[str, Detector]) -> None:
        self.detectors = dict(detectors)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> SeriesDetector:
        """A models directory (or one artifact); artifacts shared by streams are loaded once."""
        loaded: dict[Path, Detector] = {}
        found = {}
        for stream, where in catalog(path).items():
            found[stream] = loaded.get(where) or loaded.setdefault(
                where, Detector.load(where, device=device)
            )
        return cls(found)

    def __repr__(self) -> str:
        shown = ", ".join(self.streams[:5]) + (", ..." if len(self.streams) > 5 else "")
        extra = " and a model for every other stream" if ANY in self.detectors else ""
        n = len(self.streams)
        return f"SeriesDetector({n} stream{'s' if n != 1 else ''}: {shown}{extra})"

    @property
    def streams(self) -> list[str]:
        """The streams with a model of their own (a catch-all model serves the others)."""
        return [s for s in self.detectors if s != ANY]

    def detector_for(self, stream: str) -> Detector | None:
        return self.detectors.get(stream, self.detectors.get(ANY))

    def timeline(self, samples: Any) -> Timeline:
        """Every window of every stream scored and decided, and the events they formed."""
        return score_samples(as_samples(samples), self.detector_for)

    def score(self, samples: Any) -> pd.DataFrame:
        """One row per window: stream, seq, start, end (UTC), score, threshold, is_anomaly."""
        t = self.timeline(samples)
        return pd.DataFrame(
            {
                "stream": t.stream,
                "seq": np.asarray(t.seq, dtype=np.int64),
                "start": pd.to_datetime(np.asarray(t.start), unit="s", utc=True),
                "end": pd.to_datetime(np.asarray(t.end), unit="s", utc=True),
                "score": np.asarray(t.score, dtype=np.float64),
                "threshold": np.asarray(t.threshold, dtype=np.float64),
                "is_anomaly": np.asarray(t.above, dtype=np.int8),
            }
        )

    def events(self, samples: Any) -> list[dict]:
        """The open and resolved events, as the daemon publishes them on the alerts topic."""
        return self.timeline(samples).events

    def save(self, path: str | Path) -> Path:
        """Each stream's artifact into ``path/<stream>/`` (the models directory ``aemon serve``
        and ``aemon score`` take); a model shared by several streams is written for each."""
        out = Path(path)
        for stream, det in self.detectors.items():
            det.save(out / stream_dir(stream))
        return out

    def report(self, path: str | Path, samples: Any) -> list[Path]:
        """A timeline picture per stream: values in their units, events and labelled incidents
        (a ``label`` column), scores against the threshold."""
        s = as_samples(samples)
        return draw(s, score_samples(s, self.detector_for), Path(path))
