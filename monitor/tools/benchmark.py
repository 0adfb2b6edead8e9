"""The label-blind runner behind ``aemon nab``, ``aemon skab`` and ``aemon asd``.

1. The data directory becomes a history CSV (what each stream may train on), a stream CSV
   (the rows to detect on) and the stream CSV with its labels, one stream per file or machine
   (``aemon/tools/nab.py``, ``skab.py``, ``asd.py`` say how).
2. ``train series``'s defaults, the same for every suite, train each stream's model on the first
   rows of its history that the suite's protocol allows.
3. The stream CSV is scored offline and replayed as raw samples through the broker into one
   daemon serving the models directory; the two event lists must be equal.
4. Detections in the suite's scorer layout: NAB's opening rows, or per-sample flags (the rows
   from each event's opening window to its last window above the threshold) with each row's
   score.
5. Only then the labels, where the directory has them: event-level and point-wise figures; and
   one picture per stream (with the labelled incidents, where there are labels).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aemon.core.errors import DataError
from aemon.core.learning import Learning
from aemon.core.table import cell_error
from aemon.core.wording import counted, listed
from aemon.training.timeline import Timeline, flagged_rows, row_scores


@dataclass(frozen=True)
class Prepared:
    """A suite's data in aemon's sample format, and how much of each history trains."""

    history: Path
    rest: Path
    train_fraction: float = 1.0
    max_train_rows: int | None = None
    stamps: dict[str, list[str]] = field(default_factory=dict)  # per stream: its file's times
    labelled: Path | None = None  # the stream CSV with labels: read only to evaluate, at the end


def read_frame(path: Path, time: str, ids: Iterable[str], what: str, sep: str = ",") -> Any:
    """A suite's CSV file as a DataFrame, refused in one line naming ``path`` when it is not
    ``what`` (``a SKAB run``), has no ``time`` column, or holds a metric cell (in
    columns but ``time`` and ``ids``) that is not a finite number (its line and column named as
    the tables aemon reads name them)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=sep)
    except (ValueError, pd.errors.ParserError) as exc:  # empty, binary, ragged
        raise DataError(f"{path}: not {what} ({exc})") from None
    if time not in frame.columns:
        raise DataError(f"{path}: no {time} column (not {what})")
    for column in frame.columns.difference([time, *ids], sort=False):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            row = int(bad[0])
            raise cell_error(f"{path}:{row + 2}", str(column), frame[column].iloc[row])
    return frame


def all_labelled(where: Path, unlabelled: list[str], files: int, column: str, noun: str) -> bool:
    """Whether every one of a suite's ``files`` has its labels (``column``): True for all, False
    for none (data nobody labelled: detections only); some only, refused in one line naming
    the ``unlabelled`` ones."""
    if unlabelled and len(unlabelled) < files:
        some = f"the {column!r} column in some {noun}"
        raise DataError(f"{where}: {some}, not in {listed(unlabelled)}")
    return not unlabelled


def save_events(path: Path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))


async def stream_events(
    models: Path, rest: Path, expected: int, bootstrap: str | None, name: str, partitions: int = 4
) -> tuple[list[dict], dict[str, float]]:
    """Replay ``rest`` as raw samples through the broker into one daemon serving ``models``;
    return the event messages it published once it has decided ``expected`` windows, and its
    counters."""
    import orjson

    from aemon.daemon.config import local
    from aemon.daemon.service import Service
    from aemon.replay import replay
    from aemon.tools.broker import EmbeddedBroker, create_topics
    from aemon.tools.harness import started, until_decided
    from aemon.tools.topics import read_topic

    async with contextlib.AsyncExitStack() as stack:
        if bootstrap is None:
            bootstrap = (await stack.enter_async_context(EmbeddedBroker())).bootstrap
        s = local(models, bootstrap, name)
        await create_topics(
            bootstrap,
            {s.input_topic: partitions, s.alerts_topic: 1, s.dlq_topic: 1}
            | {s.learned_topic: partitions},  # partitioned alongside the input
            compacted={s.learned_topic},
        )
        svc = Service(s)
        daemon = await started(svc)
        await replay(rest, s.input_topic, bootstrap, samples=True)
        await until_decided(svc, daemon, expected, timeout=3600)
        t = svc.totals
        counters = {
            "windows_scored": float(t.windows),
            "anomalies": float(t.anomalies),
            "events_opened": float(t.opened),
            "events_resolved": float(t.resolved),
            "model_updates": svc.metrics.registry.get_sample_value("aemon_model_updates_total")
            or 0.0,
        }
        svc.stop()
        await daemon
        records = await read_topic(bootstrap, s.alerts_topic)
    return [orjson.loads(r.value) for r in records], counters


EXACT = (
    "event_id",
    "state",
    "stream",
    "start_seq",
    "end_seq",
    "windows_above",
    "resolved_seq",
    "min_p",
)


