"""A detector ready to score: normalise, reconstruct, reduce to one score per window; predict,
evaluate and save. Fitted in memory (:func:`aemon.fit`) or loaded from an artifact; the API's
:class:`aemon.Detector` adds the report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aemon.core import artifact
from aemon.core.artifact import Meta, load_model, threshold_value
from aemon.core.device import autocast, pick_device
from aemon.core.errors import ArtifactError, DataError
from aemon.core.evaluation import evaluate
from aemon.core.families.base import Autoencoder
from aemon.core.normalise import Normaliser
from aemon.core.profile import with_distances
from aemon.core.table import F32_MAX, ID_COLUMNS, TIME_COLUMNS, metrics_of, refuse_labels


def _value_columns(frame: Any) -> list:
    """A DataFrame's value columns: all but the id columns of a window CSV and time columns (by
    name, or holding dates)."""
    from pandas.api.types import is_datetime64_any_dtype

    ids = (*ID_COLUMNS, *TIME_COLUMNS)
    return [c for c in frame.columns if c not in ids and not is_datetime64_any_dtype(frame[c])]


def frame_values(frame: Any) -> np.ndarray:
    """A DataFrame's value columns, as an array."""
    keep = _value_columns(frame)
    for c in keep:
        refuse_labels("X", c, frame[c].to_numpy())
    return frame[keep].to_numpy()


def frame_metrics(frame: Any) -> tuple[str, ...] | None:
    """The metrics of a DataFrame whose value columns are named ``METRIC@T`` (a window CSV of
    several metrics, as ``aemon windows`` writes it), else None."""
    return metrics_of([str(c) for c in _value_columns(frame)])


