"""Reading a whole topic back (the NAB runner, the demo's checks and the tests)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from aemon.core.errors import AemonError


async def read_topic(bootstrap: str, topic: str, timeout: float = 20) -> list:
    """Every record of ``topic`` up to its current end, in partition order."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        for _ in range(50):
            if parts:
                break
            await c._client.force_metadata_update()  # topic just created
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list = []
        deadline = time.monotonic() + timeout
        while True:
            batch = await c.getmany(timeout_ms=200)
            for recs in batch.values():
                out.extend(recs)
            highs = [c.highwater(tp) for tp in tps]
            positions = [await c.position(tp) for tp in tps]
            if None not in highs and all(p >= h for p, h in zip(positions, highs, strict=True)):
                return out
            if time.monotonic() > deadline:
                raise AemonError(f"could not read {topic} to its end within {timeout:.0f} s")
    finally:
        await c.stop()
