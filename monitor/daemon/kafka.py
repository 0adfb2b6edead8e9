"""The Kafka clients the daemon's parts are given: what each part uses of them, and aiokafka's.

Parts take these protocols, never aiokafka itself, so that every part is tested with fakes
(``tests/unit/fakes.py``) as well as against the real broker.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from aemon.core.errors import AemonError
from aemon.daemon.config import Settings

# The most bytes the daemon's producer puts in one record batch (aiokafka's 16 KiB default split
# one batch's alerts in many): a topic it writes must take records of this size (Kafka's default
# max.message.bytes, 1 MiB + 12, does).
BATCH_BYTES = 1 << 20
# Records a fetch hands the intake at most: a scoring batch fills from several. More in one call
# leave the cache before they are decoded (`aemon bench`'s bare loop: 196,000-233,000 windows/s
# at 4,096 a call against 250,000-264,000 at 1,024).
FETCH_RECORDS = 1024

Configs = dict[str, dict[str, str]]  # topic -> setting -> value, as the broker reports them


class Consumer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None: ...
    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list]: ...
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
    async def committed(self, tp: TopicPartition) -> int | None: ...
    def highwater(self, tp: TopicPartition) -> int | None: ...
    async def position(self, tp: TopicPartition) -> int: ...
    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    def last_poll_timestamp(self, tp: TopicPartition) -> int | None: ...
    def assignment(self) -> set[TopicPartition]: ...
    async def seek_to_beginning(self, *tps: TopicPartition) -> None: ...
    async def seek_to_end(self, *tps: TopicPartition) -> None: ...
    def in_group(self) -> bool: ...
    async def refresh(self) -> None: ...


class RecordBatch(Protocol):
    def append(
        self, *, timestamp: int | None, key: bytes | None, value: bytes | None, headers: Sequence
    ) -> Any: ...


class Producer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def partitions_for(self, topic: str) -> set[int]: ...
    def create_batch(self) -> RecordBatch: ...
    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Awaitable: ...


async def send_batches(
    producer: Producer, topic: str, partition: int, records: Iterable[dict[str, Any]]
) -> list[Any]:
    """Hand ``records`` (the keywords of ``RecordBatch.append``) to the producer for one topic
    partition, in as few record batches as they fit; the futures of their acknowledgements."""
    futures: list[Any] = []  # aiokafka's futures
    batch = producer.create_batch()
    for record in records:
        if batch.append(**record) is None:  # full: send it, start another
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(**record)  # an empty batch takes any one record
    futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


class Cluster(Protocol):
    """The broker as a whole: which topics exist (raises a ``KafkaError`` or ``OSError``
    when it cannot be reached)."""

    async def close(self) -> None: ...
    async def topics(self) -> set[str]: ...
    async def configs(self, topics: list[str]) -> Configs: ...


@dataclass
class Clients:
    consumer: Consumer
    producer: Producer
    cluster: Cluster
    reader: Callable[[], Any] | None = None  # a consumer outside the group (learned models)


class GroupConsumer(AIOKafkaConsumer):
    """aiokafka's consumer, saying whether it holds its group membership."""

    def in_group(self) -> bool:
        """Whether a commit now would be the member's, not an anonymous one that a fresh group
        accepts from anybody. aiokafka keeps the generation in its coordinator."""
        coordinator = getattr(self, "_coordinator", None)
        return coordinator is not None and getattr(coordinator, "generation", -1) >= 0

    async def refresh(self) -> None:
        """Ask the broker for its metadata now (aiokafka asks every ``metadata_max_age_ms``, 5
        minutes): where the input topic came back with other partitions, the group rebalances
        over them at once. Only for a topic that exists: the request may create a missing one."""
        await self._client.force_metadata_update()


class AdminCluster:
    """:class:`Cluster` over aiokafka's admin client; each call is one metadata request. A client
    that failed to start is closed and replaced, so that waiting for a broker leaks nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin: AIOKafkaAdminClient | None = None

    def _client(self) -> AIOKafkaAdminClient:
        s = self.settings
        return AIOKafkaAdminClient(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.client_id}-watch",
            request_timeout_ms=3000,
            **s.kafka_security(),
        )

    async def start(self) -> None:
        admin = self._client()
        try:
            await asyncio.wait_for(admin.start(), 4)
        except BaseException:
            await admin.close()
            raise
        self.admin = admin

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
            self.admin = None

    async def topics(self) -> set[str]:
        if self.admin is None:
            await self.start()
        assert self.admin is not None
        return set(await asyncio.wait_for(self.admin.list_topics(), 4))

    async def configs(self, topics: list[str]) -> Configs:
        if self.admin is None:
            await self.start()
        assert self.admin is not None
        return await topic_configs(self.admin, topics)


async def topic_configs(admin: AIOKafkaAdminClient, topics: list[str]) -> Configs:
    """The settings the broker reports for each of ``topics`` (which exist), by name; none for
    a topic where it reports none (the embedded broker reports only those set at creation) or
    a broker that does not answer the question."""
    if not topics:
        return {}
    asked = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    try:
        answers = await asyncio.wait_for(admin.describe_configs(asked), 4)
    except Exception:  # a broker that does not say: nothing to check against
        return {}
    out: Configs = {}
    for answer in answers:
        for error, _, _, topic, entries in answer.resources:
            if not error:
                out[topic] = {e[0]: e[1] for e in entries if e[1] is not None}
    return out


def kafka_clients(s: Settings) -> Clients:
    """aiokafka clients as ``s`` configures them (manual commits, ``acks=all``)."""
    sec = s.kafka_security()
    consumer = GroupConsumer(
        bootstrap_servers=s.bootstrap_servers,
        group_id=s.group_id,
        client_id=s.client_id,
        enable_auto_commit=False,
        auto_offset_reset=s.auto_offset_reset,
        session_timeout_ms=s.session_timeout_ms,
        heartbeat_interval_ms=s.heartbeat_interval_ms,
        max_partition_fetch_bytes=max(4 << 20, s.max_message_bytes + 1024),
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        **sec,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=s.bootstrap_servers,
        client_id=s.client_id,
        acks="all",
        enable_idempotence=s.idempotent,
        linger_ms=2,
        max_batch_size=BATCH_BYTES,
        max_request_size=max(1 << 21, 2 * s.max_message_bytes),
        request_timeout_ms=10_000,
        **sec,
    )
    reader = functools.partial(
        AIOKafkaConsumer,
        bootstrap_servers=s.bootstrap_servers,
        client_id=f"{s.client_id}-learned",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        **sec,
    )
    return Clients(consumer, producer, AdminCluster(s), reader)


async def partitions_of(c: AIOKafkaConsumer, topic: str, timeout: float) -> list[TopicPartition]:
    """The partitions of ``topic`` (waiting up to ``timeout`` for a topic just created)."""
    deadline = time.monotonic() + timeout
    while not (parts := c.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise AemonError(f"topic {topic} does not exist (or has no partitions)")
        await c._client.force_metadata_update()  # a topic just created
        await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(parts)]


# An aiokafka error not marked retriable that a broker outage produces and that clears by itself.
TRANSIENT = {"KafkaTimeoutError"}


def retriable(exc: BaseException) -> bool:
    """Whether a Kafka error may go away by itself (aiokafka marks its errors so); anything
    that is not a Kafka error (a socket error, a timeout) is treated as retriable."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in TRANSIENT
    return isinstance(exc, OSError | TimeoutError)
