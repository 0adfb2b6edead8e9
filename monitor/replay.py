"""Replay a window or sample CSV into a Kafka topic, as fast as possible or at a fixed rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from tqdm.auto import tqdm

from monitor.codec import encode_window, f32_headers
from training.datasets.table import WindowTable, read_windows

CHUNK = 5000


def messages(table: WindowTable, fmt: str, samples: bool):
    """(key, value, headers) for every row, in file order."""
    streams = table.stream if table.stream is not None else np.full(len(table), "replay")
    seqs = table.seq if table.seq is not None else np.arange(len(table))
    for i, values in enumerate(table.values):
        stream, seq = str(streams[i]), int(seqs[i])
        ts = None if table.ts is None else float(table.ts[i])
        if samples:
            doc: dict[str, object] = {"stream": stream, "seq": seq, "values": values.tolist()}
            if ts is not None:
                doc["ts"] = ts
            yield stream.encode(), orjson.dumps(doc), None
        elif fmt == "f32":
            yield stream.encode(), values.astype("<f4").tobytes(), f32_headers(stream, seq)
        else:
            yield stream.encode(), encode_window(stream, seq, values, ts), None


async def produce(
    bootstrap: str,
    topic: str,
    msgs: Iterable[tuple[bytes, bytes, list | None]],
    *,
    total: int,
    rate: float | None = None,
    progress: bool = True,
    security: dict | None = None,
) -> int:
    """Send ``(key, value, headers)`` messages (``acks=all``), paced to ``rate`` per second."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        **(security or {}),
    )
    await producer.start()
    sent = 0
    try:
        start = time.perf_counter()
        pending = []
        with tqdm(
            total=total, desc="replay", unit="msg", disable=None if progress else True
        ) as bar:
            for key, value, headers in msgs:
                if rate and (delay := start + sent / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                pending.append(await producer.send(topic, value, key=key, headers=headers))
                sent += 1
                if len(pending) >= CHUNK:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    pending.clear()
            await asyncio.gather(*pending)
            bar.update(len(pending))
    finally:
        await producer.stop()
    return sent


async def replay(
    path: str | Path,
    topic: str,
    bootstrap: str,
    *,
    rate: float | None = None,
    fmt: str = "json",
    samples: bool = False,
    progress: bool = True,
    security: dict | None = None,
) -> int:
    """Produce every row of ``path`` to ``topic`` (key = stream); returns the count sent."""
    table = read_windows(path)
    return await produce(
        bootstrap,
        topic,
        messages(table, fmt, samples),
        total=len(table),
        rate=rate,
        progress=progress,
        security=security,
    )
