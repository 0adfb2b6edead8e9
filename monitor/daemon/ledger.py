"""The one owner of partition state: per input partition, what was fetched, acknowledged and
committed, where lag counts from, and the epoch; and the batches in flight.

Modelled on aiokafka's ``TopicPartitionState``: every position a stage reads or moves lives
here, each method says who calls it, and :meth:`Ledger.committable` is the only place that
decides what may be committed. A partition revoked (and not held), or whose log was lost,
starts a new *epoch*: whatever was fetched in an older one is never decided or committed by this
member (the next owner, or the re-read, decides it). A rebalance revokes every partition and
assigns again those a member keeps: one *held* over it (nothing more taken of it, everything
taken decided) keeps its state and epoch, and goes on from what was taken if it comes back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import TopicPartition


@dataclass
class PartitionState:
    epoch: int = 0
    assigned: bool = False
    fetched: int | None = None  # next offset to fetch, as the intake last took records
    decided: int | None = None  # next offset after the last fully acknowledged batch
    acknowledged: int | None = None  # what of it may be committed (a restart's re-read kept)
    committed: int | None = None  # what this member last committed
    baseline: int | None = None  # where consumption started (lag before the first commit)
    anchors: dict[str, tuple[int, int]] | None = None  # those of ``acknowledged`` (see Batch)
    held: bool = False  # over a rebalance: nothing more is taken of it, its state is kept

    def forget(self) -> None:
        self.epoch += 1
        self.fetched = self.decided = self.acknowledged = self.committed = self.baseline = None
        self.anchors = None
        self.held = False


@dataclass
class Commit:
    """What :meth:`Ledger.committable` answers: the offsets to commit now, and the partitions
    whose acknowledged offset lies past the log end (a lost log, never committed)."""

    offsets: dict[TopicPartition, int]
    past_end: list[tuple[TopicPartition, str]]
    # of ``offsets``, those that may only be committed once these anchors are kept
    anchors: dict[TopicPartition, dict[str, tuple[int, int]]]


class Ledger:
    def __init__(self) -> None:
        self.parts: dict[TopicPartition, PartitionState] = {}
        self.in_flight = 0  # batches queued and not yet settled by the committer
        self.fresh_after_ms: int | None = None  # after a broker outage: trust newer fetches only
        self._settled = asyncio.Event()
        self._settled.set()

    def _state(self, tp: TopicPartition) -> PartitionState:
        st = self.parts.get(tp)
        if st is None:
            st = self.parts[tp] = PartitionState()
        return st

    # ----- membership (the rebalance listener, the watch) ---------------------------------
    def assign(self, tps: Iterable[TopicPartition]) -> None:
        """The partitions assigned to this member now, all of them (rebalance listener)."""
        now = set(tps)
        for tp in now:
            self._state(tp)
        for tp, st in self.parts.items():
            st.assigned = tp in now

    def hold(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions being revoked as a member (rebalance listener, before its flush): the
        intake takes no more of them (:attr:`taking`), so that the flush can decide all it took."""
        for tp in tps:
            self._state(tp).held = True

    def keep(self, tps: Iterable[TopicPartition]) -> list[TopicPartition]:
        """After the flush: of the held partitions ``tps``, those whose every record taken is
        decided, now not owned but kept as they are until the assignment (:meth:`resume` or
        :meth:`revoke`); the others are to be revoked."""
        kept = []
        for tp in tps:
            st = self._state(tp)
            if st.held and st.fetched is not None and st.fetched == st.decided:
                st.assigned = False
                kept.append(tp)
        return kept

    def resume(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Held partitions assigned again (rebalance listener): owned as before, taken on from
        where the intake left them; the offsets to read them from."""
        offsets = {}
        for tp in tps:
            st = self._state(tp)
            st.held, st.assigned = False, True
            assert st.fetched is not None  # (kept: every record taken was decided)
            offsets[tp] = st.fetched
        return offsets

    @property
    def held(self) -> list[TopicPartition]:
        return [tp for tp, st in self.parts.items() if st.held]

    def revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions taken away (rebalance listener): a new epoch, not owned."""
        for tp in tps:
            st = self._state(tp)
            st.forget()
            st.assigned = False

    def reset(self, tps: Iterable[TopicPartition]) -> None:
        """A lost or reset log (watch): a new epoch; still owned, read again."""
        for tp in tps:
            self._state(tp).forget()

    def outage_ended(self) -> None:
        """The broker is back (the watch): what it said before about log ends is no evidence
        until a fetch answers again."""
        self.fresh_after_ms = int(time.time() * 1000)

    @property
    def assigned(self) -> set[TopicPartition]:
        return {tp for tp, st in self.parts.items() if st.assigned}

    @property
    def taking(self) -> set[TopicPartition]:
        """Those the intake takes records of: owned and not held over a rebalance."""
        return {tp for tp, st in self.parts.items() if st.assigned and not st.held}

    # ----- the intake ---------------------------------------------------------------------
    def epoch(self, tp: TopicPartition) -> int:
        st = self.parts.get(tp)
        return 0 if st is None else st.epoch

    def fetched(self, tp: TopicPartition, first: int, after: int) -> int:
        """Records ``first``..``after - 1`` taken into a batch; returns their epoch."""
        st = self._state(tp)
        st.fetched = after
        if st.baseline is None:
            st.baseline = first
        return st.epoch

    def handed(self) -> None:
        """A batch was queued for scoring (the intake)."""
        self.in_flight += 1
        self._settled.clear()

    # ----- scoring, publishing, committing ------------------------------------------------
    def stale(self, epochs: dict[TopicPartition, int]) -> set[int]:
        """Of a batch's partitions (with the epoch each was fetched in), the numbers of those
        whose epoch has ended since: their rows are not decided."""
        return {tp.partition for tp, e in epochs.items() if self.epoch(tp) != e}

    def acknowledged(
        self,
        offsets: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
        epochs: dict[TopicPartition, int],
        anchors: dict[TopicPartition, dict[str, tuple[int, int]]],
    ) -> None:
        """Every message of a batch is acknowledged (the publisher): decided up to ``ends``, and
        ``offsets`` may be committed (once their ``anchors`` are kept; a partition without an
        offset there waits for a later batch's), unless their partition moved to a new epoch
        since the fetch."""
        for tp, end in ends.items():
            st = self.parts.get(tp)
            if st is None or st.epoch != epochs.get(tp, 0):
                continue
            st.decided = end
            if tp in offsets:
                st.acknowledged, st.anchors = offsets[tp], anchors.get(tp)

    def committable(
        self,
        high: Callable[[TopicPartition], int | None],
        last_poll: Callable[[TopicPartition], int | None],
    ) -> Commit:
        """The offsets that may be committed now: owned, acknowledged past what was committed,
        fetched since the last broker outage ended (``last_poll``: ms of the partition's last
        fetch answer), and not past the log end the broker reports (``high``)."""
        out = Commit({}, [], {})
        after = self.fresh_after_ms
        for tp, st in self.parts.items():
            offset = st.acknowledged
            done = -1 if st.committed is None else st.committed
            if not st.assigned or offset is None or offset <= done:
                continue
            if after is not None and (last_poll(tp) or 0) < after:
                continue  # held until a fetch answers after the outage
            end = high(tp)
            if end is not None and offset > end:
                out.past_end.append((tp, f"offset {offset} is past the log end {end}"))
                st.acknowledged = st.committed
                continue
            out.offsets[tp] = offset
            if st.anchors:
                out.anchors[tp] = st.anchors
        return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """The broker took these offsets (the committer)."""
        for tp, offset in offsets.items():
            st = self.parts.get(tp)
            if st is not None:
                st.committed = offset

    def settled(self, batches: int) -> None:
        """``batches`` queued batches are done with: committed, or given up on (the committer)."""
        self.in_flight = max(0, self.in_flight - batches)
        if not self.in_flight:
            self._settled.set()

    async def all_settled(self) -> None:
        """Wait until every batch queued so far is settled (a rebalance's flush)."""
        await self._settled.wait()

    # ----- what the watch and the lag gauges read -----------------------------------------
    def committed_offsets(self) -> dict[TopicPartition, int]:
        return {tp: st.committed for tp, st in self.parts.items() if st.committed is not None}

    def committed_offset(self, tp: TopicPartition) -> int | None:
        st = self.parts.get(tp)
        return None if st is None else st.committed

    def fetched_offset(self, tp: TopicPartition) -> int | None:
        st = self.parts.get(tp)
        return None if st is None else st.fetched

    def needs_baseline(self) -> list[TopicPartition]:
        return [
            tp
            for tp, st in self.parts.items()
            if st.assigned and st.committed is None and st.baseline is None
        ]

    def set_baseline(self, tp: TopicPartition, offset: int) -> None:
        """Where consumption of ``tp`` starts, asked of the consumer (the committer)."""
        st = self.parts.get(tp)
        if st is not None and st.assigned and st.baseline is None:
            st.baseline = offset

    def done(self, tp: TopicPartition) -> int | None:
        """What lag counts from: the end of what was decided, else where consumption started.
        Not the committed offset: that stays behind what a restart must read again (a series'
        windows and histories), which is no backlog."""
        st = self.parts.get(tp)
        if st is None:
            return None
        return st.decided if st.decided is not None else st.baseline

    def kept(self, tp: TopicPartition) -> int | None:
        """Messages decided but not committed: what a restart, or a replica taking the
        partition over, reads again to decide exactly as this member would have."""
        st = self.parts.get(tp)
        if st is None or st.decided is None or st.committed is None:
            return None
        return max(0, st.decided - st.committed)
