"""``aemon broker`` as a user runs it: says where it listens and what it keeps, says when it
stops, and ends with one line and exit 2 when its broker process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from aemon.tools.broker import free_port
from tests.integration.helpers import HEARTBEAT_MS, SESSION_MS

AEMON = str(Path(sys.executable).parent / "aemon")


def start(port: int, *flags: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [AEMON, "broker", "--port", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once the broker answers
    return proc, json.loads(line)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_the_broker_says_where_it_listens_and_when_it_stops():
    port = free_port()
    proc, doc = start(port)
    assert doc == {"bootstrap_servers": f"127.0.0.1:{port}", "storage": "memory", "topics": {}}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = err.strip().splitlines()
    assert f"listening on 127.0.0.1:{port}, storage in memory" in lines[0]
    assert lines[-1] == "embedded broker stopped"


def test_a_broker_process_that_dies_ends_the_command_with_one_line():
    proc, _ = start(free_port())
    (tansu,) = children(proc.pid)
    os.kill(tansu, signal.SIGKILL)
    started = time.monotonic()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and time.monotonic() - started < 5
    lines = err.strip().splitlines()
    assert "exited (-9)" in lines[-1] and "Traceback" not in err


async def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, str(i).encode(), partition=i % 2)
        await producer.flush()
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, group: str, until: int, commit: bool) -> list[int]:
    """What ``group`` reads from its committed offsets (the earliest without), until ``until``
    records or two empty fetches."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_MS,  # the broker holds each join for half of it
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    await consumer.start()
    seen: list[int] = []
    empty = 0
    try:
        while len(seen) < until and empty < 2:
            got = await consumer.getmany(timeout_ms=2000)
            empty = 0 if got else empty + 1
            seen += [int(r.value) for records in got.values() for r in records]
        if commit:
            await consumer.commit()
    finally:
        await consumer.stop()
    return sorted(seen)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return err


async def test_a_broker_on_disk_keeps_topics_records_and_offsets_across_a_restart(tmp_path):
    port, where = free_port(), tmp_path / "broker"
    proc, doc = start(port, "--topic", "kept:2", "--storage", str(where))
    assert doc["storage"] == str(where)
    bootstrap = doc["bootstrap_servers"]
    await produce(bootstrap, "kept", 300)
    assert await consume(bootstrap, "kept", "g", 300, commit=True) == list(range(300))
    helpers = children(proc.pid)  # the broker and its object store
    assert len(helpers) == 2
    err = stop(proc)
    assert f"storage on disk in {where}" in err
    assert not [p for p in helpers if Path(f"/proc/{p}").exists()]  # both went with it

    proc, _ = start(port, "--storage", str(where))  # the topic is not created again
    try:
        await produce(bootstrap, "kept", 310)
        # the group goes on from its committed offsets: only the new records
        assert await consume(bootstrap, "kept", "g", 310, commit=False) == list(range(310))
        assert await consume(bootstrap, "kept", "fresh", 610, commit=False) == sorted(
            list(range(300)) + list(range(310))
        )
    finally:
        stop(proc)


def test_storage_that_is_a_file_is_refused_with_one_line(tmp_path):
    (tmp_path / "f").write_text("")
    done = subprocess.run(
        [AEMON, "broker", "--storage", str(tmp_path / "f")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "--storage" in done.stderr and "not a directory" in done.stderr