def same_events(offline: list[dict], daemon: list[dict]) -> list[str]:
    """Differences between two event lists (empty: equal). Everything but the peak score must
    match exactly; peak scores to 1e-5 (float32 sums may differ in the last bit across batch
    sizes). The daemon's list may hold duplicates (at-least-once); they must be identical."""

    def key(e: dict) -> tuple:
        return tuple(e.get(k) for k in EXACT)

    a, b = {key(e): e for e in offline}, {key(e): e for e in daemon}
    problems = [f"offline only: {k}" for k in a.keys() - b.keys()]
    problems += [f"daemon only: {k}" for k in b.keys() - a.keys()]
    for k in a.keys() & b.keys():
        pa, pb = a[k]["peak_score"], b[k]["peak_score"]
        if abs(pa - pb) > 1e-5 * max(abs(pa), 1e-12):
            problems.append(f"peak score {pa} against {pb}: {k}")
    return problems


def per_window(t: Timeline, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each stream's windows as ``(labels, scores, p)`` (a window's label: its last row's; NaN
    where a window has no ``p``)."""
    stream = np.asarray(t.stream)
    label = labels[np.asarray(t.last_row, dtype=np.int64)]
    score = np.asarray(t.score, dtype=np.float64)
    p = t.p_values()
    return [
        (label[stream == s], score[stream == s], p[stream == s]) for s in dict.fromkeys(t.stream)
    ]


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(
    suite_name: str,
    data: Path,
    out: Path,
    seed: int = 0,
    offline_only: bool = False,
    bootstrap: str | None = None,
    shared: bool = False,
    adaptive_window: int | None = None,
    adaptive_delay: int | None = None,
    time_of_day: str = "auto",
    daily_profile: bool = True,
    learning: Learning | None = None,
    model: str = "dense",
    members: int | None = None,
) -> dict[str, object]:
    """The whole protocol on ``data`` (see the module's docstring); the summary it prints."""
    import importlib

    from aemon.core.device import pick_device
    from aemon.core.events import event_rule
    from aemon.daemon.event_loop import run_async
    from aemon.series_detector import SeriesDetector
    from aemon.training.datasets.samples import read_samples
    from aemon.training.incidents import pointwise, tail_shares
    from aemon.training.presets import SERIES_PRESETS
    from aemon.training.series import Plan, fit_series
    from aemon.training.timeline import draw, evaluate_events, score_samples

    suite = importlib.import_module(f"aemon.tools.{suite_name}")
    prepared: Prepared = suite.prepare(data, out)
    models = out / "models"
    history = read_samples(prepared.history)
    rule = event_rule(adaptive_window=adaptive_window, adaptive_delay=adaptive_delay)
    plan = Plan(
        train_fraction=prepared.train_fraction,
        max_train_rows=prepared.max_train_rows,
        events=rule,
        time_of_day=time_of_day,
        daily_profile=daily_profile,
        learning=learning,
    )
    preset = SERIES_PRESETS[model]
    say(f"training {counted(len(history.streams()), 'model')} into {models}")
    fitted = fit_series(
        history,
        lambda size: preset.customise(size, "--", seed=seed, members=members),
        plan,
        pick_device("cpu"),
        str(prepared.history),
        False,
        shared,
    )
    SeriesDetector(fitted).save(models)
    route = SeriesDetector.load(models, device="cpu").detector_for
    rest = read_samples(prepared.rest)
    offline = score_samples(rest, route, str(models))
    save_events(out / "events-offline.jsonl", offline.events)
    summary: dict[str, object] = {
        "streams": len(prepared.stamps),
        "windows": len(offline),
        "events_offline": sum(e["state"] == "open" for e in offline.events),
    }
    events = offline.events
    if not offline_only:
        say(f"streaming {len(rest)} samples through the daemon")
        daemon, counters = run_async(
            stream_events(models, prepared.rest, len(offline), bootstrap, suite_name)
        )
        save_events(out / "events-daemon.jsonl", daemon)
        problems = same_events(offline.events, daemon)
        summary.update(
            events_daemon=sum(e["state"] == "open" for e in daemon),
            windows_daemon=int(counters["windows_scored"]),
            model_updates_daemon=int(counters["model_updates"]),
            daemon_equals_offline=not problems,
            differences=problems[:10],
        )
        events = daemon
    suite.write_detections(prepared, offline, events, out / "detections")
    summary["detections"] = str(out / "detections")
    samples = rest  # without labels (data nobody labelled): the pictures alone
    if prepared.labelled is not None:  # evaluation only, after every detection is made
        samples = read_samples(prepared.labelled)
        summary["events"] = evaluate_events(samples, offline)
        flags, scores = (
            flagged_rows(offline, events, len(samples)),
            row_scores(offline, len(samples)),
        )
        per_stream = [samples.rows_of(s) for s in samples.streams()]
        assert samples.label is not None
        summary["pointwise"] = pointwise(
            [(samples.ts[r], samples.label[r], flags[r], scores[r]) for r in per_stream]
        )
        summary["tail_probability"] = tail_shares(per_window(offline, samples.label), 0.01)
    draw(samples, offline, out / "report")
    summary["report"] = str(out / "report")
    return summary
