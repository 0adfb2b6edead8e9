"""What ``aemon info`` does: what an artifact or a models directory holds, read and checked as
``aemon serve`` reads and checks it (every artifact loaded, its weights against their
checksum, and whether one daemon can serve them all)."""

from __future__ import annotations

import argparse
import difflib
import json
import math
import shlex
from typing import Any

import pandas as pd

from aemon.core.cadence import spoken
from aemon.core.catalog import ANY, describe_windows
from aemon.core.detector import Detector
from aemon.core.errors import DataError
from aemon.core.learning import Learning
from aemon.core.windowing import HOUR_WORDS
from aemon.core.wording import alike, counted, listed
from aemon.daemon.routing import Models
from aemon.series_detector import SeriesDetector


def rule_words(rule: dict[str, Any]) -> str:
    """A series model's event rule, in words."""
    return (
        f"an event opens on {rule['open_after']} of {rule['within']} windows above the "
        f"threshold and resolves after {rule['resolve_after']} quiet ones; the threshold "
        f"follows {math.exp(rule['adaptive_margin']):.3g} times the "
        f"{rule['adaptive_quantile']:.0%} quantile of the stream's last "
        f"{rule['adaptive_window']:,} scores but the newest {rule['adaptive_delay']:,}"
    )


def learning_words(learning: Learning | None) -> str:
    """How a series model keeps learning on its stream, in words."""
    if learning is None:
        return "does not learn on the stream"
    return (
        f"every {learning.every:,} windows, {learning.epochs} epochs on the stream's last "
        f"{learning.span:,} windows but the newest {learning.delay:,}"
    )


def _rule(det: Detector) -> dict[str, Any]:
    rule = det.meta.event_rule
    assert rule is not None  # every series model has one (Models refuses a mix)
    return rule


def _window_model(det: Detector, stream: str) -> dict[str, Any]:
    """A window (or image) model's facts."""
    meta, training = det.meta, det.meta.training
    thr = meta.doc["threshold"]
    return {
        "stream": stream or None,
        "name": meta.name,
        "family": meta.family,
        "kind": meta.kind,
        "input": describe_windows(meta),
        "input_shape": list(det.input_shape),
        "window": {"length": meta.window.length, "stride": meta.window.stride},
        "model_version": det.version,
        "threshold": det.threshold,
        "threshold_method": meta.threshold_spec,
        "calibrated_threshold": thr.get("calibrated_value", thr["value"]),
        "calibration_windows": thr.get("n"),
        "members": meta.members,
        "windows_fitted": training.get("windows_fitted"),
        "epochs_run": training.get("epochs_run"),
        "fit_seconds": training.get("fit_seconds"),
        "trained_on_device": training.get("device"),
        "seed": training.get("seed"),
        "evaluation": {k: v for k, v in meta.metrics.items() if isinstance(v, int | float)},
        "created_at": meta.doc.get("created_at"),
        "versions": meta.doc.get("versions", {}),
    }


def _say_window_model(doc: dict[str, Any]) -> None:
    who = f"stream {doc['stream']!r}: " if doc["stream"] else ""
    print(
        f"  {who}{doc['kind']} model {doc['name']!r}, {doc['family']}, version "
        f"{doc['model_version']}"
    )
    set_by_user = doc["threshold"] != doc["calibrated_threshold"]
    calibrated = (
        f"set by hand; calibrated {doc['calibrated_threshold']:.6g}"
        if set_by_user
        else f"{doc['threshold_method']} on {doc['calibration_windows']} held-out normal windows"
    )
    lines = {
        "input": f"{doc['input']} a window (stride {doc['window']['stride']})",
        "threshold": f"{doc['threshold']:.6g} ({calibrated})",
        "trained": f"{doc['windows_fitted']} windows, {doc['epochs_run']} epochs, "
        f"{doc['fit_seconds'] or 0:.1f} s on {doc['trained_on_device']}, seed {doc['seed']}",
    }
    if doc["evaluation"]:
        lines["evaluated"] = ", ".join(f"{k} {v:.4g}" for k, v in doc["evaluation"].items())
    lines["written"] = f"{doc['created_at']} ({_versions(doc['versions'])})"
    for key, text in lines.items():
        print(f"    {key:<10} {text}")


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items()) or "versions not recorded"


def _series(models: Models, streams: list[str]) -> dict[str, Any]:
    """Series models' shared facts and one row per stream (SeriesDetector.summary's)."""
    dets = [models.detectors[models.route[s]] for s in streams]
    table = SeriesDetector(dict(zip(streams, dets, strict=True))).summary()
    return {
        "windows": alike([describe_windows(d.meta) for d in dets]),
        "events": alike([rule_words(_rule(d)) for d in dets]),
        "learning": alike([learning_words(d.learning) for d in dets]),
        "streams": [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in table.reset_index().to_dict(orient="records")
        ],
        "table": table,
    }


def info(args: argparse.Namespace) -> int:
    models = Models(str(args.model), device="cpu")  # every artifact loaded and checked
    streams = list(models.route)
    if args.stream is not None:
        if args.stream in models.route:
            streams = [args.stream]
        elif ANY in models.route:
            streams = [ANY]
        else:
            near = difflib.get_close_matches(args.stream, streams, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"its streams: {listed(streams)}"
            raise DataError(f"--stream {args.stream!r}: no model in {args.model} serves it; {hint}")
    serve = f"aemon serve --model {shlex.quote(str(args.model))}"
    doc: dict[str, Any] = {"model": str(args.model), "serve": serve}
    if models.series:
        series = _series(models, streams)
        table: pd.DataFrame = series.pop("table")
        doc.update(kind="series", models=len(models.route), **series)
    else:
        doc.update(
            kind="window",
            models=len(models.route),
            streams=[_window_model(models.detectors[models.route[s]], s) for s in streams],
        )
    if args.json:
        print(json.dumps(doc, default=str))
        return 0
    n = len(models.route)
    what = counted(n, "series model" if models.series else "model")
    whom = "for every stream" if list(models.route) == [ANY] else "one per stream"
    if ANY in models.route and n > 1:
        whom += ", and one for every other stream"
    print(f"{args.model}: {what}, {whom}; `{serve}` serves {'them all' if n > 1 else 'it'}")
    if not models.series:
        for model in doc["streams"]:
            _say_window_model(model)
        return 0
    for key in ("windows", "events", "learning"):
        print(f"  {key:<9} {doc[key]}")
    print(_table(table).to_string())
    return 0


def _table(summary: pd.DataFrame) -> pd.DataFrame:
    """SeriesDetector.summary's columns a terminal has room for, in words; ``--json`` has all."""
    step = summary.sample_step_seconds
    return pd.DataFrame(
        {
            "version": summary.model_version,
            "threshold": summary.threshold.map(lambda v: f"{v:.4g}"),
            "false alarms/day": summary.expected_false_alarms_per_day.map(
                lambda v: "-" if pd.isna(v) else f"{v:.2g}"
            ),
            "step": step.map(lambda v: "-" if pd.isna(v) else spoken(float(v))),
            "clock": summary.clock.map(lambda v: HOUR_WORDS.get(v, v or "-")),
            "metrics": summary.metrics.map(lambda v: listed(v, most=3)),
            "members": summary.members,
            "windows fitted": summary.windows_fitted,
        },
        index=summary.index,
    )
