"""The broker and the input log, watched: reachability (for readiness), and a log that was lost
or reset under the daemon, which is reported loudly and recovered from by the documented rule:
the partitions concerned are read again from where ``auto_offset_reset`` says.

Three signs of a lost log: the input topic is missing (deleted, or a broker that came back
empty); after an outage the broker no longer holds the offsets this member committed before it;
a partition's log now ends before what was already read from it (re-created, or reset).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition

from aemon.core.errors import AemonError
from aemon.daemon.health import Health
from aemon.daemon.kafka import Clients, retriable
from aemon.daemon.ledger import Ledger
from aemon.daemon.logs import Throttled
from aemon.daemon.metrics import Metrics
from aemon.daemon.stopping import pause
from aemon.daemon.supervisor import Fatal

log = logging.getLogger("aemon.serve")


class BrokerWatch:
    def __init__(
        self,
        *,
        clients: Clients,
        input_topic: str,
        ledger: Ledger,
        health: Health,
        metrics: Metrics,
        on_reset: Callable[[list[TopicPartition]], Awaitable[None]],
        stopping: asyncio.Event,
        reset_to: str = "earliest",
        period_s: float = 1.0,
    ) -> None:
        """``on_reset``: read the given partitions again (their log was lost)."""
        self.clients = clients
        self.input_topic = input_topic
        self.ledger = ledger
        self.health = health
        self.metrics = metrics
        self.on_reset = on_reset
        self.stopping = stopping
        self.reset_to = reset_to
        self.period_s = period_s
        self._topic_seen = False
        self._before: dict[TopicPartition, int] | None = None  # ours when the outage began
        self._lost_until = 0.0
        self._stale = False  # the consumer's metadata may predate an outage or a missing topic
        self._warn = Throttled(log).warning

    async def first_contact(self, where: str, wait_s: float) -> bool:
        """At start-up: wait for the broker with bounded backoff, saying every 10 s what is
        awaited; False if the daemon stops first. Gives up after ``wait_s`` (0: never)."""
        start, delay = time.monotonic(), 0.25
        while True:
            try:
                await self.clients.cluster.topics()
                self.health.broker_down_since = None  # not an outage: nothing was sent yet
                self.metrics.broker_reachable.set(1)
                return True
            except Exception as exc:
                if not retriable(exc):
                    raise AemonError(f"broker {where}: {exc!r}") from None
                self.health.broker_down()
                if wait_s and time.monotonic() - start >= wait_s:
                    raise AemonError(
                        f"broker {where} did not answer within {wait_s:g} s (broker_wait_s): "
                        f"{exc!r}"
                    ) from None
                self._warn(f"waiting for the broker at {where} ({exc!r})")
            if await pause(delay, self.stopping):
                return False
            delay = min(2 * delay, 5.0)

    async def run(self) -> None:
        while not await pause(self.period_s, self.stopping):
            await self.check()

    async def check(self) -> None:
        try:
            topics = await self.clients.cluster.topics()
        except Exception as exc:
            if not retriable(exc):
                raise Fatal(f"the broker refuses the daemon: {exc!r}") from exc
            self._unreachable(exc)
            return
        down = self.health.broker_up()
        self.metrics.broker_reachable.set(1)
        if down:
            log.warning("broker reachable again after %.0f s; checking the input log", down)
            self.ledger.outage_ended()
        await self._refreshed(self.input_topic in topics)
        if self.input_topic not in topics:
            if self._topic_seen:
                self.lost("topic_missing", f"input topic {self.input_topic} does not exist")
            else:
                self._warn(f"input topic {self.input_topic} does not exist yet; waiting for it")
        elif self._before is not None:
            await self._offsets_kept(self._before)
        else:
            past = [tp for tp in self._assignment() if self._past_end(tp)]
            if past:
                for tp in past:
                    self.lost(
                        "past_end",
                        f"{tp.topic}/{tp.partition}: read up to offset "
                        f"{self.ledger.fetched_offset(tp)}, "
                        f"the log now ends at {self.clients.consumer.highwater(tp)}",
                    )
                await self.on_reset(past)
        self._topic_seen |= self.input_topic in topics
        if self.health.log_lost and time.monotonic() >= self._lost_until:
            log.info("input log usable again")
            self.health.log_lost = None

    async def _refreshed(self, present: bool) -> None:
        """The consumer's metadata refreshed where it may be stale: the input topic, lost in an
        outage or deleted, exists again (``present``), perhaps with other partitions (a topic
        whose count changed is rebalanced over at once, not after ``metadata_max_age_ms``).
        Never while it is missing: the request may create it."""
        if not present:
            self._stale = True
        elif self._stale:
            try:
                await asyncio.wait_for(self.clients.consumer.refresh(), 3)
            except Exception:  # the next check asks again
                return
            self._stale = False

    async def _offsets_kept(self, before: dict[TopicPartition, int]) -> None:
        """After an outage: does the broker still hold the offsets committed before it?"""
        gone = []
        for tp, ours in before.items():
            try:
                theirs = await asyncio.wait_for(self.clients.consumer.committed(tp), 3)
            except Exception:  # the group is still rejoining: ask again next time
                return
            if theirs is None or theirs < ours:
                gone.append(tp)
                self.lost(
                    "offsets_lost",
                    f"{tp.topic}/{tp.partition}: the broker holds offset {theirs} for the group, "
                    f"{ours} was committed before the outage",
                )
        self._before = None
        if gone:
            await self.on_reset(gone)

    def _assignment(self) -> set[TopicPartition]:
        try:
            return set(self.clients.consumer.assignment())
        except Exception:  # aiokafka raises while it rejoins the group
            return set()

    def _past_end(self, tp: TopicPartition) -> bool:
        done = self.ledger.fetched_offset(tp)
        try:
            high = self.clients.consumer.highwater(tp)
        except AssertionError:  # no longer assigned
            return False
        return done is not None and high is not None and done > high

    def lost(self, reason: str, detail: str) -> None:
        """Report a lost or reset input log: an error line, the metric, and not ready for the
        broker grace, so that probes see it."""
        if self.health.log_lost != detail:
            log.error(
                "input log lost or reset (%s); reading it again from the %s offset",
                detail,
                self.reset_to,
            )
            self.metrics.log_lost.labels(reason).inc()
        self.health.log_lost = detail
        self._lost_until = time.monotonic() + self.health.grace_s

    def _unreachable(self, exc: BaseException) -> None:
        self._stale = True
        if self.health.broker_down_since is None:
            self._before = self.ledger.committed_offsets()
        self.health.broker_down()
        self.metrics.broker_reachable.set(0)
        self.metrics.errors.labels("broker", type(exc).__name__[:40]).inc()
        since = self.health.broker_down_since or time.monotonic()
        self._warn(f"broker unreachable for {time.monotonic() - since:.0f} s ({exc!r}); waiting")
