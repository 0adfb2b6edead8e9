"""Waits that watch for stopping: a stage never sits in a wait the daemon's stop cannot end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, TypeVar

T = TypeVar("T")


class _Stopped:
    def __repr__(self) -> str:
        return "STOPPED"


STOPPED: Final = _Stopped()


async def unless_stopped(aw: Awaitable[T], stopping: asyncio.Event) -> T | _Stopped:
    """``await aw``, unless ``stopping`` is set first: then cancel it and return STOPPED."""
    if stopping.is_set():
        if asyncio.iscoroutine(aw):
            aw.close()
        return STOPPED
    work = asyncio.ensure_future(aw)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        return work.result()
    work.cancel()
    return STOPPED


async def pause(seconds: float, stopping: asyncio.Event) -> bool:
    """Sleep ``seconds`` unless stopping; return whether the daemon is stopping."""
    return await unless_stopped(asyncio.sleep(seconds), stopping) is STOPPED