def as_windows(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` (array, nested lists or a DataFrame whose non-id columns are the values) as
    float32 ``[n, *shape]``; refuses NaN, infinities and values beyond float32, as the daemon
    does."""
    if hasattr(values, "columns") and hasattr(values, "to_numpy"):  # a pandas DataFrame
        values = frame_values(values)
    try:
        x = np.asarray(values)
        if x.dtype != np.float32:
            x = x.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"values must be numbers ({exc})") from None
    size = int(np.prod(shape))
    if x.ndim == 1 and x.size == size:
        x = x[None]
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != size:
        raise DataError(
            f"expected windows of shape {list(shape)} ({size} values each), got an array of "
            f"shape {list(x.shape)}"
        )
    bad = ~np.isfinite(x) | (np.abs(x) > F32_MAX)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"window {row} holds NaN, an infinity or a value beyond float32")
    return x.reshape(len(x), *shape).astype(np.float32)


@dataclass(repr=False)
class Detector:
    model: Autoencoder
    meta: Meta
    normaliser: Normaliser
    device: torch.device
    amp: bool = False

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", amp: bool = False) -> Detector:
        """Load and verify an artifact; ``amp`` enables autocast when scoring on CUDA."""
        model, meta = load_model(path)
        normaliser = Normaliser.from_dict(meta.normaliser)
        if normaliser.channels not in (None, meta.model_channels):
            raise ArtifactError(
                f"{path}: the normaliser has {normaliser.channels} channels, the model's input "
                f"{meta.model_channels}"
            )
        dev = pick_device(device)
        return cls(model.to(dev), meta, normaliser, dev, amp)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.meta.shape

    @property
    def model_shape(self) -> tuple[int, ...]:
        """What the model takes: the input's shape, with a daily profile's channels added."""
        shape = self.input_shape
        return shape if self._profile is None else (self.meta.model_channels, *shape[1:])

    def inputs(self, values: np.ndarray) -> np.ndarray:
        """Raw float32 windows ``[n, *input_shape]`` as the model takes them: with a daily
        profile, each value's distance from it beside the values; then normalised."""
        return self.normaliser(with_distances(self._profile, values))

    def reconstruct(self, values: np.ndarray) -> np.ndarray:
        """The model's reconstruction of raw windows, in their units and shape (the distances
        from a daily profile, which the model also rebuilds, left out)."""
        features = with_distances(self._profile, values)
        z = self.normaliser(features)
        with torch.inference_mode():
            r = self.model(torch.from_numpy(z).to(self.device)).float().cpu().numpy()
        recon = self.normaliser.inverse(r, features)
        if self._profile is None:
            return recon
        m = self.meta.value_channels
        return np.concatenate([recon[:, :m], recon[:, 2 * m :]], axis=1)

    def learned(self, model: Autoencoder) -> Detector:
        """This detector with ``model`` (its weights updated on a stream) in place of its own:
        same normaliser, profile, threshold and version (:mod:`aemon.core.learning`)."""
        return Detector(model, self.meta, self.normaliser, self.device, self.amp)

    @property
    def threshold(self) -> float:
        """The score above which a window is anomalous: calibrated at fit, or set here
        (``det.threshold = 0.05``; the artifact keeps the calibrated value beside it, and the
        version changes with what is decided)."""
        return self.meta.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.meta = self.meta.with_threshold(value)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.model_version

    def __post_init__(self) -> None:
        self._profile = self.meta.profile
        self.learning = self.meta.learning  # how it keeps learning on a stream (None: never)
        scale = self.meta.channel_scale
        self._per_channel = (
            None
            if scale is None
            else torch.tensor(scale, dtype=torch.float32, device=self.device).reshape(1, -1, 1)
        )

    def errors_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Per-element error of a normalised batch already on the device (float32), of the
        value channels only (a clock's channels are input, not scored; with a daily profile, each
        value's error is the mean of its own and its distance's); for a several-metric model
        with a ``channel_scale``, in units of each channel's normal error. On the CPU, in passes of
        at most the family's ``cpu_rows`` windows (a GPU takes the batch whole)."""
        with torch.inference_mode(), autocast(self.device, self.amp):
            rows = self.model.cpu_rows
            if self.device.type == "cpu" and len(x) > rows:
                return torch.cat([self.errors_tensor(part) for part in x.split(rows)])
            err = self.model.errors(x, self.meta.score).float()
            if self.meta.clock:
                m = self.meta.value_channels
                err = err[:, :m] if self._profile is None else (err[:, :m] + err[:, m : 2 * m]) / 2
            return err if self._per_channel is None else err / self._per_channel

    def score_tensor(
        self, x: torch.Tensor, threshold: float | None = None, top_k: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score a normalised batch on the device: the one scoring path, offline and online.

        Returns the scores; with a ``threshold``, also the positions of the windows above it and,
        for those windows only, the ``top_k`` flattened positions that contribute most.
        """
        err = self.errors_tensor(x).flatten(1)
        scores = err.mean(1).cpu().numpy()
        if threshold is None:
            return scores, np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.int64)
        flagged = np.flatnonzero(scores > threshold)
        if top_k and flagged.size:
            rows = torch.from_numpy(flagged).to(err.device)
            top = err[rows].topk(min(top_k, err.shape[1]), dim=1).indices.cpu().numpy()
        else:
            top = np.empty((flagged.size, 0), dtype=np.int64)
        return scores, flagged, top

    def score_channels(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Scores of a normalised batch of several-channel windows ``[n, channels, length]`` on
        the device, as :meth:`score_tensor` computes them, and each window's mean error per
        value channel ``[n, value_channels]`` (what each metric contributed)."""
        err = self.errors_tensor(x)
        scores = err.flatten(1).mean(1).cpu().numpy()
        return scores, err.flatten(2).mean(2).cpu().numpy()

    def _batches(self, values: Any, batch: int) -> tuple[int, Iterator[tuple[slice, torch.Tensor]]]:
        """How many windows ``values`` hold, and them scaled, in batches on the device, each
        with the rows it covers."""
        x = self.inputs(as_windows(values, self.input_shape))
        on_device = (
            (slice(i, i + batch), torch.from_numpy(x[i : i + batch]).to(self.device))
            for i in range(0, len(x), batch)
        )
        return len(x), on_device

    def score_series(self, values: Any, batch: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of raw windows as :meth:`score`, and for several channels each window's mean
        error per value channel (None for one): the offline side of the daemon's series path."""
        if self.meta.value_channels == 1:
            return self.score(values, batch), None
        n, batches = self._batches(values, batch)
        scores = np.empty(n, dtype=np.float32)
        per = np.empty((n, self.meta.value_channels), dtype=np.float32)
        for rows, x in batches:
            scores[rows], per[rows] = self.score_channels(x)
        return scores, per

    def score(self, values: Any, batch: int = 4096) -> np.ndarray:
        """One score per window of raw ``values`` ``[n, *input_shape]`` (or a DataFrame of
        windows, one per row), as float32; higher is more anomalous."""
        n, batches = self._batches(values, batch)
        out = np.empty(n, dtype=np.float32)
        for rows, x in batches:
            out[rows] = self.score_tensor(x)[0]
        return out

    def predict(self, values: Any, threshold: float | None = None) -> np.ndarray:
        """1 where a window's score is above ``threshold`` (default: the detector's), else 0
        (int8)."""
        limit = self.threshold if threshold is None else threshold_value(threshold)
        return (self.score(values) > limit).astype(np.int8)

    def evaluate(
        self, values: Any, labels: Any, threshold: float | None = None
    ) -> dict[str, object]:
        """ROC-AUC, PR-AUC, precision, recall, F1, accuracy and the confusion matrix at
        ``threshold`` (default: the detector's); ``labels`` 1 = anomaly."""
        limit = self.threshold if threshold is None else threshold_value(threshold)
        scores = self.score(values)
        return evaluate(scores, labels_of(labels, len(scores)), limit)

    def save(self, path: str | Path) -> Path:
        """Write the artifact (``detector.json`` and ``weights.safetensors``) that the CLI,
        :func:`aemon.load` and ``aemon serve`` read."""
        out = artifact.save(path, self.model, self.meta.doc)
        self.meta = artifact.read_meta(out)
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, {self.meta.family}, input "
            f"{list(self.input_shape)}, threshold {self.threshold:.6g}, version {self.version}, "
            f"on {self.device})"
        )

    def summary(self) -> dict[str, object]:
        """What a training run prints: threshold, evaluation metrics, timing, version."""
        training = self.meta.training
        return {
            "threshold": self.threshold,
            **self.meta.metrics,
            "fit_seconds": round(float(training.get("fit_seconds", 0.0)), 3),
            "model_version": self.version,
        }


def labels_of(labels: Any, windows: int) -> np.ndarray:
    """``labels`` as int8, one per window of ``windows``, each 0 or 1 (else DataError)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise DataError("labels must be a flat sequence of 0 (normal) and 1 (anomaly)")
    if len(y) != windows:
        raise DataError(f"{len(y)} labels for {windows} windows: give one label per window")
    return y.astype(np.int8)
