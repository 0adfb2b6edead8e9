"""Partitions that move: the rebalance listener, and the rule for a lost log.

Before partitions are revoked, what was consumed of them is decided and committed (only as a
member of the group). aiokafka's rebalances are eager: every partition of every member is
revoked, then each member is assigned its share, mostly what it had. So a partition revoked with
all it consumed decided is held as it is (its windows, score histories, events, learners) until
the assignment: assigned again, it is read on from where it was, not from its commit (which
stays a series' history behind); assigned elsewhere, or revoked without membership, the ledger
starts it a new epoch and its windows and decisions are forgotten. A lost log is forgotten the
same way and read again from ``auto_offset_reset``.
"""

from __future__ import annotations

import asyncio
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
COMMITTED_WAIT_S = 5.0  # for the group's commit of a partition held over a rebalance


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
        held = self.ledger.held
        again = [tp for tp in held if tp in assigned]
        ours = await asyncio.gather(*(self._still_ours(tp) for tp in again))
        back = [tp for tp, mine in zip(again, ours, strict=True) if mine]
        self._revoke([tp for tp in held if tp not in back])
        for tp, offset in self.ledger.resume(back).items():
            self.consumer.seek(tp, offset)
        self.ledger.assign(assigned)
        store = self.anchors.store
        if store is not None:  # the learned models and anchors kept for them, read from now
            store.own([tp.partition for tp in self.ledger.assigned])
        self._owned()
        kept = f" ({len(back)} read on from where they were)" if back else ""
        log.info("assigned %d partition(s)%s", len(assigned), kept)

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before partitions move: decide and commit what was consumed, as a member of the group.
        Without membership (it was lost, e.g. to a broker outage) nothing is committed: the
        partitions may be someone else's, and the next owner decides them again."""
        tps, kept = list(revoked), []
        if tps and self.consumer.in_group():
            self.ledger.hold(tps)
            await self.intake.flush()
            kept = self.ledger.keep(tps)
        self._revoke([tp for tp in tps if tp not in kept])
        self._owned()

    async def _still_ours(self, tp: TopicPartition) -> bool:
        """Whether the group's commit of held ``tp`` is still this member's last: no one else
        read it meanwhile (e.g. while this member was out of the group). Unknown: no."""
        try:
            theirs = await asyncio.wait_for(self.consumer.committed(tp), COMMITTED_WAIT_S)
        except Exception as exc:  # the broker is away: read it again from the commit
            log.info("could not read the commit of %s/%d: %r", tp.topic, tp.partition, exc)
            return False
        return theirs == self.ledger.committed_offset(tp)

    def _revoke(self, tps: list[TopicPartition]) -> None:
        self.ledger.revoke(tps)
        self._forget(tps)
        for tp in tps:
            self.metrics.forget_lag(tp.topic, tp.partition)

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
        announced, raised = self.decisions.drop([tp.partition for tp in tps])
        self.metrics.events_open.dec(announced)
        self.metrics.raised_thresholds.dec(raised)

    def _owned(self) -> None:
        owned = len(self.ledger.assigned)
        self.health.assigned = bool(owned)
        self.metrics.assigned.set(owned)
