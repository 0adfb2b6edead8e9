"""What ``aemon train``, ``windows``, ``score`` and ``evaluate`` do. The parsers are in
:mod:`aemon.cli.toolkit`; this module (and torch with it) is imported only when one runs."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from aemon.cli.toolkit import learning_of, sample_flags_given
from aemon.core.artifact import META_FILE, read_meta
from aemon.core.cadence import spoken, trained_step
from aemon.core.catalog import catalog, check_one_daemon
from aemon.core.detector import Detector
from aemon.core.device import pick_device
from aemon.core.errors import ArtifactError, ConfigError, DataError
from aemon.core.evaluation import evaluate as metrics_at
from aemon.core.events import event_rule
from aemon.core.table import STDOUT, WindowTable, read_windows, write_windows, writing
from aemon.core.windowing import BLANK, HOUR_WORDS, TIME_OF_WEEK, check_stride
from aemon.core.wording import counted
from aemon.series_detector import SeriesDetector
from aemon.training import noise, report, timeline
from aemon.training.datasets import download, ecg5000, images
from aemon.training.datasets.samples import read_samples
from aemon.training.pipeline import fit_detector, ordered_split, stage, warn_if_scales_differ
from aemon.training.presets import (
    ECG_PRESETS,
    IMAGE_EPOCHS,
    IMAGE_PRESETS,
    SERIES_PRESETS,
    WINDOW_PRESETS,
    Recipe,
)
from aemon.training.series import Plan, fit_series, stream_dir

CLOCK_NOTES = {  # what a series model sees of the hour, as the training summary says it
    **{clock: f", sees the {said}" for clock, said in HOUR_WORDS.items()},
    BLANK: ", blank clock (history under a day)",
    None: "",
}


def emit(doc: dict[str, object], as_json: bool) -> None:
    """One JSON object on stdout with ``--json``, else a short human summary."""
    if as_json:
        print(json.dumps(doc, default=report.plain))
        return
    for key, value in doc.items():
        if not isinstance(value, dict | list):
            print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")


def recipe_of(base: Recipe, args: argparse.Namespace, size: int) -> Recipe:
    """The preset with the flags' overrides (their ranges are checked by the parser)."""
    keys = ("seed", "epochs", "lr", "batch_size", "loss", "threshold", "normaliser", "denoise")
    keys += ("widths", "latent", "activation", "members")
    return base.customise(size, "--", **{k: getattr(args, k) for k in keys})


def _finish(
    det: Detector, args: argparse.Namespace, test: WindowTable | None, split: str
) -> dict[str, object]:
    """Write the artifact and its report; the summary the command prints."""
    stage(not args.quiet, f"writing the artifact and its report to {args.out}")
    det.save(args.out)
    values = None if test is None else test.values
    labels = None if test is None else test.label
    report.run_report(det, args.out / "report", values, labels, split)
    return {**det.summary(), "artifact": str(args.out)}


def train_ecg(args: argparse.Namespace) -> int:
    if args.model == "dense":
        base = ECG_PRESETS[args.preset]
    elif args.preset != "default":
        raise ConfigError(f"--preset {args.preset} is a dense model: leave out --model or --preset")
    else:
        base = WINDOW_PRESETS[args.model]
    data = ecg5000.load(args.data)
    split = ecg5000.split(data, args.split_seed, validation=args.evaluate_on == "validation")
    if args.holdout_csv:
        write_windows(args.holdout_csv, split.test)
    det = fit_detector(
        name="ecg5000",
        train=split.train,
        test=split.test,
        recipe=recipe_of(base, args, ecg5000.LENGTH),
        device=pick_device(args.device),
        facts={
            "data": data.source,
            "preset": args.preset if args.model == "dense" else f"windows {args.model}",
            "split_seed": args.split_seed,
            "evaluated_on": args.evaluate_on,
        },
        progress=not args.quiet,
    )
    emit(_finish(det, args, split.test, f"{args.evaluate_on} split"), args.json)
    return 0


