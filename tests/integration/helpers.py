"""Helpers for tests against a real Kafka-protocol broker and a real daemon."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from aemon.daemon.config import Settings
from aemon.daemon.service import Service
from aemon.tools.broker import create_topics, free_port
from aemon.tools.harness import running as running  # the tests share the tools' harness
from aemon.tools.topics import read_topic

SESSION_MS = 6000  # the embedded broker holds each JoinGroup for half the session timeout
HEARTBEAT_MS = 1000


def topics(n_partitions: int = 3) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "input_topic": f"in-{tag}",
        "alerts_topic": f"alerts-{tag}",
        "dlq_topic": f"dlq-{tag}",
        "scores_topic": f"scores-{tag}",
        "learned_topic": f"learned-{tag}",
        "group_id": f"g-{tag}",
        "_partitions": str(n_partitions),
    }


async def make_topics(bootstrap: str, t: dict[str, str]) -> None:
    n = int(t["_partitions"])
    await create_topics(
        bootstrap,
        {t["input_topic"]: n, t["alerts_topic"]: 1, t["dlq_topic"]: 1, t["scores_topic"]: 1}
        | {t["learned_topic"]: n},  # partitioned alongside the input
        compacted={t["learned_topic"]},
    )


def settings(bootstrap: str, model: Path, t: dict[str, str], **extra: object) -> Settings:
    own = {k: v for k, v in t.items() if not k.startswith("_")}
    return dataclasses.replace(
        Settings(),
        model=str(model),
        bootstrap_servers=bootstrap,
        metrics_port=0,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        **{"watch_model": False, **own, **extra},
    )


async def until(check: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """Wait for a condition with a deadline (the condition is the synchronisation)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said}")
        await asyncio.sleep(0.05)


def counter(svc: Service, name: str, **labels: str) -> float:
    return svc.metrics.registry.get_sample_value(name, labels or None) or 0.0


read_all = read_topic


async def decided(bootstrap: str, t: dict[str, str]) -> dict[tuple[str, int], int]:
    """How many times each window was decided (from the per-window scores topic)."""
    out: dict[tuple[str, int], int] = {}
    for r in await read_all(bootstrap, t["scores_topic"]):
        doc = orjson.loads(r.value)
        out[(doc["stream"], doc["seq"])] = out.get((doc["stream"], doc["seq"]), 0) + 1
    return out


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return {p: (await c.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)}
    finally:
        await c.stop()


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` of a daemon as {name{labels}: value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + (
                "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                if s.labels
                else ""
            )
            out[key] = s.value
    return out


FAILING = """\
import sys
from aemon.daemon import logs
from aemon.daemon.config import Settings
from aemon.daemon.event_loop import run_async
from aemon.daemon.service import Service
from aemon.daemon.supervisor import StageFailed
from tests.unit.fakes import failing_scorer
logs.configure("INFO", "text")
try:
    run_async(Service(Settings(**{values!r}), scorer=failing_scorer({after})).run())
except StageFailed as exc:
    print(f"aemon: stopped: {{exc}}", file=sys.stderr)
    sys.exit(1)
"""


class Daemon:
    """``aemon serve`` as a real subprocess (for signals); ``python_api``: started as
    ``aemon.serve(**settings)`` from Python instead. Every one started is killed at the end of
    the session if a test left it running (``tests/conftest.py``)."""

    started: ClassVar[list[Daemon]] = []

    def __init__(
        self,
        s: Settings,
        log: Path,
        env: dict[str, str] | None = None,
        python_api: bool = False,
        fail_scoring_after: int | None = None,
    ) -> None:
        self.port = free_port()
        values = {**dataclasses.asdict(s), "metrics_port": self.port}
        if fail_scoring_after is not None:  # a stage failure injected from outside the daemon
            code = FAILING.format(values=values, after=fail_scoring_after)
            args = [sys.executable, "-c", code]
            python_api = True
        elif python_api:
            code = f"import aemon\naemon.serve(**{values!r})"
            args = [sys.executable, "-c", code]
        else:
            args = [sys.executable, "-m", "aemon.cli", "serve"]
        for name, value in values.items() if not python_api else ():
            flag = f"--{name.replace('_', '-')}"
            if isinstance(value, bool):
                args.append(flag if value else f"--no-{flag[2:]}")
            elif value != "":
                args += [flag, str(value)]
        self.log = log
        self.proc = subprocess.Popen(
            args,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        Daemon.started.append(self)

    def status(self, path: str) -> int:
        """HTTP status of ``path`` (0: no answer)."""
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            return urllib.request.urlopen(url, timeout=2).status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def readyz(self) -> str:
        """The body of /readyz: 'ready' or the reasons it is not."""
        try:
            url = f"http://127.0.0.1:{self.port}/readyz"
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except urllib.error.HTTPError as exc:
            return exc.read().decode()
        except OSError:
            return ""

    def proc_status(self, field: str) -> int:
        """A number from /proc/<pid>/status (VmRSS in kB, Threads)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def metric(self, name: str) -> float:
        try:
            return scrape(self.port).get(name, 0.0)
        except OSError:
            return -1.0

    def ready(self) -> bool:
        return self.status("/readyz") == 200

    async def wait_ready(self) -> None:
        await until(lambda: self.ready() or self.proc.poll() is not None, 60, "daemon ready")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def children(pid: int) -> set[int]:
    """The processes ``pid`` started."""
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    return {int(c) for f in tasks for c in f.read_text().split()}
