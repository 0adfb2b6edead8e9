"""The README's "Your own telemetry on one machine", run as written: its script, then its
commands, against the test broker (which stands in for ``aemon broker``) under this test's topic
names. What it says it shows is what the daemon publishes and offline scoring writes."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from aemon.tools.broker import create_topics
from tests.integration.helpers import topics

README = Path(__file__).parents[2] / "README.md"
BIN = Path(sys.executable).parent
# What may differ on another CPU's arithmetic: ids, scores and shares, not decisions or times.
DIGITS = [(r"\[[0-9a-f]{32}\]", "[ID]"), (r"(peak|p) [\d.e-]+", r"\1 X"), (r"\d+%", "X%")]


def _masked(line: str) -> str:
    for pattern, mask in DIGITS:
        line = re.sub(pattern, mask, line)
    return line


def _section() -> str:
    text = README.read_text()
    return text[text.index("### Your own telemetry on one machine") : text.index("### Train")]


def _block(section: str, kind: str) -> str:
    (block,) = re.findall(rf"```{kind}\n(.*?)```", section, flags=re.S)
    return block


def _run(argv: list[str], cwd: Path) -> str:
    run = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


async def test_the_readme_walkthrough_runs_as_written(bootstrap, tmp_path):
    section = _section()
    script = _block(section, "python")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    lines = [
        ln.split("#")[0].strip().rstrip("&").strip() for ln in _block(section, "sh").split("\n")
    ]
    train, evaluate, broker, serve, replay, tail = [shlex.split(ln) for ln in lines if ln]
    assert broker[:3] == ["aemon", "broker", "--topic"] and broker[3].startswith("telemetry:")
    assert "--input-topic" in serve and "--topic" in replay
    t = topics(4)
    await create_topics(bootstrap, {t["input_topic"]: int(broker[3].split(":")[1])})
    here = ["--bootstrap-servers", bootstrap]
    serve = [t["input_topic"] if a == "telemetry" else a for a in serve]
    serve += [*here, "--metrics-port", "0", "--group-id", t["group_id"]]
    serve += ["--alerts-topic", t["alerts_topic"], "--dlq-topic", t["dlq_topic"]]
    serve += ["--learned-topic", t["learned_topic"]]
    replay = [t["input_topic"] if a == "telemetry" else a for a in replay] + here
    tail = [*tail, t["alerts_topic"], *here]

    _run(train, tmp_path)
    found = json.loads(_run([*evaluate, "--json"], tmp_path))["events"]
    assert (found["incidents"], found["incidents_detected"], found["events"]) == (1, 1, 1)
    assert found["event_f1"] == 1 and found["false_alarms_per_day"] == 0
    assert (tmp_path / "report" / "web-2.png").is_file()
    score = "aemon score --model models --input history.csv --output x.csv"
    _run(score.split(), tmp_path)
    ids = [json.loads(ln)["event_id"] for ln in (tmp_path / "x.events.jsonl").open()]

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / serve[0]), *serve[1:]], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _run(replay, tmp_path)
        deadline = time.monotonic() + 120
        while len(published := _run(tail, tmp_path).splitlines()) < len(ids):
            assert daemon.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{len(published)} of {len(ids)} published"
            await asyncio.sleep(1)  # the daemon decides as the samples arrive: look again
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    shown = _block(section, "text").splitlines()
    assert [_masked(ln) for ln in published] == [_masked(ln) for ln in shown]
    assert [re.findall(r"\[([0-9a-f]{32})\]", ln)[0] for ln in published] == ids
