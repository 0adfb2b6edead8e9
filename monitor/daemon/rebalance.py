"""Partitions that move: the rebalance listener, and the rule for a lost log.

Before partitions are revoked, what was consumed of them is decided and committed (only as a
member of the group); then the ledger starts them a new epoch and their windows and decisions are
forgotten. A lost log is forgotten the same way and read again from ``auto_offset_reset``.
"""

from __future__ import annotations

import logging

from aiokafka import ConsumerRebalanceListener, TopicPartition

from aemon.daemon.decisions import Decisions
from aemon.daemon.health import Health
from aemon.daemon.intake import Intake
from aemon.daemon.kafka import Consumer
from aemon.daemon.learned import Anchors
from aemon.daemon.ledger import Ledger
from aemon.daemon.metrics import Metrics

log = logging.getLogger("aemon.serve")


class Rebalance(ConsumerRebalanceListener):
    def __init__(
        self,
        *,
        consumer: Consumer,
        ledger: Ledger,
        intake: Intake,
        decisions: Decisions,
        health: Health,
        metrics: Metrics,
        reset_to: str,
        anchors: Anchors,
    ) -> None:
        self.consumer, self.ledger, self.intake = consumer, ledger, intake
        self.decisions, self.health, self.metrics = decisions, health, metrics
        self.reset_to, self.anchors = reset_to, anchors

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.ledger.assign(assigned)
        store = self.anchors.store
        if store is not None:  # the learned models and anchors kept for them, read from now
            store.own([tp.partition for tp in self.ledger.assigned])
        self._owned()
        log.info("assigned %d partition(s)", len(assigned))

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before partitions move: decide and commit what was consumed, as a member of the group.
        Without membership (it was lost, e.g. to a broker outage) nothing is committed: the
        partitions may be someone else's, and the next owner decides them again."""
        tps = list(revoked)
        if tps and self.consumer.in_group():
            await self.intake.flush()
        self.ledger.revoke(tps)
        self._forget(tps)
        for tp in tps:
            self.metrics.forget_lag(tp.topic, tp.partition)
        self._owned()

    async def reset(self, tps: list[TopicPartition]) -> None:
        """The documented rule for a lost log: forget what was read of it, read it again from
        where ``auto_offset_reset`` says; nothing fetched before is committed. (Partitions this
        member no longer owns start there anyway: the broker holds no offset for them.)"""
        self.ledger.reset(tps)
        self._forget(tps)
        owned = [tp for tp in tps if tp in self.consumer.assignment()]
        if not owned:
            return
        try:
            if self.reset_to == "earliest":
                await self.consumer.seek_to_beginning(*owned)
            else:
                await self.consumer.seek_to_end(*owned)
        except Exception as exc:  # the group is rebalancing: the new assignment starts there
            log.info("could not seek %s: %r", owned, exc)

    def _forget(self, tps: list[TopicPartition]) -> None:
        self.intake.forget(tps)
        self.metrics.events_open.dec(self.decisions.drop([tp.partition for tp in tps]))

    def _owned(self) -> None:
        owned = len(self.ledger.assigned)
        self.health.assigned = bool(owned)
        self.metrics.assigned.set(owned)
