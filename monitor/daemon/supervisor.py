"""One supervisor over the daemon's stages: the first stage that fails is logged once (with its
traceback, or one line for a :class:`Fatal` condition), and the daemon is told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aemon.core.errors import AemonError

log = logging.getLogger("aemon.serve")


class Fatal(AemonError):
    """A condition the daemon cannot recover from by retrying (a non-retriable Kafka error, a
    missing permission): logged as one line, then the process exits non-zero."""


class StageFailed(AemonError):
    """Raised by :meth:`Service.run` after a stage failed and the daemon drained."""


class Supervisor:
    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self.on_failure = on_failure
        self.tasks: list[asyncio.Task] = []
        self.failure: tuple[str, BaseException] | None = None

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"aemon-{name}")
        task.add_done_callback(lambda t: self._ended(name, t))
        self.tasks.append(task)
        return task

    def _ended(self, name: str, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None or self.failure is not None:
            return
        exc = task.exception()
        assert exc is not None
        self.failure = (name, exc)
        if isinstance(exc, Fatal):
            log.error("%s stage stopped: %s", name, exc)
        else:
            log.error("%s stage failed", name, exc_info=exc)
        self.on_failure(f"{name} stage: {type(exc).__name__}: {exc}")

    @property
    def reason(self) -> str:
        if self.failure is None:
            return ""
        name, exc = self.failure
        return f"{name} stage: {exc}" if isinstance(exc, Fatal) else f"{name} stage failed: {exc!r}"

    async def finish(self, timeout: float, ending: set[str]) -> list[str]:
        """Let the stages named in ``ending`` end by themselves within ``timeout`` s, then cancel
        every stage; return the names of those that had to be cancelled."""
        live = [t for t in self.tasks if not t.done() and t.get_name()[6:] in ending]
        if live:
            await asyncio.wait(live, timeout=timeout)
        late = [t.get_name()[6:] for t in live if not t.done()]
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return late
