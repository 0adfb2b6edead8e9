"""Replay a window or sample CSV into a Kafka topic, as fast as possible or at a fixed rate; and
end sample streams (their end markers)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm.auto import tqdm

from aemon.core.errors import AemonError, ConfigError, DataError
from aemon.core.table import WindowTable, read_windows
from aemon.daemon.codec import encode_end, encode_window, f32_headers
from aemon.training.datasets.samples import Samples, read_samples

CHUNK = 5000


def sample_messages(samples: Samples, by_name: bool = False, with_seq: bool = True):
    """(key, value, None) for every sample row, in file order: ``stream``, ``seq`` (the CSV's, or
    the count of the stream's samples so far; none without ``with_seq``, as Telegraf and
    prometheus-kafka-adapter send theirs), ``ts`` (epoch seconds) and ``values`` (the metrics
    its stream has: an array in column order, or with ``by_name`` an object by column name, as
    a producer writing a map sends them); after a row whose ``end`` is 1, its stream's end
    marker."""
    counts: dict[str, int] = {}
    values = samples.values.astype(np.float32)
    streams = samples.stream.tolist()
    if np.isnan(values).any():  # streams of different metrics: each sends its own
        columns = {s: list(c) for s, c in samples.columns().items()}
        rows = [values[i, columns[s]].tolist() for i, s in enumerate(streams)]
        names = {s: [samples.channels[j] for j in c] for s, c in columns.items()}
    else:
        rows = values.tolist()
        names = dict.fromkeys(streams, samples.channels)
    for i, stream in enumerate(streams):
        seq = counts.get(stream, 0) if samples.seq is None else int(samples.seq[i])
        counts[stream] = seq + 1
        row = dict(zip(names[stream], rows[i], strict=True)) if by_name else rows[i]
        doc = {"stream": stream, "seq": seq, "ts": float(samples.ts[i]), "values": row}
        if not with_seq:
            del doc["seq"]
        yield stream.encode(), orjson.dumps(doc), None
        if samples.end is not None and samples.end[i]:
            counts[stream] = 0
            yield stream.encode(), encode_end(stream), None


def message_count(samples: Samples) -> int:
    """How many messages :func:`sample_messages` sends: a sample each, and the end markers."""
    return len(samples) + (0 if samples.end is None else int(samples.end.sum()))


def check_counted(samples: Samples) -> None:
    """Refuse, in one line, a CSV whose ``seq`` jumps within a stream: sent without seq, the
    daemon counts the stream's samples and would not see the gap (windows across it). After
    an end it counts afresh, as a stream's ``seq`` may then."""
    if samples.seq is None:
        return
    ends = samples.end.tolist() if samples.end is not None else [False] * len(samples)
    last: dict[str, int] = {}
    for stream, seq, end in zip(samples.stream.tolist(), samples.seq.tolist(), ends, strict=True):
        if stream in last and seq != last[stream] + 1:
            raise DataError(
                f"--without-seq: stream {stream[:64]!r} goes from seq {last[stream]} to {seq}; "
                "without seq the daemon counts its samples and would window across the gap: "
                "replay it with its seq"
            )
        last[stream] = seq
        if end:
            del last[stream]


def messages(table: WindowTable, fmt: str):
    """(key, value, headers) for every window row, in file order."""
    streams = table.stream if table.stream is not None else np.full(len(table), "replay")
    seqs = table.seq if table.seq is not None else np.arange(len(table))
    for i, values in enumerate(table.values):
        stream, seq = str(streams[i]), int(seqs[i])
        ts = None if table.ts is None else float(table.ts[i])
        if fmt == "f32":
            yield stream.encode(), values.astype("<f4").tobytes(), f32_headers(stream, seq)
        else:
            yield stream.encode(), encode_window(stream, seq, values, ts), None


@contextlib.asynccontextmanager
async def _producer(
    bootstrap: str, what: str, security: dict | None, **settings: object
) -> AsyncIterator[AIOKafkaProducer]:
    """A started ``acks=all`` producer, stopped on exit; a broker that cannot be reached is
    one line naming the command (``what``)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **settings, **(security or {})
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise AemonError(f"{what}: cannot reach the broker at {bootstrap}: {exc!r}") from None
    try:
        yield producer
    finally:
        with contextlib.suppress(KafkaError):
            await producer.stop()


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
    sent = 0
    pending = []
    async with _producer(bootstrap, "replay", security, linger_ms=5, max_batch_size=1 << 20) as p:
        try:
            start = time.perf_counter()
            with tqdm(
                total=total, desc="replay", unit="msg", disable=None if progress else True
            ) as bar:
                for key, value, headers in msgs:
                    if rate and (delay := start + sent / rate - time.perf_counter()) > 0:
                        await asyncio.sleep(delay)
                    pending.append(await p.send(topic, value, key=key, headers=headers))
                    sent += 1
                    if len(pending) >= CHUNK:
                        await asyncio.gather(*pending)
                        bar.update(len(pending))
                        pending.clear()
                await asyncio.gather(*pending)
                bar.update(len(pending))
        except KafkaError as exc:
            raise AemonError(
                f"replay to {topic} stopped after {sent} messages (those before the last "
                f"{len(pending)} are acknowledged): {exc!r}"
            ) from None
    return sent


async def replay(
    path: str | Path,
    topic: str,
    bootstrap: str,
    *,
    rate: float | None = None,
    fmt: str = "json",
    samples: bool = False,
    by_name: bool = False,
    missing: str = "refuse",
    without_seq: bool = False,
    progress: bool = True,
    security: dict | None = None,
    metrics: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> int:
    """Produce every row of ``path`` (windows, or with ``samples`` a sample CSV, its values by
    name with ``by_name``, its rows with a missing value refused or left out as ``missing``
    says, its columns as ``metrics`` or ``ignore`` choose them, its samples without seq with
    ``without_seq``) to ``topic`` (key = stream); returns the count sent."""
    if samples:
        rows = read_samples(path, missing, metrics, ignore)
        if without_seq:
            check_counted(rows)
        msgs = sample_messages(rows, by_name, with_seq=not without_seq)
        total = message_count(rows)
    else:
        table = read_windows(path)
        msgs, total = messages(table, fmt), len(table)
    return await produce(
        bootstrap,
        topic,
        msgs,
        total=total,
        rate=rate,
        progress=progress,
        security=security,
    )


async def end_streams(
    bootstrap: str,
    topic: str,
    streams: list[str],
    *,
    partition: int | None = None,
    security: dict | None = None,
) -> dict[str, int]:
    """Send each of ``streams`` its end marker on ``topic`` (``acks=all``, keyed by the stream):
    to ``partition``, else to the one its key goes to, as :func:`replay` sends its samples.
    Returns the partition each marker went to."""
    async with _producer(bootstrap, "end", security) as producer:
        try:
            # all topics' metadata: asking for one that is missing would create it where the
            # brokers create topics on first use
            parts = (await producer.client.fetch_all_metadata()).partitions_for_topic(topic)
            if not parts:
                raise AemonError(f"topic {topic} does not exist")
            if partition is not None and partition not in parts:
                raise ConfigError(
                    f"--partition {partition}: {topic} has partitions 0 to {max(parts)}"
                )
            sent = [
                await producer.send(topic, encode_end(s), key=s.encode(), partition=partition)
                for s in streams
            ]
            done = await asyncio.gather(*sent)
        except KafkaError as exc:
            raise AemonError(f"end markers to {topic} not acknowledged: {exc!r}") from None
    return {s: md.partition for s, md in zip(streams, done, strict=True)}
