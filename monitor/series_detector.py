"""The detectors of a set of telemetry streams, routed by stream id: what ``aemon train series``
writes (a models directory) and :func:`aemon.fit_series` returns."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aemon.core.cadence import trained_step
from aemon.core.catalog import ANY, catalog
from aemon.core.detector import Detector
from aemon.core.errors import ConfigError, DataError
from aemon.core.rates import check_rate, value_exceeded_with
from aemon.core.table import TIME_COLUMNS
from aemon.core.wording import counted
from aemon.training.datasets.samples import Samples, read_samples, samples_of
from aemon.training.incidents import pointwise
from aemon.training.series import stream_dir
from aemon.training.timeline import (
    Timeline,
    draw,
    evaluate_events,
    flagged_rows,
    row_scores,
    score_samples,
)


def as_samples(samples: Any, missing: str = "refuse") -> Samples:
    """A sample CSV's path, a DataFrame with a sample CSV's columns, or :class:`Samples` as they
    are; a time index (a ``DatetimeIndex``, or an index named like a time column) serves as the
    time column, and a Series is one value column. ``missing``: what a row with a missing value
    gets (:func:`~aemon.training.datasets.samples.samples_of`)."""
    if isinstance(samples, Samples):
        return samples
    if isinstance(samples, str | Path):
        return read_samples(samples, missing)
    if isinstance(samples, pd.Series):
        if (
            not isinstance(samples.index, pd.DatetimeIndex)
            and samples.index.name not in TIME_COLUMNS
        ):
            raise DataError("samples: a Series needs its times as its index (a DatetimeIndex)")
        samples = samples.to_frame(name=samples.name if samples.name is not None else "value")
    bare = isinstance(samples, list) and bool(samples) and isinstance(samples[0], int | float)
    if isinstance(samples, np.ndarray) or bare:  # records (a list of dicts) have their times
        raise DataError(
            "samples: an array has no times; give a DataFrame with a time column, a Series with "
            "a DatetimeIndex, or a sample CSV's path"
        )
    frame = pd.DataFrame(samples)
    timed = isinstance(frame.index, pd.DatetimeIndex) or frame.index.name in TIME_COLUMNS
    if timed and not any(c in frame.columns for c in TIME_COLUMNS):
        named = frame.index.name if frame.index.name in TIME_COLUMNS else "timestamp"
        frame = frame.rename_axis(named).reset_index()  # a DatetimeIndex called "Date" too
    return samples_of(frame, missing=missing)


PER_STREAM = (
    "a SeriesDetector has a threshold per stream: read thresholds, or use "
    "set_threshold(stream, value) or set_false_alarms_per_day(rate)"
)


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
        n = len(self.streams)
        if not n:
            return "SeriesDetector(one model for any stream)"
        shown = ", ".join(self.streams[:5]) + (", ..." if n > 5 else "")
        extra = " and a model for every other stream" if ANY in self.detectors else ""
        return f"SeriesDetector({counted(n, 'stream')}: {shown}{extra})"

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
        """One row per window: stream, seq, start, end (UTC), score, threshold, is_anomaly and
        ``p``, the window's tail probability against its stream's recent scores (NaN without a
        score history): one cut-off on ``p`` flags the same share of normal windows on every
        stream."""
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
                "p": t.p_values(),
            }
        )

    def events(self, samples: Any) -> list[dict]:
        """The open and resolved events, as the daemon publishes them on the alerts topic."""
        return self.timeline(samples).events

    @property
    def threshold(self) -> float:
        """Not one number: each stream has its own (:attr:`thresholds`)."""
        raise AttributeError(PER_STREAM)

    @threshold.setter
    def threshold(self, value: float) -> None:
        raise ConfigError(PER_STREAM)

    @property
    def thresholds(self) -> dict[str, float]:
        """Each stream's calibrated threshold (the adaptive threshold may rise above it)."""
        return {stream: det.threshold for stream, det in self.detectors.items()}

    def set_threshold(self, stream: str, value: float) -> None:
        """Decide ``stream`` at ``value`` (a new model version for it; save to keep it)."""
        if stream not in self.detectors:
            raise ConfigError(f"no model for stream {stream!r}")
        self.detectors[stream].threshold = value

    def set_false_alarms_per_day(self, rate: float) -> None:
        """Set every stream's threshold where its calibration scores expect ``rate`` windows a
        day above it (the adaptive threshold and the event rule then decide as before)."""
        check_rate(rate, "false alarms per day")
        for stream, det in self.detectors.items():
            thr = det.meta.doc["threshold"]
            if "log_median" not in thr or "windows_per_day" not in thr:
                raise ConfigError(f"the model of {stream!r} records no rate (retrain it)")
            det.threshold = value_exceeded_with(thr, min(rate / thr["windows_per_day"], 0.5))

    def predict(self, samples: Any) -> np.ndarray:
        """Per row of ``samples`` (int8): 1 from each event's opening window to its last window
        above the threshold, else 0; the rows ``aemon skab`` and ``aemon asd`` flag."""
        s = as_samples(samples)
        t = score_samples(s, self.detector_for)
        return flagged_rows(t, t.events, len(s))

    def evaluate(self, samples: Any) -> dict[str, dict[str, object]]:
        """Against the ``label`` column (1 = anomalous sample): ``events`` (incidents detected,
        event precision, recall, F1, delay, false alarms per day, NAB score, as ``aemon
        evaluate`` prints) and ``pointwise`` (precision, recall, F1, FAR, MAR, PR-AUC of the
        scores, per sample, pooled over streams)."""
        s = as_samples(samples)
        if s.label is None:
            raise DataError("evaluate needs a label column (1 = anomalous sample)")
        t = score_samples(s, self.detector_for)
        flags, scores = flagged_rows(t, t.events, len(s)), row_scores(t, len(s))
        per_stream = [s.rows_of(name) for name in t.models]
        return {
            "events": evaluate_events(s, t),
            "pointwise": pointwise(
                [(s.ts[r], s.label[r], flags[r], scores[r]) for r in per_stream]
            ),
        }

    def summary(self) -> pd.DataFrame:
        """One row per stream: its model version, threshold, the false alarms a day its
        calibration expects, its calibration windows left out as an incident inside the
        history, the seconds between the samples it was trained on (what it expects
        of its stream: see :mod:`aemon.core.cadence`), what its clock channels hold
        (``time_of_day``, ``blank`` or None), its metrics, the autoencoders its score averages,
        the windows between its learning updates (None: it does not learn), windows fitted and
        calibrating, seconds of fitting, and when it was written."""
        rows = []
        for stream, det in self.detectors.items():
            meta, training = det.meta, det.meta.training
            rows.append(
                {
                    "stream": stream or "(every other stream)",
                    "model_version": det.version,
                    "threshold": det.threshold,
                    "expected_false_alarms_per_day": meta.doc["threshold"].get(
                        "expected_false_alarms_per_day"
                    ),
                    "history_incident_windows": meta.doc["threshold"].get(
                        "history_incident_windows"
                    ),
                    "sample_step_seconds": trained_step(meta),
                    "clock": meta.clock,
                    "metrics": meta.metric_names,
                    "members": meta.members,
                    "learns_every": None if det.learning is None else det.learning.every,
                    "windows_fitted": training.get("windows_fitted"),
                    "windows_calibration": training.get("windows_calibration"),
                    "fit_seconds": training.get("fit_seconds"),
                    "created_at": meta.doc.get("created_at"),
                }
            )
        return pd.DataFrame(rows).set_index("stream")

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
