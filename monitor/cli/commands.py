"""What ``aemon serve``, ``tail``, ``record``, ``notify``, ``replay``, ``end``, ``broker``,
``demo``, ``bench``, ``nab``, ``skab`` and ``asd`` do. The parsers are in :mod:`aemon.cli`;
this module is imported only when one runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import json
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from aemon.cli.toolkit import learning_of, sample_flags_given
from aemon.core.errors import AemonError, ConfigError
from aemon.core.learning import Learning
from aemon.daemon.config import Settings
from aemon.daemon.event_loop import run_async
from aemon.daemon.supervisor import StageFailed

if TYPE_CHECKING:
    from aemon.recording import Recording


def daemon_kafka(args: argparse.Namespace, **flags: object) -> Settings:
    """The daemon's Kafka settings for a command that reads its topics (its ``--config``,
    ``AEMON_*`` variables, ``--bootstrap-servers`` and ``flags``), models left out."""
    from aemon.daemon.config import load

    return load({"bootstrap_servers": args.bootstrap_servers, **flags}, args.config, models=False)


def stopped_by_signals() -> asyncio.Event:
    """An event SIGTERM and Ctrl-C (SIGINT) set, on the running loop: a command's clean stop."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


def tool(name: str, command: str | None = None) -> ModuleType:
    """A development tool's module (``aemon.tools.<name>``); one clear line naming ``command``
    (default: ``name``) where this installation has no tools (the container image leaves them
    out)."""
    try:
        return importlib.import_module(f"aemon.tools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("aemon.tools", f"aemon.tools.{name}"):
            raise
        raise ConfigError(
            f"aemon {command or name} is a development tool, not in this installation (the "
            "container image leaves the tools out); run it from a source checkout"
        ) from None


def demo(args: argparse.Namespace) -> int:
    demo = tool("demo")

    summary = run_async(demo.run(args.cache, args.rate, args.metrics_port))
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>14}: {v}")
    return 0


def bench(args: argparse.Namespace) -> int:
    given = {
        "--samples-per-stream": args.samples_per_stream is not None,
        "--learn-processes": args.learn_processes != 1,
        "--without-seq": args.without_seq,
    }
    for flag in (f for f, g in given.items() if g and not args.streams):
        raise ConfigError(f"{flag} is for the --streams bench; add --streams")
    bench, demo = tool("bench"), tool("demo")
    from aemon.training.datasets import ecg5000

    if args.training:
        from aemon.training import speed
        from aemon.training.datasets.images import load_idx

        result = speed.compare(load_idx(args.training, "train").images, args.rounds)
        print(
            json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items())
        )
        return 0

    if args.streams:
        return _streams_table(
            args.streams,
            args.bootstrap_servers,
            args.json,
            learning_of(args),
            args.samples_per_stream,
            args.learn_processes,
            args.without_seq,
        )
    model = args.model or demo.ensure_model(Path("artifacts/demo"), progress=False)[0]
    test = ecg5000.split(ecg5000.load()).test
    windows = test.values[test.label == 0]
    if args.scorer:
        return _scorer_table(model, windows, args.json)
    result = run_async(bench.run(model, windows, args.windows, args.bootstrap_servers, args.rounds))
    if args.json:
        print(json.dumps(result))
    else:
        alone = result["scorer"]
        print(f"scorer alone: {alone['wps']:,} windows/s (batch {alone['batch']})")
        for fmt in ("json", "f32"):
            r = result[fmt]
            fetch, daemon = r["fixed_to_fetch_ms"], r["fixed_in_daemon_ms"]
            cpu = r["cpu_us_per_window"]
            print(
                f"{fmt:>4}: bare {r['bare_wps']:,}/s  full {r['full_wps']:,}/s"
                f"  ratio {r['ratio']:.2f}  latency p50 {r['p50_ms']:.1f} ms"
                f" p99 {r['p99_ms']:.1f} ms at {r['rate']:,}/s;"
                f" p50 {r['fixed_p50_ms']:.1f} ms p99 {r['fixed_p99_ms']:.1f} ms"
                f" at {r['fixed_rate']:,}/s (p50 / p99 to the fetch"
                f" {fetch[0]:.0f} / {fetch[1]:.0f} ms,"
                f" in the daemon {daemon[0]:.0f} / {daemon[1]:.0f} ms);"
                f" CPU a window: event loop bare {cpu['bare_loop_thread']:.2f} µs,"
                f" full {cpu['full_loop_thread']:.2f} µs (all threads {cpu['full_process']:.2f})"
            )
    return 0


