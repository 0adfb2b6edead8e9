"""The Python API: fit in memory, score, predict, events, save/load, report, serve.

The CLI runs the same code: ``aemon train`` is :func:`fit` (or :func:`fit_series`) plus
:meth:`Detector.save` and :meth:`Detector.report`; ``aemon serve`` is :func:`serve`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aemon.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from aemon.detector import Detector
    from aemon.series_detector import SeriesDetector

IMAGE_MODELS = {"dense": "dense", "conv": "conv2d", "conv2d": "conv2d", "vae": "vae", "aae": "aae"}
ECG_PRESETS = {"ecg": "default", "ecg-tutorial": "tutorial"}


def fit(
    X: Any,
    y: Sequence[int] | Any = None,
    *,
    model: str = "dense",
    preset: str | None = None,
    threshold: str | None = None,
    contamination: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    widths: list[int] | None = None,
    latent: int | None = None,
    activation: str | None = None,
    members: int | None = None,
    loss: str | None = None,
    normaliser: str | None = None,
    denoise: str | None = None,
    device: str = "auto",
    name: str = "detector",
    progress: bool = False,
) -> Detector:
    """Fit a detector on the normal windows of ``X`` in memory; nothing is written.

    ``X``: windows ``[n, length]`` (a numpy array, nested lists, or a DataFrame whose columns
    other than ``stream``, ``seq``, ``ts``, ``start`` and ``label`` are the values) or images
    ``[n, height, width]`` with pixels in [0, 1]. ``y`` (optional, 1 = anomaly): those rows are
    never fitted. Part of the normal rows is held out to calibrate the threshold.

    ``model``: ``dense``, ``conv1d``, ``vae`` or ``aae`` for windows; ``dense``, ``conv``,
    ``vae`` or ``aae`` for images. ``preset="ecg"`` (or ``"ecg-tutorial"``) takes the ECG5000
    recipe instead. The other settings override the recipe's, as the ``aemon train`` flags do.

    ``threshold``: how to calibrate it (``mad:2.5``, ``quantile:0.99``, ``mean-std:3``,
    ``pot:0.01``, ``fitted-max:1``); ``contamination`` (as in PyOD): the share of normal windows
    to flag, i.e. the threshold is the ``1 - contamination`` quantile of the held-out normal
    windows' scores. Set ``det.threshold`` afterwards to decide at another value.
    ``members`` (dense): an ensemble of that many autoencoders trained side by side, a window's
    error their mean.

    Returns a :class:`aemon.Detector`: ``score``, ``predict``, ``evaluate``, ``save``, ``report``.
    """
    import numpy as np

    from aemon.core.detector import as_windows, frame_metrics, frame_values
    from aemon.core.device import pick_device
    from aemon.core.table import WindowTable
    from aemon.detector import Detector
    from aemon.training import presets
    from aemon.training.pipeline import fit_detector

    metrics = None
    if hasattr(X, "columns"):  # a DataFrame: its id columns are not values
        if y is None and "label" in X.columns:
            y = X["label"].to_numpy()
        metrics = frame_metrics(X)  # columns METRIC@T: windows [metrics, steps]
        X = frame_values(X)
        if metrics:
            X = X.reshape(len(X), len(metrics), -1)
    try:
        shape = tuple(np.shape(X)[1:])
    except ValueError:  # nested lists of different lengths
        raise DataError("X: rows of different lengths; every window needs as many values") from None
    if not shape:
        raise ConfigError(f"X must be windows [n, length] or images [n, h, w], got {np.shape(X)}")
    if len(shape) == 2 and not metrics:
        kind, family = "image", IMAGE_MODELS.get(model)
        table = presets.IMAGE_PRESETS
    else:
        kind, family, table = "window", model, presets.WINDOW_PRESETS
    if preset is not None:
        if preset not in ECG_PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(ECG_PRESETS)}, got {preset!r}")
        base = presets.ECG_PRESETS[ECG_PRESETS[preset]]
    elif family not in table:
        raise ConfigError(f"model must be one of {', '.join(table)} for {kind}s, got {model!r}")
    else:
        base = table[family]
    if contamination is not None:
        if threshold is not None:
            raise ConfigError("give threshold or contamination, not both")
        if not (isinstance(contamination, int | float) and 0 < contamination < 0.5):
            raise ConfigError(f"contamination must be in (0, 0.5), got {contamination!r}")
        threshold = f"quantile:{1 - contamination:.10g}"
    values = as_windows(X, shape)
    labels = None
    if y is not None:
        labels = np.asarray(y)
        if labels.shape != (len(values),) or not np.isin(labels, (0, 1)).all():
            raise ConfigError(f"y must hold one 0 or 1 per row of X ({len(values)} rows)")
        labels = labels.astype(np.int8)
    overrides = {
        "threshold": threshold,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "widths": widths,
        "latent": latent,
        "activation": activation,
        "members": members,
        "loss": loss,
        "normaliser": normaliser,
        "denoise": denoise,
    }
    recipe = base.customise(int(np.prod(values.shape[1:])), **overrides)
    fitted = fit_detector(
        name=name,
        train=WindowTable(values, label=labels),
        test=None,
        recipe=recipe,
        device=pick_device(device),
        facts={"data": "in memory (aemon.fit)"},
        progress=progress,
        kind=kind,
    )
    return Detector.of(fitted)


def fit_series(
    samples: Any,
    *,
    length: int = 8,
    stride: int = 1,
    train_fraction: float = 1.0,
    max_train_rows: int | None = None,
    missing: str = "refuse",
    model: str = "dense",
    shared: bool = False,
    any_stream: bool = False,
    adaptive_window: int | None = None,
    adaptive_delay: int | None = None,
    false_alarms_per_day: float | None = None,
    time_of_day: str = "auto",
    daily_profile: bool = True,
    learn: bool = True,
    learn_every: int = 1000,
    learn_span: int = 3000,
    learn_epochs: int = 5,
    learn_delay: int = 1000,
    open_after: int | None = None,
    within: int | None = None,
    resolve_after: int | None = None,
    threshold: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    members: int | None = None,
    widths: list[int] | None = None,
    latent: int | None = None,
    activation: str | None = None,
    loss: str | None = None,
    normaliser: str | None = None,
    denoise: str | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
) -> SeriesDetector:
    """Fit one detector per stream of telemetry ``samples`` (time order; nothing is written).

    ``samples``: a DataFrame (or a sample CSV's path) with a ``timestamp``/``ts``/``time``
    column, optional ``stream`` and ``label`` (1 = anomalous sample: never fitted) columns, and
    value columns (a stream leaves those it does not have empty, NaN, in all of its rows: each
    stream is fitted on the metrics it has). Each stream's first ``train_fraction`` of rows (at
    most ``max_train_rows``) is its history: the earlier part is fitted, the later part
    calibrates the threshold (a stream with too few samples to train is left out with a warning
    naming it; all too few: ConfigError). A missing value (NaN in a metric its stream has) is
    refused, or with ``missing="skip"`` its row is left out, as the daemon leaves out such a
    sample. Windows of ``length`` samples every ``stride``; events
    open after ``open_after`` windows above the threshold among ``within`` (2 of 6) and resolve
    after ``resolve_after`` windows without that, the threshold following ``adaptive_window`` recent
    scores (0: fixed), each learned ``adaptive_delay`` windows after it was scored, as ``aemon
    train series`` does.
    ``false_alarms_per_day``: each stream's calibrated threshold where its calibration scores expect
    that many windows a day above it (instead of ``threshold``, default ``fitted-max:1``: the
    largest calibration score that a robust log-normal fit expects, never below the largest one).
    ``time_of_day``: ``auto`` (each sample also carries its UTC time of day, seen by the model and
    not scored, and each value its distance from the stream's daily profile, for each stream whose
    history spans at least a day; the time of week and a profile of the week's 168 hours for one
    that spans two weeks; a blank clock for the others), ``on`` (the day), ``week`` or ``off``;
    ``daily_profile`` False keeps the clock without the profile. ``learn``: each stream's
    model keeps learning on its stream (every ``learn_every`` windows fine-tuned for
    ``learn_epochs`` epochs, from its trained weights, on its last ``learn_span`` windows but the
    newest ``learn_delay``), offline as in the daemon; False: the trained model throughout.
    ``shared``: one model, each stream scaled and thresholded on its own; ``any_stream``: one
    detector that serves any stream, also streams it never saw (each still decided on its own).
    ``members``: the dense model's ensemble size (autoencoders trained side by side, a window's
    error their mean; default: the series preset's, 3; 1: one autoencoder). ``widths``,
    ``latent``, ``activation``, ``loss``, ``normaliser`` and ``denoise`` override the series
    preset's model and training, as in :func:`fit` and ``aemon train series`` (by default the
    dense model grows with the values a window holds).

    Returns a :class:`aemon.SeriesDetector`: ``score``, ``events``, ``save``, ``report``.
    """
    from aemon.core.device import pick_device
    from aemon.core.events import event_rule
    from aemon.core.learning import Learning
    from aemon.series_detector import SeriesDetector, as_samples
    from aemon.training import presets
    from aemon.training.series import Plan
    from aemon.training.series import fit_series as fit_streams

    if model not in presets.SERIES_PRESETS:
        raise ConfigError(f"model must be one of {', '.join(presets.SERIES_PRESETS)}")
    events = event_rule(
        adaptive_window=adaptive_window,
        adaptive_delay=adaptive_delay,
        open_after=open_after,
        within=within,
        resolve_after=resolve_after,
    )
    plan = Plan(
        length,
        stride,
        train_fraction,
        max_train_rows,
        events,
        false_alarms_per_day,
        time_of_day,
        daily_profile,
        Learning(learn_every, learn_span, learn_delay, learn_epochs) if learn else None,
    )
    s = as_samples(samples, missing)
    overrides = {
        "threshold": threshold,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "members": members,
        "widths": widths,
        "latent": latent,
        "activation": activation,
        "loss": loss,
        "normaliser": normaliser,
        "denoise": denoise,
    }
    preset = presets.SERIES_PRESETS[model]
    detectors = fit_streams(
        s,
        lambda size: preset.customise(size, **overrides),
        plan,
        pick_device(device),
        "in memory",
        progress,
        shared,
        any_stream,
    )
    return SeriesDetector(detectors)


def load(path: str | Path, device: str = "auto") -> Detector | SeriesDetector:
    """An artifact (``aemon train``, :meth:`Detector.save`) as a :class:`aemon.Detector`; a
    models directory or a series artifact as a :class:`aemon.SeriesDetector`."""
    from aemon.core.artifact import META_FILE, read_meta
    from aemon.detector import Detector
    from aemon.series_detector import SeriesDetector

    root = Path(path)
    if (root / META_FILE).is_file() and not read_meta(root).is_series:
        return Detector.load(root, device=device)
    return SeriesDetector.load(root, device=device)


def read_prometheus(
    url: str,
    query: str,
    *,
    since: str = "15d",
    until: str = "now",
    headers: dict[str, str] | None = None,
    external_labels: bool = True,
) -> pd.DataFrame:
    """The history of the series ``query`` (a PromQL series selector) selects on the Prometheus
    at ``url`` (or Thanos, Mimir, VictoriaMetrics), as ``aemon record --prometheus`` writes it:
    a sample frame :func:`fit_series` takes (``timestamp``, ``stream``, ``seq``, a column per
    metric), each series a stream named as the daemon names prometheus-kafka-adapter's samples
    of it. ``since``: a duration before ``until`` (``"30d"``) or a time; ``until``: ``"now"``, ISO
    8601 or epoch seconds; ``headers``: sent with every query (a bearer token); a user and
    password in ``url`` are sent as basic authentication; ``external_labels``: each series gets
    the server's external labels, as its remote write adds them."""
    from aemon import prometheus_history as history

    start, end = history.span(since, until)
    recording, *_ = history.recorded(
        url, query, start, end, headers=headers, external=external_labels
    )
    return recording.frame()


def serve(
    model: str | Path | None = None,
    *,
    config: str | Path | None = None,
    log_level: str = "INFO",
    environ: dict[str, str] | None = None,
    **settings: Any,
) -> None:
    """Run the daemon until SIGTERM or Ctrl-C, as ``aemon serve`` does, with the same settings:
    keyword arguments named like the flags (``bootstrap_servers="kafka:9092"``, ``max_batch=512``),
    then ``AEMON_*`` environment variables (``environ``, default ``os.environ``), then the TOML
    file ``config``. Raises :class:`aemon.ConfigError` for bad settings and
    :class:`aemon.StageFailed` when a stage of the daemon failed (logged)."""
    from aemon.daemon import logs
    from aemon.daemon.config import FIELDS
    from aemon.daemon.config import load as load_settings
    from aemon.daemon.event_loop import run_async

    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (see aemon serve --help)")
    flags = {**settings, "model": None if model is None else str(model)}
    resolved = load_settings(flags, config, environ)  # bad settings refused before torch loads
    logs.configure(log_level, resolved.log_format)
    from aemon.daemon.service import Service

    run_async(Service(resolved).run())