def train_windows(args: argparse.Namespace) -> int:
    table = read_windows(args.input)
    if table.channels:  # several metrics: windows [metrics, steps], each metric scaled apart
        table.values = table.values.reshape(len(table), len(table.channels), -1)
    length = table.values.shape[-1]
    check_stride(args.stride, length, f"the window length {length}")
    ordered = args.split == "ordered"
    # Overlapping windows of a series share samples: in time order, a gap of one window length
    # between the parts keeps every held-back window free of fitted samples.
    gap = length if ordered else None
    train, test = table, None
    warn_if_scales_differ(table)
    if table.label is not None and len(np.unique(table.label)) == 2 and args.test_fraction > 0:
        idx = np.arange(len(table))
        if ordered:  # each stream's last windows, so that every stream is tested
            tr, te = ordered_split(table, args.test_fraction, length)
        else:
            tr, te = train_test_split(
                idx,
                test_size=args.test_fraction,
                random_state=args.split_seed,
                stratify=table.label,
            )
        train, test = table.subset(tr), table.subset(te)
    det = fit_detector(
        name=args.input.stem,
        train=train,
        test=test,
        recipe=recipe_of(WINDOW_PRESETS[args.model], args, int(np.prod(table.values.shape[1:]))),
        device=pick_device(args.device),
        facts={
            "data": str(args.input),
            "split_seed": args.split_seed,
            **({"metrics": list(table.channels)} if table.channels else {}),
        },
        progress=not args.quiet,
        stride=args.stride,
        ordered_gap=gap,
    )
    emit(_finish(det, args, test, f"last {args.test_fraction:.0%} ({args.split})"), args.json)
    return 0


def train_series(args: argparse.Namespace) -> int:
    events = event_rule(
        adaptive_window=args.adaptive_window,
        adaptive_delay=args.adaptive_delay,
        open_after=args.open_after,
        within=args.within,
        resolve_after=args.resolve_after,
    )
    plan = Plan(
        args.length,
        args.stride,
        args.train_fraction,
        args.max_train_rows,
        events,
        args.false_alarms_per_day,
        args.time_of_day,
        args.daily_profile == "on",
        learning_of(args),
    )
    samples = read_samples(args.input, args.missing, args.metrics, args.ignore)
    detectors = fit_series(
        samples,
        lambda size: recipe_of(SERIES_PRESETS[args.model], args, size),
        plan,
        pick_device(args.device),
        str(args.input),
        not args.quiet,
        args.shared,
        args.any_stream,
    )
    stage(not args.quiet, f"writing {counted(len(detectors), 'artifact')} to {args.out}")
    SeriesDetector(detectors).save(args.out)
    on_disk: dict[str, Path] = {}
    try:  # with the models trained into it before: can one daemon serve them all?
        on_disk = catalog(args.out)
        check_one_daemon([read_meta(path) for path in on_disk.values()])
    except ArtifactError as e:
        warnings.warn(f"{args.out}: {e}", stacklevel=1)
    summaries = {}
    for stream, det in detectors.items():
        where = args.out / stream_dir(stream)
        report.run_report(det, where / "report", None, None)
        summaries[stream] = {
            **det.summary(),
            "members": det.meta.members,
            "clock": det.meta.clock,
            "daily_profile": det.meta.profile is not None,
            "sample_step_seconds": trained_step(det.meta),
            "learning": None if det.learning is None else det.learning.to_dict(),
            "artifact": str(where),
        }
    if args.json:  # streams too short to train (the warning names them) are left out
        left_out = [] if args.any_stream else [s for s in samples.streams() if s not in detectors]
        emit({"models": str(args.out), "streams": summaries, "left_out": left_out}, True)
    else:
        for stream, summary in summaries.items():
            weekly = summary["clock"] == TIME_OF_WEEK
            seen = CLOCK_NOTES[summary["clock"]] + (
                f" and its {'weekly' if weekly else 'daily'} profile"
                if summary["daily_profile"]
                else ""
            )
            if summary["members"] > 1:
                seen = f", {summary['members']} autoencoders averaged{seen}"
            if summary["learning"]:
                seen += ", keeps learning every {every:,} windows".format(**summary["learning"])
            step = summary["sample_step_seconds"]
            seen = f", samples {spoken(step)} apart{seen}" if step else seen
            print(
                f"{stream or 'any stream'}: threshold {summary['threshold']:.4g}{seen} -> "
                f"{summary['artifact']}",
                file=sys.stderr,
            )
        total = f" ({len(on_disk)} there in all)" if len(on_disk) > len(summaries) else ""
        print(f"{counted(len(summaries), 'model')} in {args.out}{total}")
    return 0


