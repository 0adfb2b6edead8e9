"""Reading a whole topic back (the NAB runner, the demo's checks and the tests)."""

from __future__ import annotations

from aemon.tail import records


async def read_topic(bootstrap: str, topic: str, timeout: float = 20) -> list:
    """Every record of ``topic`` up to its current end."""
    return [r async for r in records(bootstrap, topic, timeout=timeout)]
