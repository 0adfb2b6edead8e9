"""Every user mistake the CLI can meet: exit 2 and exactly one line on stderr naming the problem.

Each row runs the installed console script in a fresh process, as a user would, and reads its
real stderr: no traceback, no usage block, no second line.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import aemon
from aemon.core.table import read_windows, write_windows
from tests.conftest import make_windows, samples_csv

AEMON = str(Path(sys.executable).parent / "aemon")
DOWN = "127.0.0.1:1"  # nothing listens on port 1 of loopback
PROM = ["record", "--prometheus", "http://p:9090", "--query", "up", "--output", "{OUT}.csv"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad")
    windows = root / "windows.csv"
    write_windows(windows, make_windows(120, 20))
    write_windows(root / "three.csv", make_windows(3, 0))
    table = read_windows(windows)
    art = aemon.fit(table.values, table.label, epochs=1).save(root / "model")
    typed = shutil.copytree(art, root / "typed")
    meta = json.loads((typed / "detector.json").read_text())
    meta["threshold"]["value"] = "high"
    (typed / "detector.json").write_text(json.dumps(meta))
    tampered = shutil.copytree(art, root / "tampered")
    (tampered / "weights.safetensors").write_bytes(b"\0" * 64)
    (root / "a-file").write_text("not a directory\n")
    (root / "a-dir").mkdir()
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    (root / "bad.toml").write_text("max_batch = [1\n")
    (root / "down.toml").write_text(f'bootstrap_servers = "{DOWN}"\n')
    (root / "semi.csv").write_text("stream;seq;v0;v1\ns;0;1.0;2.0\n")
    (root / "semi-samples.csv").write_text("timestamp;value\n1700000000;1.0\n")
    (root / "twice.csv").write_text("stream,v,v\ns,1.0,2.0\n")
    (root / "ragged.csv").write_text("timestamp,value\n1700000000,1\n1700000060,2,3\n")
    (root / "text-samples.csv").write_text("timestamp,value\n1700000000,1\n1700000060,n/a\n")
    (root / "ms-samples.csv").write_text("timestamp,value\n1700000000000,1\n1700000060000,2\n")
    (root / "host-samples.csv").write_text("timestamp,host,cpu\n1700000000,web-1,0.5\n")
    named = "timestamp,stream,host,cpu\n1700000000,a,web-1,0.5\n1700000060,a,web-1,0.7\n"
    (root / "named-host-samples.csv").write_text(named)  # a host's name beside stream ids
    (root / "dmy-samples.csv").write_text("timestamp,cpu\n31/01/2026 14:05,0.5\n")
    (root / "nab-samples.csv").write_text("timestamp,value,is_anomaly\n1700000000,0.5,0\n")
    (root / "ms-windows.csv").write_text("ts,v0,v1\n1700000000000,1,2\n")
    kinds = "timestamp,stream,cpu,mem\n1700000000,web,1,\n1700000000,db,2,3\n1700000060,web,1,\n"
    (root / "kinds-samples.csv").write_text(kinds)
    labelled = "timestamp,stream,v,label\n" + "".join(
        f"{1_700_000_000 + 60 * i},{s},{i % 7},{int(s == 'bad')}\n"
        for s in ("ok", "bad")
        for i in range(60)
    )
    (root / "all-labelled-samples.csv").write_text(labelled)
    gap = "timestamp,stream,seq,value\n1700000000,a,0,1\n1700000060,a,2,1\n"
    (root / "gap-samples.csv").write_text(gap)
    (root / "nab-no-value" / "data" / "c").mkdir(parents=True)  # NAB's layout, another column
    (root / "nab-no-value" / "data" / "c" / "a.csv").write_text("timestamp,v\n2015-01-01,1\n")
    (root / "nab-gap" / "data" / "c").mkdir(parents=True)  # NAB's layout, a value missing
    (root / "nab-gap" / "data" / "c" / "a.csv").write_text(
        "timestamp,value\n2015-01-01,1\n2015-01-02,\n"
    )
    (root / "skab-text" / "valve1").mkdir(parents=True)  # SKAB's layout, text among the numbers
    run = "datetime;Pressure;anomaly;changepoint\n2020-01-01 00:00:00;0.1;0;0\n"
    run += "2020-01-01 00:00:01;high;0;0\n"
    (root / "skab-text" / "valve1" / "0.csv").write_text(run)
    (root / "skab-empty" / "valve1").mkdir(parents=True)  # SKAB's layout, an empty run
    (root / "skab-empty" / "valve1" / "0.csv").write_text("")
    (root / "asd-no-train" / "machine-1").mkdir(parents=True)  # a server without its history
    (root / "asd-no-train" / "machine-1" / "test.csv").write_text("timestamp,m1,label\n")
    return {
        "W": str(windows),
        "THREE": str(root / "three.csv"),
        "S": str(samples_csv(root / "samples.csv", n=60)),
        "ART": str(art),
        "TYPED": str(typed),
        "TAMPERED": str(tampered),
        "FILE": str(root / "a-file"),
        "DIR": str(root / "a-dir"),
        "BIN": str(root / "binary.csv"),
        "TOML": str(root / "bad.toml"),
        "DOWNTOML": str(root / "down.toml"),
        "OUT": str(root / "out"),
        "SEMI": str(root / "semi.csv"),
        "RAGGED": str(root / "ragged.csv"),
        "SEMIS": str(root / "semi-samples.csv"),
        "TWICE": str(root / "twice.csv"),
        "TEXTS": str(root / "text-samples.csv"),
        "MS": str(root / "ms-samples.csv"),
        "HOST": str(root / "host-samples.csv"),
        "NAMED": str(root / "named-host-samples.csv"),
        "DMY": str(root / "dmy-samples.csv"),
        "NABS": str(root / "nab-samples.csv"),
        "MSW": str(root / "ms-windows.csv"),
        "KINDS": str(root / "kinds-samples.csv"),
        "LABELLED": str(root / "all-labelled-samples.csv"),
        "GAP": str(root / "gap-samples.csv"),
        "NOTRAIN": str(root / "asd-no-train"),
        "NOVALUE": str(root / "nab-no-value"),
        "EMPTYRUN": str(root / "skab-empty"),
        "NABGAP": str(root / "nab-gap"),
        "SKABTEXT": str(root / "skab-text"),
    }


@pytest.fixture(scope="module")
def taken_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield str(s.getsockname()[1])
    s.close()


TW = ["train", "windows", "--input", "{W}", "--quiet", "--out", "{OUT}"]
SCORE = ["score", "--model", "{ART}", "--input", "{W}", "--output", "{OUT}.csv"]
# The daemon logs at --log-level (INFO: "serving detector ..."): at ERROR a refusal to start is
# its one line.
SERVE = ["serve", "--log-level", "ERROR", "--model", "{ART}", "--bootstrap-servers", DOWN]

# (argv with {placeholders}, what the one line must say)
CASES = [
    # the broker and the network
    ([*SERVE, "--broker-wait-s", "1"], "broker"),
    (["replay", "{W}", "--topic", "t", "--bootstrap-servers", DOWN], "127.0.0.1:1"),
    (["replay", "{W}", "--topic", "bad topic!"], "--topic: 'bad topic!' is not a valid topic"),
    (["replay", "{W}", "--topic", "t", "--by-name"], "--by-name names a sample's metrics"),
    (["replay", "{W}", "--topic", "t", "--without-seq"], "--without-seq is for samples"),
    (
        [
            "replay",
            "{GAP}",
            "--topic",
            "t",
            "--samples",
            "--without-seq",
            "--bootstrap-servers",
            DOWN,
        ],
        "stream 'a' goes from seq 0 to 2; without seq the daemon counts its samples",
    ),
    (["broker", "--topic", "t:zero"], "PARTITIONS must be a whole number"),
    (["broker", "--topic", "t:3", "--topic", "t:4"], "--topic t:4: topic 't' is given twice"),
    (["broker", "--storage", "{W}/kept"], "--storage {W}/kept: Not a directory"),
    (["end"], "the following arguments are required: stream"),
    (["end", "a", "--partition", "-1"], "--partition: must be >= 0, got -1"),
    (["end", "a", "--topic", "bad topic!"], "--topic: 'bad topic!' is not a valid topic"),
    (["end", "a", "--bootstrap-servers", DOWN], "end: cannot reach the broker at 127.0.0.1:1"),
    (["end", "a", "--config", "{DOWNTOML}"], "end: cannot reach the broker at 127.0.0.1:1"),
    (["tail", "--bootstrap-servers", DOWN], "cannot read aemon.alerts from 127.0.0.1:1"),
    (["tail", "bad topic!"], "topic: 'bad topic!' is not a valid topic"),
    (["tail", "--config", "{DOWNTOML}"], "cannot read aemon.alerts from 127.0.0.1:1"),  # its broker
    (["notify", "--alertmanager", "am:9093"], "--alertmanager: must be an http:// or https://"),
    (["notify", "--alertmanager", "http://am", "--label", "1a=b"], "--label: must be NAME=VALUE"),
    (["notify", "--alertmanager", "http://am", "--resend-s", "0"], "--resend-s: must be"),
    (
        ["notify", "--alertmanager", "http://127.0.0.1:1", "--bootstrap-servers", DOWN],
        "cannot read aemon.alerts from 127.0.0.1:1",
    ),
    (
        ["record", "--topic", "t", "--output", "{OUT}.csv", "--bootstrap-servers", DOWN],
        "127.0.0.1:1",
    ),
    (["record", "--topic", "bad topic!", "--output", "{OUT}.csv"], "--topic: 'bad topic!' is not"),
    (["record", "--topic", "t", "--output", "{DIR}"], "--output: "),
    (["record", "--topic", "t", "--output", "{OUT}.csv", "--max-samples", "0"], "must be >= 1"),
    (["record", "--output", "{OUT}.csv"], "one of the arguments --topic --prometheus is required"),
    (
        ["record", "--topic", "t", "--prometheus", "http://p:9090", "--output", "{OUT}.csv"],
        "--prometheus: not allowed with argument --topic",
    ),
    (["record", "--prometheus", "p:9090", "--output", "{OUT}.csv"], "must be an http:// or"),
    (["record", "--prometheus", "http://p:9090", "--output", "{OUT}.csv"], "give --query"),
    (["record", "--topic", "t", "--since", "1d", "--output", "{OUT}.csv"], "needs --prometheus"),
    ([*PROM, "--header", "Authorization Bearer s3cr3t"], "--header: must be 'NAME: VALUE'"),
    (["record", "--topic", "t", "--header", "A: b", "--output", "{OUT}.csv"], "needs --prometheus"),
    (
        ["record", "--topic", "t", "--external-labels", "off", "--output", "{OUT}.csv"],
        "--external-labels is for Prometheus' history: it needs --prometheus",
    ),
    (
        ["record", "--prometheus", "http://p:9090", "--query", "up", "--follow", "--output", "o"],
        "--follow is for a Kafka topic",
    ),
    (
        [*PROM, "--since", "yesterday"],
        "--since 'yesterday': give a duration (15d, 12h, 1h30m) or a time",
    ),
    (
        [*PROM, "--since", "2026-01-02", "--until", "2026-01-01"],
        "--since 2026-01-02 is not before --until 2026-01-01",
    ),
    (
        ["record", "--prometheus", "http://127.0.0.1:1", "--query", "up", "--output", "{OUT}.csv"],
        "Prometheus at http://127.0.0.1:1 does not answer",
    ),
    (
        ["replay", "{W}", "--topic", "t", "--bootstrap-servers", "kafka:abc"],
        "--bootstrap-servers: 'kafka:abc': the port must be a number from 1 to 65535",
    ),
    (
        ["tail", "--bootstrap-servers", "PLAINTEXT://kafka:9092"],
        "'PLAINTEXT://kafka:9092': give host:port without a scheme",
    ),
    (
        [*SERVE[:-1], "kafka:9092,,kafka-2:9092"],
        "bootstrap_servers: 'kafka:9092,,kafka-2:9092' is not host:port[,host:port]",
    ),
    (["broker", "--port", "{PORT}"], "--port {PORT}: 127.0.0.1:{PORT} is taken"),
    (["broker", "--port", "99999"], "--port: must be a port from 1 to 65535"),
    ([*SERVE, "--metrics-port", "{PORT}"], "{PORT}"),
    (["serve", "--check", "--model", "{TYPED}", "--bootstrap-servers", DOWN], "threshold.value"),
    ([*SERVE, "--check", "--metrics-port", "0"], "error: broker 127.0.0.1:1: KafkaConnection"),
    # training flags
    ([*TW, "--lr", "nan"], "--lr: must be a finite number"),
    ([*TW, "--lr", "-1"], "--lr: must be a finite number > 0, got -1"),
    ([*TW, "--epochs", "-1"], "--epochs: must be >= 1"),
    ([*TW, "--epochs", "x"], "--epochs: must be a whole number"),
    ([*TW, "--batch-size", "0"], "--batch-size: must be >= 1"),
    ([*TW, "--test-fraction", "1.5"], "--test-fraction: must be a finite number in [0, 1)"),
    ([*TW, "--device", "tpu"], "--device: must be auto, cpu, cuda"),
    ([*TW, "--threshold", "pot:"], "--threshold: threshold must be METHOD:PARAM"),
    ([*TW, "--threshold", "quantile:7"], "quantile takes a probability"),
    ([*TW, "--split", "random", "--threshold", "pot:0.01"], "needs >= 500 calibration windows"),
    ([*TW, "--denoise", "gaussian:-1"], "--denoise: gaussian takes SIGMA > 0"),
    ([*TW, "--widths", "0"], "--widths: widths must all be >= 1"),
    ([*TW, "--latent", "40"], "--latent 40 must be smaller than the input"),
    ([*TW, "--members", "0"], "--members: must be >= 1"),
    (["train", "ecg", "--model", "conv1d", "--preset", "tutorial"], "--preset tutorial is a dense"),
    ([*TW, "--model", "conv1d", "--members", "2"], "--members does not apply to the conv1d"),
    ([*TW, "--stride", "0"], "--stride: must be >= 1"),
    ([*TW, "--stride", "99"], "--stride must be between 1 and the window length"),
    ([*TW, "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "windows", "--input", "{W}", "--out", "{FILE}"], "--out: "),
    (["train", "windows", "--input", "{THREE}", "--quiet", "--out", "{OUT}"], "need at least 4"),
    (["train", "windows", "--input", "{BIN}", "--out", "{OUT}"], "binary.csv"),
    (["train", "windows", "--input", "{DIR}/missing.csv"], "--input: "),
    ([*TW[:3], "{SEMI}", *TW[4:]], "looks separated by semicolons"),
    (["train", "series", "--input", "{SEMIS}", "--out", "{OUT}"], "separated by semicolons"),
    (["train", "series", "--input", "{TEXTS}", "--out", "{OUT}"], "'n/a', a missing value"),
    (["windows", "{TEXTS}", "--length", "2", "--output", "{OUT}.csv", "--missing", "x"], "'x'"),
    ([*SCORE, "--missing", "skip"], "--missing, --metrics and --ignore are for a sample CSV: wi"),
    ([*SCORE, "--metrics", "v0"], "--missing, --metrics and --ignore are for a sample CSV: window"),
    ([*SCORE[:-1], "-", "--json"], "--output - and --json both write to standard output"),
    (["replay", "{W}", "--topic", "t", "--missing", "skip"], "are for a sample CSV: add --samples"),
    (["replay", "{W}", "--topic", "t", "--ignore", "v0"], "are for a sample CSV: add --samples"),
    (
        ["train", "series", "--input", "{NAMED}", "--out", "{OUT}"],
        "leave it out with --ignore host",
    ),
    (["windows", "{NAMED}", "--length", "2", "--output", "{OUT}.csv"], "--ignore host (or name"),
    (["train", "series", "--input", "{NAMED}", "--metrics", "mem"], "no value column 'mem' (they"),
    (["train", "series", "--input", "{NAMED}", "--metrics", "cpu,cpu"], "'cpu' is named twice"),
    (["train", "series", "--input", "{NAMED}", "--metrics", "cpu,"], "expected column names like"),
    (["train", "series", "--input", "{NAMED}", "--ignore", "seq"], "'seq' is the time column or"),
    (["train", "series", "--input", "{NAMED}", "--ignore", "host,cpu"], "no value column left"),
    (
        ["train", "series", "--input", "{NAMED}", "--metrics", "cpu", "--ignore", "host"],
        "argument --ignore: not allowed with argument --metrics",
    ),
    (["train", "series", "--input", "{MS}", "--out", "{OUT}"], "ms-samples.csv:2: timestamp 17"),
    (["train", "series", "--input", "{HOST}", "--out", "{OUT}"], "must be named 'stream'"),
    (["train", "series", "--input", "{DMY}", "--out", "{OUT}"], "is not a time (ISO 8601, such"),
    (["train", "series", "--input", "{NABS}", "--out", "{OUT}"], "'is_anomaly' holds only 0 and 1"),
    (["windows", "{KINDS}", "--length", "2", "--output", "{OUT}.csv"], "different metrics, and"),
    ([*TW[:3], "{MSW}", *TW[4:]], "ms-windows.csv:2: ts 1700000000000 is after the year 5000"),
    ([*TW[:3], "{TWICE}", *TW[4:]], "column 'v' appears twice"),
    ([*TW[:3], "{S}", *TW[4:]], "is a sample CSV's time, and this reads windows"),
    (["train", "series", "--input", "{S}", "--length", "0"], "--length: must be >= 1"),
    (["train", "series", "--input", "{S}", "--train-fraction", "0"], "--train-fraction: must"),
    (["train", "image", "--dataset", "mnist", "--out", "{OUT}"], "mnist"),
    # scoring, evaluation, windows
    (["score", "--model", "{ART}", "--input", "{W}", "--output", "{DIR}"], "--output: "),
    (["evaluate", "--model", "{ART}", "--input", "{W}", "--report", "{FILE}"], "--report: "),
    (["score", "--model", "{TYPED}", "--input", "{W}", "--output", "{OUT}.csv"], "threshold.value"),
    (["score", "--model", "{DIR}", "--input", "{W}", "--output", "{OUT}.csv"], "a-dir"),
    (
        ["score", "--model", "{ART}/detector.json", "--input", "{W}", "--output", "{OUT}.csv"],
        "detector.json: give the artifact's directory ({ART})",
    ),
    (["score", "--model", "{TAMPERED}", "--input", "{W}", "--output", "{OUT}.csv"], "checksum"),
    (["info", "{TAMPERED}"], "checksum"),
    (["info", "{ART}/detector.json"], "detector.json: give the artifact's directory ({ART})"),
    (["info", "{OUT}-gone"], "{OUT}-gone: no such artifact or models directory"),
    (["windows", "{S}", "--length", "0", "--output", "{OUT}.csv"], "--length: must be >= 1"),
    ([*SCORE, "--threshold", "nan"], "--threshold: must be a finite number"),
    ([*SCORE, "--threshold", "-1"], "--threshold: must be a finite number"),
    (["windows", "{S}", "--length", "4", "--stride", "9", "--output", "{OUT}.csv"], "--stride"),
    # the daemon's settings
    (["serve", "--model", "{TYPED}", "--bootstrap-servers", DOWN], "threshold.value"),
    (["serve", "--model", "{TYPED}", "--log-format", "yaml"], "log_format: 'text' or 'json'"),
    ([*SERVE, "--max-batch", "0"], "max_batch: 0 is outside"),
    ([*SERVE, "--max-batch", "many"], "--max-batch: max_batch must be int"),
    ([*SERVE, "--input-topic", "a/b"], "input_topic: 'a/b' is not a valid topic"),
    ([*SERVE, "--config", "{TOML}"], "bad.toml"),
    ([*SERVE, "--config", "{BIN}"], "binary.csv: not UTF-8 text (TOML is)"),
    (
        ["train", "series", "--input", "{LABELLED}", "--out", "{OUT}", "--quiet"],
        "stream 'bad': only 0 normal training windows (windows labelled 1 are never fitted)",
    ),
    ([*SERVE, "--config", "{DIR}"], "a-dir: a directory, not a file"),
    ([*SERVE, "--config", "{DIR}/none.toml"], "--config: "),
    (["serve"], "model: required"),
    (["serve", "--model", "{ART}/weights.safetensors"], "give the artifact's directory ({ART})"),
    (["demo", "--rate", "0"], "--rate: must be a finite number > 0, got 0"),
    (["bench", "--windows", "0"], "--windows: must be >= 1"),
    (["bench", "--samples-per-stream", "0"], "--samples-per-stream: must be >= 1"),
    (["bench", "--samples-per-stream", "50"], "--samples-per-stream is for the --streams bench"),
    (["bench", "--learn-processes", "2"], "--learn-processes is for the --streams bench"),
    (["bench", "--without-seq"], "--without-seq is for the --streams bench"),
    (["windows", "{RAGGED}", "--length", "2", "--output", "{OUT}.csv"], "saw 3)"),
    (["nab", "{DIR}", "--out", "{OUT}"], "is it NAB's directory?"),
    (["skab", "{DIR}", "--out", "{OUT}"], "is it SKAB's directory?"),
    (["asd", "{DIR}", "--out", "{OUT}"], "is it the ASD directory?"),
    (["asd", "{NOTRAIN}", "--out", "{OUT}"], "machine-1: test.csv without a train.csv"),
    (["nab", "{NOVALUE}", "--out", "{OUT}"], "a.csv: needs NAB's timestamp and value columns"),
    (["skab", "{EMPTYRUN}", "--out", "{OUT}"], "0.csv: not a SKAB run"),
    (["nab", "{NABGAP}", "--out", "{OUT}"], "a.csv:3: column 'value' is empty, a missing value"),
    (["skab", "{SKABTEXT}", "--out", "{OUT}"], "0.csv:3: column 'Pressure' holds 'high', not a"),
    (["skab", "{DIR}", "--adaptive-delay", "-1"], "--adaptive-delay: must be >= 0"),
    (
        ["train", "series", "--input", "{S}", "--false-alarms-per-day", "0"],
        "--false-alarms-per-day: must",
    ),
    (["train", "series", "--input", "{S}", "--adaptive-delay", "x"], "--adaptive-delay: "),
    (["train", "series", "--input", "{S}", "--shared", "--any-stream"], "exclude each other"),
    (["train", "series", "--input", "{S}", "--daily-profile", "maybe"], "--daily-profile: invalid"),
    (["train", "series", "--input", "{S}", "--time-of-day", "weekly"], "--time-of-day: invalid"),
    (["train", "series", "--input", "{S}", "--learn", "yes"], "--learn: invalid choice"),
    (["nab", "{DIR}", "--learn-every", "0"], "--learn-every: must be >= 1"),
    (["held-out", "{W}", "{W}"], "give each setting as NAME=FILES"),
    (["held-out", "a={W}", "b={W}"], "not the output of nab_score.py DATA DETECTIONS --json"),
    (["held-out", "a={DIR}/*.json", "b={W}"], "setting 'a': no file matches"),
    (["train", "series", "--input", "{S}", "--learn-delay", "-3"], "--learn-delay: must be >= 0"),
]
IDS = [" ".join(a)[:60] for a, _ in CASES]
if not torch.cuda.is_available():  # a device this machine lacks (on a GPU machine: none)
    CASES.append(([*TW, "--device", "cuda"], "device 'cuda': CUDA was asked for"))
    CASES.append(
        (
            [
                "score",
                "--model",
                "{ART}",
                "--input",
                "{W}",
                "--output",
                "{OUT}.csv",
                "--device",
                "cuda:1",
            ],
            "CUDA was asked for",
        )
    )
    IDS += ["train --device cuda without CUDA", "score --device cuda:1 without CUDA"]


@pytest.mark.parametrize("argv, says", CASES, ids=IDS)
def test_one_line_and_exit_2(files, taken_port, tmp_path, argv, says):
    values = {**files, "PORT": taken_port}
    args = [a.format(**values) for a in argv]
    run = subprocess.run([AEMON, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = run.stderr.splitlines()
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert len(lines) == 1, run.stderr[-2000:]
    assert says.format(**values) in lines[0], lines[0]
    assert "Traceback" not in run.stderr