def train_image(args: argparse.Namespace) -> int:
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
    if args.epochs is None:
        args.epochs = IMAGE_EPOCHS.get(args.dataset)
    recipe = recipe_of(IMAGE_PRESETS[family], args, int(np.prod(train.images.shape[1:])))
    if args.normal_class is not None:
        k = args.normal_class
        if k not in set(train.labels.tolist()):
            raise ConfigError(f"--normal-class {k}: {args.dataset} has no class {k}")
        fit_on = WindowTable(train.images[train.labels == k])
        judged = WindowTable(test.images, label=(test.labels != k).astype(np.int8))
        split = f"test split, class {k} normal"
    else:
        fit_on, judged = WindowTable(train.images), WindowTable(test.images)
        split = "test split"
    det = fit_detector(
        name=f"{args.dataset}-{args.model}",
        train=fit_on,
        test=judged,
        recipe=recipe,
        device=pick_device(args.device),
        facts={"data": args.dataset, "normal_class": args.normal_class},
        progress=not args.quiet,
        kind="image",
    )
    summary = _finish(det, args, judged, split)
    where = args.out / "report"
    summary.update(_image_tasks(det, where, test.images, test.labels, recipe, split))
    if args.normal_class is not None:
        summary["per_class_auc"] = _per_class_auc(
            det, where, args.normal_class, test.images, test.labels
        )
    report.write_metrics(summary, where / "metrics.json")
    emit(summary, args.json)
    return 0


