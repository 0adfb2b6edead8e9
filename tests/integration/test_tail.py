"""``aemon tail``: what the daemon publishes, readable without writing a Kafka consumer."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from aemon.daemon import alerts
from aemon.replay import produce
from tests.integration.helpers import make_topics, topics
from tests.unit.fakes import Rec

AEMON = str(Path(sys.executable).parent / "aemon")


def messages() -> list[tuple[bytes, bytes, list | None]]:
    rec = Rec(7, b"not json", b"in")
    dead = alerts.dead_letter("dlq", rec, "not_json", "the message is not JSON", ("in", 2), 99)
    event = {
        "event_id": "e1",
        "state": "open",
        "stream": "pump-1",
        "start_seq": 10,
        "start_ts": 1_700_000_000.0,
        "end_ts": 1_700_000_600.0,
        "windows_above": 3,
        "peak_score": 0.52,
        "min_p": 0.0005,
    }
    alert = alerts.alert(
        model="m",
        model_version="v1",
        stream="pump-1",
        seq=42,
        ts=1_700_000_000.0,
        score=0.9,
        threshold=0.3,
        top=[],
    )
    return [
        (b"pump-1", alert, None),
        (b"pump-1", alerts.event_message(event), None),
        (b"pump-1", alerts.score_record("pump-1", 43, 1_700_000_060.0, 0.1, False, 0.3, 0.4), None),
        (b"in", dead[1], dead[3]),
    ]


async def test_tail_prints_one_readable_line_per_record_and_json_on_request(bootstrap):
    t = topics(2)
    await make_topics(bootstrap, t)
    await produce(bootstrap, t["alerts_topic"], messages(), total=4, progress=False)
    argv = [AEMON, "tail", t["alerts_topic"], "--bootstrap-servers", bootstrap]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = sorted(run.stdout.splitlines())
    assert [ln.split()[0] for ln in lines] == ["ALERT", "DEAD", "EVENT", "SCORE"]
    assert "pump-1 #42  score 0.9 > 0.3" in lines[0] and "2023-11-14 22:13:20" in lines[0]
    assert "in/2@7  not_json: the message is not JSON" in lines[1]
    assert lines[2].startswith("EVENT OPEN") and "peak 0.52, p 0.0005  [e1]" in lines[2]
    assert "pump-1 #43  0.1, p 0.4  ok" in lines[3]
    assert run.stderr.strip() == f"4 records of {t['alerts_topic']}"
    run = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=60)
    docs = [json.loads(ln) for ln in run.stdout.splitlines()]
    assert {d["value"]["alert_id"] for d in docs if "alert_id" in d["value"]} == {
        alerts.alert_id("v1", "pump-1", 42)
    }
    assert [d["headers"]["reason"] for d in docs if "reason" in d["headers"]] == ["not_json"]
    run = subprocess.run([*argv, "--stream", "pump-1"], capture_output=True, text=True, timeout=60)
    assert sorted(ln.split()[0] for ln in run.stdout.splitlines()) == ["ALERT", "EVENT", "SCORE"]
    assert run.stderr.strip() == f"3 records of stream 'pump-1' in {t['alerts_topic']}"


async def test_tail_follow_prints_records_as_they_arrive_and_stops_on_sigterm(bootstrap):
    t = topics(1)
    await make_topics(bootstrap, t)
    argv = [AEMON, "tail", t["alerts_topic"], "--bootstrap-servers", bootstrap, "--follow"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await produce(bootstrap, t["alerts_topic"], messages()[:1], total=1, progress=False)
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert first.decode().startswith("ALERT")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
