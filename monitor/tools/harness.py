"""One harness for the tools and the tests: a daemon in this process, started, waited on through
its public counts (:attr:`Service.totals`), and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aemon.daemon.config import Settings
from aemon.daemon.kafka import Clients
from aemon.daemon.service import Service


async def started(svc: Service, timeout: float = 60.0) -> asyncio.Task:
    """Run ``svc`` in a task; return the task once the daemon is ready (or raise what stopped it
    before that, or :class:`TimeoutError`)."""
    task = asyncio.create_task(svc.run())
    deadline = time.monotonic() + timeout
    while not svc.ready():
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            svc.stop()
            raise TimeoutError(f"the daemon was not ready within {timeout:g} s")
        await asyncio.sleep(0.05)
    return task


async def until_decided(
    svc: Service, task: asyncio.Task, n: int, timeout: float = 300.0, poll_s: float = 0.01
) -> None:
    """Wait until the daemon has decided (and had acknowledged) ``n`` windows, looking every
    ``poll_s``; raise what stopped it, or :class:`TimeoutError`."""
    deadline = time.monotonic() + timeout
    while svc.totals.windows < n:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{svc.totals.windows} of {n} windows decided in {timeout:g} s")
        await asyncio.sleep(poll_s)


@contextlib.asynccontextmanager
async def running(s: Settings, clients: Clients | None = None) -> AsyncIterator[Service]:
    """The daemon in this process, ready; drained and stopped on exit."""
    svc = Service(s, clients)
    task = await started(svc)
    try:
        yield svc
    finally:
        svc.stop()
        await asyncio.wait_for(task, 30)