def _image_tasks(
    det: Detector,
    where: Path,
    clean: np.ndarray,
    labels: np.ndarray,
    recipe: Recipe,
    split: str,
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
    title = report.describe(det, split)
    if recipe.denoise:
        gen = torch.Generator().manual_seed(recipe.fit.seed + 1)
        noisy = noise.parse(recipe.denoise, clip=(0.0, 1.0))(torch.from_numpy(clean), gen).numpy()
        denoised = run(noisy)
        out["denoise_mse"] = float(np.mean((denoised - clean) ** 2))
        report.denoise_rows(
            noisy, denoised, clean, f"{title}, {recipe.denoise}", where / "denoising.png"
        )
    if hasattr(model, "sample"):
        with torch.inference_mode():
            drawn = model.sample(64, torch.Generator(device=dev).manual_seed(0)).cpu().numpy()
        epochs = det.meta.training["epochs_run"]
        report.image_grid(
            drawn,
            f"{report.describe(det, 'prior')}: 64 samples from N(0, I) after {epochs} epochs",
            where / "samples.png",
        )
    with torch.inference_mode():
        z = model.encode(torch.from_numpy(clean[:2000]).to(dev)).flatten(1).cpu().numpy()
    if z.shape[1] == 2:
        report.latent_scatter(z, labels[:2000], title, where / "latent.png")
    return out


def _per_class_auc(
    det: Detector, where: Path, k: int, x: np.ndarray, y: np.ndarray
) -> dict[int, float]:
    """One-class runs: the normal class against each other class on its own, and a bar chart."""
    scores = det.score(x)
    aucs = {}
    for c in sorted(set(y.tolist()) - {k}):
        pick = (y == k) | (y == c)
        aucs[int(c)] = float(roc_auc_score(y[pick] == c, scores[pick]))
    report.per_class_auc(aucs, k, report.describe(det, "test split"), where / "per_class_auc.png")
    return aucs


def _is_series(model: Path) -> bool:
    """A models directory, or an artifact trained by ``train series``: its input is samples."""
    if not (model / META_FILE).is_file():
        return model.is_dir() and any((sub / META_FILE).is_file() for sub in model.iterdir())
    return read_meta(model).is_series


def _score_series(args: argparse.Namespace) -> int:
    samples = read_samples(args.input, args.missing, args.metrics, args.ignore)
    models = SeriesDetector.load(args.model, args.device)
    t = timeline.score_samples(samples, models.detector_for, str(args.model))
    timeline.write_windows_csv(args.output, t)
    events = args.events
    if events is None and str(args.output) != STDOUT:
        events = args.output.with_suffix(".events.jsonl")
    if events is not None:
        with writing(events) as fh:
            fh.write("".join(json.dumps(e) + "\n" for e in t.events))
    if args.report:
        timeline.draw(samples, t, args.report)
    opened = sum(e["state"] == "open" for e in t.events)
    doc = {"windows": len(t), "anomalous_windows": int(sum(t.above)), "events": opened}
    if args.json:
        emit({**doc, "output": str(args.output), "events_file": events and str(events)}, True)
    else:
        print(
            f"scored {len(t)} windows of {counted(len(t.models), 'stream')}, "
            f"{doc['anomalous_windows']} above the threshold, "
            f"{counted(opened, 'event')} -> {args.output}" + (f", {events}" if events else ""),
            file=sys.stderr,
        )
    return 0


def _evaluate_series(args: argparse.Namespace) -> int:
    samples = read_samples(args.input, args.missing, args.metrics, args.ignore)
    if samples.label is None:
        raise DataError(f"{args.input}: evaluate needs a 'label' column (1 = anomalous sample)")
    models = SeriesDetector.load(args.model, args.device)
    t = timeline.score_samples(samples, models.detector_for, str(args.model))
    doc: dict[str, object] = {"windows": len(t)}
    labels = np.asarray(t.label)
    doc.update(metrics_at(np.asarray(t.score), labels, np.asarray(t.threshold)))
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
    detector = Detector.load(args.model, device=args.device)
    if args.threshold is not None:
        detector.threshold = args.threshold
    table = read_windows(args.input, length=int(np.prod(detector.input_shape)))
    return detector, table, detector.score(table.values)


def _window_model(args: argparse.Namespace) -> bool:
    """False for series models; they decide with their event rule, one threshold per stream."""
    if not _is_series(args.model):
        if sample_flags_given(args):
            raise ConfigError(
                "--missing, --metrics and --ignore are for a sample CSV: window models read windows"
            )
        return True
    if args.threshold is not None:
        raise ConfigError("--threshold: series models decide with a threshold per stream")
    return False


def score(args: argparse.Namespace) -> int:
    if not _window_model(args):
        return _score_series(args)
    detector, table, scores = _scored(args)
    ids = [
        (n, getattr(table, n))
        for n in ("stream", "seq", "ts", "label")
        if getattr(table, n) is not None
    ]
    flags = scores > detector.threshold
    with writing(args.output) as fh:
        fh.write(",".join([n for n, _ in ids] + ["score", "threshold", "is_anomaly"]) + "\n")
        for i, s in enumerate(scores):
            cells = [str(col[i]) for _, col in ids]
            fh.write(
                ",".join([*cells, repr(float(s)), repr(detector.threshold), str(int(flags[i]))])
                + "\n"
            )
    doc = {"windows": len(scores), "anomalies": int(flags.sum()), "output": str(args.output)}
    if args.json:
        emit(doc, True)
    else:
        print(
            f"scored {len(scores)} windows, {doc['anomalies']} anomalies -> {args.output}",
            file=sys.stderr,
        )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    if not _window_model(args):
        return _evaluate_series(args)
    detector, table, scores = _scored(args)
    if table.label is None:
        raise DataError(f"{args.input}: evaluate needs a 'label' column (1 = anomaly)")
    doc = metrics_at(scores, table.label, detector.threshold)
    doc.update(
        threshold=detector.threshold,
        threshold_method=detector.meta.threshold_spec,
        model_version=detector.version,
        artifact=str(args.model),
    )
    if args.report:
        paths = report.run_report(detector, args.report, table.values, table.label, args.input.name)
        doc["report"] = [str(p) for p in paths]
    emit(doc, args.json)
    return 0