def _streams_table(
    counts: tuple[int, ...],
    bootstrap: str | None,
    as_json: bool,
    learning: Learning | None,
    per_stream: int | None,
    learn_processes: int,
    without_seq: bool,
) -> int:
    from tqdm.auto import tqdm

    streams_bench, embedded = tool("streams_bench"), tool("broker")

    async def measure() -> dict:
        with tqdm(total=len(counts), desc="streams", disable=None) as steps:
            rows = functools.partial(
                streams_bench.run,
                counts=counts,
                step=steps.update,
                per_stream=per_stream,
                learning=learning,
                learn_processes=learn_processes,
                without_seq=without_seq,
            )
            if bootstrap:
                return await rows(bootstrap)
            async with embedded.EmbeddedBroker() as broker:
                return await rows(broker.bootstrap)

    result = run_async(measure())
    if as_json:
        print(json.dumps(result))
        return 0
    print(
        f"{'streams':>8}{'seq':>5}{'learning':>9}{'updates':>8}{'samples/stream':>16}"
        f"{'windows/s':>11}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'RSS +MB':>9}{'KB/stream':>11}"
    )
    for r in result["rows"]:
        print(
            f"{r['streams']:>8,}{'yes' if r['seq'] else 'no':>5}"
            f"{'on' if r['learning'] else 'off':>9}{r['model_updates']:>8,}"
            f"{r['samples_per_stream']:>16,}{r['windows_per_s']:>11,}{r['p50_ms']:>8}"
            f"{r['p99_ms']:>8}{r['rss_growth_mb']:>9}{r['kb_per_stream']:>11}"
        )
    kb = result["state_bytes_per_stream"] / 1024
    print(f"a stream's state at a full history (2,300 windows): {kb:.1f} KB")
    for r in result["rows"]:
        if "restart" in r:
            kept, retrained = r["restart"]["kept"], r["restart"]["retrained"]
            print(
                f"{r['streams']:,} streams restarted: {kept['seconds']} s to decide every window "
                f"again finding {kept['restored']:,} updates kept ({kept['trained']:,} trained), "
                f"{retrained['seconds']} s training {retrained['trained']:,} again"
            )
    return 0


def _scorer_table(model: Path, windows: object, as_json: bool) -> int:
    import torch
    from tqdm.auto import tqdm

    from aemon.core.detector import Detector

    scorer_bench = tool("scorer_bench")
    detector = Detector.load(model)
    threads = tuple(sorted({1, torch.get_num_threads()}))
    batches = scorer_bench.BATCHES
    with tqdm(total=5 * len(threads) * len(batches), desc="scorer", disable=None) as steps:
        rows = scorer_bench.table(detector, windows, threads, step=steps.update)
    if as_json:
        print(json.dumps({"device": str(detector.device), "rows": rows}))
        return 0
    print(f"scorer windows/s on {detector.device} (batch sizes across)")
    print(f"{'family':<16}{'threads':>8}" + "".join(f"{b:>10}" for b in batches))
    for r in rows:
        cells = "".join(f"{r['windows_per_s'][str(b)]:>10,}" for b in batches)
        print(f"{r['family']:<16}{r['threads']:>8}{cells}")
    return 0


