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

from aemon.tools.broker import free_port

AEMON = str(Path(sys.executable).parent / "aemon")


def start(port: int) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [AEMON, "broker", "--port", str(port)],
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