def benchmark(args: argparse.Namespace) -> int:
    """``aemon nab``, ``aemon skab``, ``aemon asd``: one protocol (:mod:`aemon.tools.benchmark`)."""
    summary = tool("benchmark", args.command).run(
        args.command,
        args.data,
        args.out,
        seed=args.seed,
        offline_only=args.offline_only,
        bootstrap=args.bootstrap_servers,
        shared=args.shared,
        adaptive_window=args.adaptive_window,
        adaptive_delay=args.adaptive_delay,
        time_of_day=args.time_of_day,
        daily_profile=args.daily_profile == "on",
        learning=learning_of(args),
        model=args.model,
        members=args.members,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            if isinstance(v, dict):  # the evaluation: one figure a line
                print(f"{k:>22}:")
                for name, x in v.items():
                    print(f"{name:>26}: {round(x, 4) if isinstance(x, float) else x}")
            else:
                print(f"{k:>22}: {v}")
    return 0 if summary.get("daemon_equals_offline", True) else 1


def held_out(args: argparse.Namespace) -> int:
    """``aemon held-out``: :mod:`aemon.tools.held_out`."""
    held = tool("held_out", "held-out")
    settings: dict[str, list] = {}
    for text in args.settings:
        name, paths = held.parse_setting(text)
        if name in settings:
            raise ConfigError(f"setting {name!r} named twice")
        settings[name] = [held.read_run(p) for p in paths]
    result = held.choose(settings)
    print(json.dumps(result) if args.json else held.table(result))
    return 0


def serve(args: argparse.Namespace) -> int:
    """Exit 0 after a clean stop, 1 after a stage failed (logged), 2 for a start-up problem."""
    from aemon.api import serve as run_daemon
    from aemon.daemon.config import FIELDS

    if args.check:
        return _check(args)
    flags = {name: getattr(args, name) for name in FIELDS if name != "model"}
    try:
        run_daemon(args.model, config=args.config, log_level=args.log_level, **flags)
    except StageFailed as exc:
        print(f"aemon: stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    """``serve --check``: what start-up would find, one line a part; 2 when it would stop."""
    import logging

    from aemon.daemon import preflight
    from aemon.daemon.config import FIELDS, load

    settings = load({name: getattr(args, name) for name in FIELDS}, args.config)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a failure is our one line
    found = run_async(preflight.check(settings))
    for warning in found.warnings:
        print(f"aemon: warning: {warning}", file=sys.stderr)
    for problem in found.problems:
        print(f"aemon: error: {problem}", file=sys.stderr)
    if found.problems:
        return 2
    print("aemon serve --check: nothing stops the daemon")
    for part, text in found.found.items():
        print(f"  {part:<8} {text}")
    return 0


def replay(args: argparse.Namespace) -> int:
    import logging

    from aemon.daemon.config import check_topic
    from aemon.replay import replay as produce

    check_topic(args.topic, "--topic")
    if args.by_name and not args.samples:
        raise ConfigError("--by-name names a sample's metrics: it needs --samples")
    if sample_flags_given(args) and not args.samples:
        raise ConfigError("--missing, --metrics and --ignore are for a sample CSV: add --samples")
    if args.without_seq and not args.samples:
        raise ConfigError("--without-seq is for samples (a window's seq places it): add --samples")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a failure is our one line
    n = run_async(
        produce(
            args.csv,
            args.topic,
            args.bootstrap_servers,
            rate=args.rate,
            fmt=args.format,
            samples=args.samples,
            by_name=args.by_name,
            missing=args.missing,
            metrics=args.metrics,
            ignore=args.ignore,
            without_seq=args.without_seq,
            progress=not args.quiet,
        )
    )
    if args.json:
        print(json.dumps({"messages": n, "topic": args.topic}))
    else:
        print(f"sent {n} messages to {args.topic}", file=sys.stderr)
    return 0


def end(args: argparse.Namespace) -> int:
    import logging

    from aemon.daemon.config import check_topic
    from aemon.replay import end_streams

    if args.topic is not None:
        check_topic(args.topic, "--topic")
    kafka = daemon_kafka(args, **({"input_topic": args.topic} if args.topic else {}))
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a failure is our one line
    streams = list(dict.fromkeys(args.stream))
    where = run_async(
        end_streams(
            kafka.bootstrap_servers,
            kafka.input_topic,
            streams,
            partition=args.partition,
            security=kafka.kafka_security(),
        )
    )
    if args.json:
        print(json.dumps({"topic": kafka.input_topic, "ended": where}))
    else:
        for stream, p in where.items():
            print(f"end marker of {stream!r} sent to {kafka.input_topic}/{p}", file=sys.stderr)
    return 0


def record(args: argparse.Namespace) -> int:
    from aemon.core.errors import DataError
    from aemon.core.wording import counted, listed
    from aemon.prometheus_history import shown

    keep = set(args.stream) if args.stream else None
    extra: dict[str, str] = {}
    if args.prometheus:
        source = args.query
        recording, read, extra = _record_prometheus(args, keep)
    else:
        source = args.topic
        recording, read = _record_topic(args, keep)
    doc = recording.summary()
    left_out = ", ".join(f"{reason} {n:,}" for reason, n in sorted(recording.refused.items()))
    if not recording.samples:
        which = f" of stream {listed([repr(s) for s in args.stream])}" if args.stream else ""
        why = f"; left out as the daemon would: {left_out}" if left_out else ""
        raise DataError(f"{source}: no sample{which} to record in {read:,} messages{why}")
    recording.write(args.output)
    if args.json:
        origin: dict[str, object] = {}
        if args.prometheus:
            origin = {"prometheus": shown(args.prometheus), "query": args.query}
            origin["external_labels"] = extra
        print(json.dumps({"output": str(args.output), "topic": args.topic, **origin, **doc}))
        return 0
    streams = recording.streams
    each = listed([f"{name} ({counted(len(s.metrics), 'metric')})" for name, s in streams.items()])
    print(
        f"recorded {recording.samples:,} samples of {counted(len(streams), 'stream')} from "
        f"{source}: {each} -> {args.output}",
        file=sys.stderr,
    )
    if extra:
        pairs = ", ".join(f'{k}="{v}"' for k, v in extra.items())
        print(
            f"each series with Prometheus' external labels {pairs}, as its remote write sends them",
            file=sys.stderr,
        )
    if left_out:
        print(f"left out as the daemon would: {left_out}", file=sys.stderr)
    ended = {name: len(s.ends) for name, s in streams.items() if s.ends}
    if ended:
        markers = counted(sum(ended.values()), "end marker")
        print(
            f"{listed([repr(s) for s in ended], most=5)} ended ({markers}): end = 1 on the "
            "sample each marker followed, where offline scoring starts the stream afresh as "
            "the daemon does",
            file=sys.stderr,
        )
    if str(args.output) != "-":
        print(f"next: aemon train series --input {args.output} --out models", file=sys.stderr)
    return 0


def _record_topic(args: argparse.Namespace, keep: set[str] | None) -> tuple[Recording, int]:
    """``--topic`` recorded from its start, and the messages read."""
    import logging

    from tqdm.auto import tqdm

    from aemon import tail as reader
    from aemon.daemon.config import check_topic
    from aemon.recording import Recording

    for flag in ("query", "since", "until", "header", "external_labels"):
        if getattr(args, flag) is not None:
            name = flag.replace("_", "-")
            raise ConfigError(f"--{name} is for Prometheus' history: it needs --prometheus")
    check_topic(args.topic, "--topic")
    kafka = daemon_kafka(args)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a failure is our one line
    recording = Recording()

    async def run() -> int:
        stop = stopped_by_signals()
        read = taken = 0
        found = reader.records(
            kafka.bootstrap_servers,
            args.topic,
            follow=args.follow,
            stop=stop,
            security=kafka.kafka_security(),
        )
        bar = tqdm(desc="recording", unit=" samples", disable=True if args.quiet else None)
        async with contextlib.aclosing(found) as messages:
            async for r in messages:
                read += 1
                if recording.add(r.value, r.timestamp, r.key, keep):
                    taken += 1
                    bar.update()
                    if taken == args.max_samples:
                        break
        bar.close()
        return read

    return recording, run_async(run())


def _record_prometheus(
    args: argparse.Namespace, keep: set[str] | None
) -> tuple[Recording, int, dict[str, str]]:
    """The series ``--query`` selects on ``--prometheus``, recorded, the messages read and the
    external labels added."""
    from tqdm.auto import tqdm

    from aemon import prometheus_history as history

    if args.query is None:
        raise ConfigError("--prometheus reads the series --query selects: give --query SELECTOR")
    for flag, given in (("--follow", args.follow), ("--config", args.config)):
        if given:
            raise ConfigError(f"{flag} is for a Kafka topic: it does not go with --prometheus")
    if args.bootstrap_servers:
        raise ConfigError("--bootstrap-servers is for a Kafka topic: not with --prometheus")
    start, end = history.span(args.since or "15d", args.until or "now")
    bar = tqdm(
        desc=f"reading {history.shown(args.prometheus)}",
        total=(end - start) / 3600,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} hours "
        "[{elapsed}<{remaining}]",
        disable=True if args.quiet else None,
    )
    with contextlib.closing(bar):
        return history.recorded(
            args.prometheus,
            args.query,
            start,
            end,
            headers=dict(args.header or ()),
            keep=keep,
            max_samples=args.max_samples,
            progress=lambda seconds: bar.update(seconds / 3600),
            external=args.external_labels != "off",
        )


def tail(args: argparse.Namespace) -> int:
    import logging

    from aemon import tail as reader
    from aemon.daemon.config import check_topic

    check_topic(args.topic, "topic")
    kafka = daemon_kafka(args)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a failure is our one line

    async def run() -> int:
        stop = stopped_by_signals()
        count = 0
        async for r in reader.records(
            kafka.bootstrap_servers,
            args.topic,
            follow=args.follow,
            stop=stop,
            security=kafka.kafka_security(),
        ):
            if args.stream and reader.stream_of(r.key, r.value) not in args.stream:
                continue
            count += 1
            if args.json:
                heads = reader.headers_of(r.headers)
                try:
                    value = json.loads(r.value or b"")
                except ValueError:
                    value = (r.value or b"").decode(errors="replace")
                doc = {"partition": r.partition, "offset": r.offset, "value": value}
                print(json.dumps({**doc, "headers": heads}), flush=True)
            else:
                print(reader.line(r.value, r.headers), flush=True)
        return count

    count = run_async(run())
    if not args.json:
        of = f"of stream {', '.join(map(repr, args.stream))} in" if args.stream else "of"
        print(f"{count} records {of} {args.topic}", file=sys.stderr)
    return 0


def notify(args: argparse.Namespace) -> int:
    """Exit 0 after SIGTERM or Ctrl-C, 2 for a start-up problem."""
    from aemon import notify as forward
    from aemon.daemon import logs

    settings = daemon_kafka(args, alerts_topic=args.alerts_topic)
    logs.configure(args.log_level, settings.log_format)
    notifier = forward.Notifier(dict(args.label), args.severity, args.resend_s)
    group = args.group_id or f"{settings.group_id}-notify"

    async def run() -> int:
        stop = stopped_by_signals()
        http = (args.metrics_host, args.metrics_port)
        return await forward.run(settings, args.alertmanager, notifier, group, stop, http)

    sent = run_async(run())
    print(f"aemon notify: stopped; Alertmanager took {sent} alert(s)", file=sys.stderr)
    return 0


def broker(args: argparse.Namespace) -> int:
    from aemon.daemon.config import check_topic

    embedded = tool("broker")

    topics = {}
    for spec in args.topic:
        name, _, parts = spec.partition(":")
        check_topic(name, "--topic")
        if parts and not (parts.isdigit() and int(parts) >= 1):
            raise ConfigError(f"--topic {spec}: PARTITIONS must be a whole number >= 1")
        if name in topics:
            raise ConfigError(f"--topic {spec}: topic {name!r} is given twice")
        topics[name] = int(parts or 1)
    if args.storage is not None:
        if args.storage.exists() and not args.storage.is_dir():
            raise ConfigError(f"--storage {args.storage}: not a directory")
        try:
            args.storage.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--storage {args.storage}: {exc.strerror}") from None

    async def run() -> None:
        async with embedded.EmbeddedBroker(args.port, args.storage) as broker:
            if topics:
                await embedded.create_topics(broker.bootstrap, topics)
            stop = stopped_by_signals()  # before the ready line: a SIGTERM right after it stops us
            doc = {"bootstrap_servers": broker.bootstrap, "storage": broker.kept, "topics": topics}
            print(json.dumps(doc), flush=True)
            kept = (
                "storage in memory (stopping it loses every topic and offset)"
                if args.storage is None
                else f"storage on disk in {args.storage} (topics, groups and offsets outlive it)"
            )
            print(
                f"embedded broker listening on {broker.bootstrap}, {kept}; Ctrl-C stops it",
                file=sys.stderr,
            )
            while not stop.is_set():  # the broker process dying ends this too, with its code
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                why = broker.ended()
                if why is not None:
                    raise AemonError(f"the embedded broker on {broker.bootstrap}: {why}")

    run_async(run())
    print("embedded broker stopped", file=sys.stderr)
    return 0
