"""Stage 1: fetch, decode, [window], batch. Refused records become dead letters held in the batch
they arrived with, so that they are published (and their offsets committed) in order.

The intake alone owns the batch it is filling: :meth:`Intake.hand_off` (its own, or a
rebalance's flush) queues it under a lock, so that one batch is never queued twice. Records of
a partition revoked while the fetch was out are dropped: it is not this member's any more (when
it comes back, the consumer starts it again from the committed offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections import deque

import orjson
from aiokafka import TopicPartition

from aemon.core.windowing import LateSample, Windower, clock_values
from aemon.daemon import alerts
from aemon.daemon.batching import Batch, Pool, as_windows
from aemon.daemon.codec import (
    End,
    Limits,
    check_length,
    decode_sample,
    decode_windows,
    encode_end,
    non_finite,
    non_finite_rows,
)
from aemon.daemon.invalid import Invalid
from aemon.daemon.kafka import FETCH_RECORDS, Consumer, Producer, send_batches
from aemon.daemon.learned import Anchors
from aemon.daemon.learning import Learners
from aemon.daemon.ledger import Ledger
from aemon.daemon.logs import Throttled
from aemon.daemon.metrics import Metrics
from aemon.daemon.refusals import RefusalLog
from aemon.daemon.routing import Models
from aemon.daemon.stopping import STOPPED, unless_stopped
from aemon.daemon.swaps import SKIP, Resuming

log = logging.getLogger("aemon.serve")
ANCHOR_EVERY_S = 1.0  # how often a partition with streams without seq takes their anchors
HOLDER_EVERY_S = 60.0  # how often a partition's commit is checked for a stream that went silent
# A partition's record times are noted this often, as a share of ``end_silent_after_s``: how
# close to it a silent stream's end comes
TIME_NOTES = 100


class Intake:
    def __init__(
        self,
        *,
        consumer: Consumer,
        models: Models,
        windower: Windower | None,
        pool: Pool,
        queue: asyncio.Queue[Batch | None],
        ledger: Ledger,
        metrics: Metrics,
        limits: Limits,
        dlq_topic: str,
        dlq_max_bytes: int,
        max_wait_s: float,
        scorer_idle: asyncio.Event,
        stopping: asyncio.Event,
        anchors: Anchors,
        learners: Learners | None = None,
        producer: Producer | None = None,
        end_after_s: float = 0.0,
    ) -> None:
        """``producer`` and ``end_after_s`` (> 0): send the end marker of a sample stream that
        sent nothing for that long of its partition's record time."""
        self.consumer = consumer
        self.models = models
        self.windower = windower
        self.pool = pool
        self.queue = queue
        self.ledger = ledger
        self.metrics = metrics
        self.limits = limits
        self.dlq_topic, self.dlq_max_bytes = dlq_topic, dlq_max_bytes
        self.wait = max_wait_s
        self.scorer_idle = scorer_idle
        self.stopping = stopping
        self.learners = learners
        self.anchors = anchors
        self._restored: set[int] = set()  # partitions whose anchors were read since assigned
        self.resuming = Resuming()  # the swap points read with them
        self._anchored: dict[int, float] = {}  # when each partition's anchors were last taken
        self.anchor_every_s = ANCHOR_EVERY_S
        self._holders: dict[int, float] = {}  # when each partition's holder was last looked at
        self.holder_every_s = min(HOLDER_EVERY_S, end_after_s / 10) or HOLDER_EVERY_S
        self._silent = Throttled(log, 3600.0)
        self.producer, self.end_after_s = producer, end_after_s
        self._times: dict[int, deque[tuple[int, float]]] = {}  # per partition: (offset, time)
        self._ending: set[tuple[int, str]] = set()  # streams whose end marker is on its way
        self._sending: set[asyncio.Future] = set()
        self._end_failed = Throttled(log, 60.0)
        self.refusals = RefusalLog()
        self._split, self._gap, self._unheld = Throttled(log), Throttled(log), Throttled(log)
        self.batch: Batch | None = None
        self._handing = asyncio.Lock()

    async def run(self) -> None:
        """Fetch into batches until stopping; then hand the batch in hand on, and end the
        queue."""
        self.batch = await self._fresh()
        while self.batch is not None and not self.stopping.is_set():
            batch = self.batch
            left = max(0.0, self.wait - (time.monotonic() - batch.opened)) if batch.n else self.wait
            fetched = await unless_stopped(
                self.consumer.getmany(
                    timeout_ms=int(left * 1000), max_records=min(batch.room, FETCH_RECORDS)
                ),
                self.stopping,
            )
            if fetched is STOPPED:
                break
            assert isinstance(fetched, dict)
            for tp in await self._restore(fetched):
                del fetched[tp]  # moved while its anchors were read: fetched again from its commit
            async with self._handing:  # a flush's hand-off in progress ends first
                batch = self.batch  # the flush may have handed the old one off
                if batch is None:
                    break
                self._take_fetched(fetched)
            # its records are freed now, while their memory is still in the cache, not after the
            # next fetch has made its own (measured: 0.4-0.7 us a float32 window less)
            del fetched
            if batch.full or (not batch.empty and self._ready(batch)):
                await self.hand_off()
        if self.batch is None:  # stopped waiting for a free batch: the drain still commits
            self.batch = self.pool.rowless()
        self._commit_counted(self.batch)
        if not self.batch.empty:
            await self._queue(self.batch, every=True)  # the drain decides what is in hand
        self.batch = None
        await self.queue.put(None)

    async def _restore(self, fetched: dict[TopicPartition, list]) -> list[TopicPartition]:
        """Before a partition's first records since it was assigned: the anchors kept with its
        commit, so that its streams without seq are counted on from where they were. Returns
        the partitions that moved while their anchors were read (their records are not this
        epoch's: the consumer fetches them again from the commit)."""
        store = self.anchors.store
        if self.windower is None or store is None:
            return []
        moved = []
        for tp, records in fetched.items():
            if tp.partition in self._restored or tp not in self.ledger.taking or not records:
                continue
            epoch = self.ledger.epoch(tp)
            anchors = await store.anchors_of(tp.partition)
            if tp in self.ledger.taking and self.ledger.epoch(tp) == epoch:
                self.windower.restore(tp.partition, anchors, records[0].offset)
                self.resuming.restore(tp.partition, store.swaps.get(tp.partition, {}))
                self._restored.add(tp.partition)
            else:
                moved.append(tp)
        return moved

    def _ready(self, batch: Batch) -> bool:
        """A partial batch goes at once to an idle scorer with nothing queued; else when it has
        waited ``max_wait_s`` (batches fill while the scorer is busy)."""
        if self.scorer_idle.is_set() and self.queue.empty():
            return True
        return time.monotonic() - batch.opened >= self.wait

    async def _fresh(self) -> Batch | None:
        batch = await unless_stopped(self.pool.take(), self.stopping)
        return None if batch is STOPPED else batch  # type: ignore[return-value]

    async def _queue(self, batch: Batch, every: bool = False) -> None:
        """Queue ``batch`` with what each of its partitions may commit. A partition with
        streams without seq commits only with their anchors, taken at most every
        ``anchor_every_s`` (each costs a pass over its streams, and a record the committer
        keeps), or for ``every`` partition (a flush, the drain)."""
        w = self.windower
        if w is not None:
            now = time.monotonic()
            for tp in list(batch.commit):
                p = tp.partition
                batch.commit[tp] = w.safe_offset(p, batch.commit[tp])
                if p not in self._holders or now - self._holders[p] >= self.holder_every_s:
                    self._holders[p] = now
                    self._silent_holder(tp, batch.ends[tp])
                    if self.end_after_s and self.producer is not None:
                        self._end_silent(tp)
                if self.anchors.store is None or not w.counts(p):
                    continue
                if (
                    every
                    or p not in self._anchored
                    or now - self._anchored[p] >= self.anchor_every_s
                ):
                    done = self.ledger.committed_offset(tp)
                    if done is not None:
                        w.committed(p, done)  # ended streams' anchors go once it passes them
                    batch.anchors[tp] = w.anchors(p)  # kept before the commit (the committer)
                    self._anchored[p] = now
                else:
                    del batch.commit[tp]  # committed with a later batch that takes them
        await self.queue.put(batch)
        self.ledger.handed()

    def _silent_holder(self, tp: TopicPartition, end: int) -> None:
        """Name the stream that holds ``tp``'s commit when it has sent nothing for longer than
        a partition's streams' whole re-read span (each stream's windows' history): one that
        stopped keeps the commit where it stopped until it sends again or is ended; and count
        such streams where the daemon does not end them (``aemon_stopped_streams``)."""
        assert self.windower is not None
        w, found = self.windower, self.windower.holder(tp.partition)
        span = 0 if found is None else found[3] * (w.length + w.history)
        if not self.end_after_s:
            stopped = [] if found is None else w.silent(tp.partition, end - span)
            self.metrics.stopped_streams.labels(tp.topic, str(tp.partition)).set(len(stopped))
        if found is None:
            return
        stream, held, last, _ = found
        if end - last > span:
            self._silent.warning(
                f"stream {stream[:64]!r} sent nothing in the last {end - last - 1:,} messages of "
                f"{tp.topic}/{tp.partition} and holds its commit at offset {held} or before (its "
                "windows' history, an open event's): a restart re-reads everything since, until "
                "it sends again (aemon_reread_messages); "
                + (
                    f"it is ended once it has sent nothing for {self.end_after_s:g} s "
                    "(end_silent_after_s)"
                    if self.end_after_s
                    else "if it has stopped for good, end it: aemon end --topic "
                    f"{shlex.quote(tp.topic)} --partition {tp.partition} {shlex.quote(stream)}"
                )
            )

    def _note_time(self, partition: int, offset: int, ts: float) -> None:
        """Note the record time at ``offset`` of ``partition`` (every ``end_after_s`` /
        ``TIME_NOTES`` of it, whatever the fetches hold): where its streams' last samples lie
        in time."""
        notes = self._times.setdefault(partition, deque())
        if not notes or ts - notes[-1][1] >= self.end_after_s / TIME_NOTES:
            notes.append((offset, ts))

    def _end_silent(self, tp: TopicPartition) -> None:
        """Send the end marker of each stream of ``tp`` whose last sample came ``end_after_s``
        or more of the partition's record time before its latest one (once, until read back),
        with that sample's offset (``after``): a stream that sends again meanwhile goes on."""
        assert self.windower is not None and self.producer is not None
        notes = self._times.get(tp.partition)
        if not notes:
            return
        then = notes[-1][1] - self.end_after_s
        while len(notes) > 1 and notes[1][1] <= then:
            notes.popleft()
        if notes[0][1] > then:
            return  # less than that much of the partition's time read yet
        for stream, last in self.windower.silent(tp.partition, notes[0][0]):
            if (tp.partition, stream) not in self._ending:
                self._ending.add((tp.partition, stream))
                sending = asyncio.ensure_future(self._send_end(tp, stream, last))
                self._sending.add(sending)
                sending.add_done_callback(self._sending.discard)

    async def _send_end(self, tp: TopicPartition, stream: str, last: int) -> None:
        assert self.producer is not None
        marker = encode_end(stream, last)
        record = {"timestamp": None, "key": stream.encode(), "value": marker, "headers": []}
        try:
            for sent in await send_batches(self.producer, tp.topic, tp.partition, [record]):
                await sent
        except Exception as exc:  # looked at again at the next look
            self._ending.discard((tp.partition, stream))
            self._end_failed.warning(
                f"end marker of stream {stream[:64]!r} not sent to {tp.topic}/{tp.partition} "
                f"({exc!r}); tried again later (end_silent_after_s: the daemon writes end "
                "markers to its input topic)"
            )
        else:
            log.info(
                "stream %r of %s/%d sent nothing for %g s since offset %d: end marker sent",
                stream[:64],
                tp.topic,
                tp.partition,
                self.end_after_s,
                last,
            )

    def _commit_counted(self, batch: Batch) -> None:
        """Before a flush or the drain: each owned partition with streams without seq that
        ``batch`` holds nothing of commits there too, at what was taken of it so far (the
        batches before may have left its commit behind until their anchors' turn)."""
        w = self.windower
        if w is None or self.anchors.store is None:
            return
        for tp in self.ledger.assigned:
            taken = self.ledger.fetched_offset(tp)
            if tp not in batch.commit and taken is not None and w.counts(tp.partition):
                batch.ends[tp] = batch.commit[tp] = taken
                batch.epochs[tp] = self.ledger.epoch(tp)

    async def hand_off(self, every: bool = False) -> None:
        """Queue the batch in hand (if it holds anything) and take a fresh one. Called by the
        intake's loop and by a rebalance's flush (``every``: each partition takes its anchors):
        the lock makes the second caller find the fresh batch, never queue the same one again."""
        async with self._handing:
            batch = self.batch
            if batch is None:
                return
            if every:
                self._commit_counted(batch)
            if batch.empty:
                return
            if await unless_stopped(self._queue(batch, every), self.stopping) is STOPPED:
                return  # still in hand: the drain queues it
            self.batch = None  # queued: never filled again until the pool gives it back
            self.batch = await self._fresh()

    async def flush(self) -> None:
        """Decide and commit everything consumed so far (unless stopping first)."""
        await self.hand_off(every=True)
        await unless_stopped(self.ledger.all_settled(), self.stopping)

    def forget(self, tps: list[TopicPartition]) -> None:
        """Drop the windows of partitions no longer owned (or whose log was lost)."""
        if self.windower is not None:
            self.windower.drop([tp.partition for tp in tps])
        gone = {tp.partition for tp in tps}
        self._restored -= gone
        self.resuming.forget(gone)
        for p in gone:
            self._anchored.pop(p, None)
            self._holders.pop(p, None)
            self._times.pop(p, None)
        self._ending = {e for e in self._ending if e[0] not in gone}
        if self.learners is not None:
            self.learners.drop([tp.partition for tp in tps])

    def _take_fetched(self, fetched: dict[TopicPartition, list]) -> None:
        """Each fetched partition that this replica is taking into the batch in hand."""
        taking = self.ledger.taking
        for tp, records in fetched.items():
            if tp in taking:
                self.take(tp, records)

    def take(self, tp: TopicPartition, records: list) -> None:
        batch = self.batch
        assert batch is not None
        if records:
            batch.ends[tp] = batch.commit[tp] = records[-1].offset + 1
            batch.epochs[tp] = self.ledger.fetched(tp, records[0].offset, batch.ends[tp])
        if self.windower is not None:
            self._samples(tp, records, batch)
            return
        first = batch.n
        got = decode_windows(records, batch.values[first:], self.limits)
        batch.keep(got.streams, got.seqs, got.ts, got.record_ts)
        batch.parts += [tp.partition] * len(got.streams)
        if not self.models.single:
            batch.models += [self.models.index(st) for st in got.streams]
        for rec, bad in got.refused:
            self._dead_letter(tp, rec, bad, batch)
        bad_rows = set(non_finite_rows(batch.values[first : batch.n]).tolist())
        if not self.models.single:
            bad_rows |= {i for i, m in enumerate(batch.models[first:]) if m is None}
        for i in sorted(bad_rows, reverse=True):
            batch.drop(first + i)
            rec = got.kept[i]
            self._dead_letter(tp, rec, self._refusal(rec), batch)

    def _refusal(self, rec) -> Invalid:
        """Why a decoded window row was dropped: no model for its stream, or not finite."""
        stream = None
        for key, v in rec.headers or ():
            if key == "stream":
                stream = v.decode(errors="replace")
        if stream is None:
            with contextlib.suppress(Exception):
                stream = orjson.loads(rec.value).get("stream")
        if stream is None and rec.key:
            stream = rec.key.decode(errors="replace")
        if not self.models.single and stream is not None and self.models.index(stream) is None:
            return Invalid("no_model", f"no model serves stream {stream[:64]!r}")
        return non_finite()

    def _samples(self, tp: TopicPartition, records: list, batch: Batch) -> None:
        """Push samples into their streams' windows; each completed window fills a row."""
        assert self.windower is not None
        w, p = self.windower, tp.partition
        gaps, split = w.gaps, w.split
        streams: list[str] = []
        seqs: list[int] = []
        ts: list[float] = []
        kafka_ts: list[float] = []
        noting = self.end_after_s > 0
        for rec in records:
            if noting:
                self._note_time(p, rec.offset, rec.timestamp / 1000)
            row = batch.values[batch.n + len(streams)]
            try:
                s = decode_sample(rec.value, rec.timestamp, self.limits, rec.key)
                if isinstance(s, End):
                    self._end(p, rec.offset, s, batch, batch.n + len(streams))
                    continue
                model = self.models.index(s.stream)
                if model is None:
                    raise Invalid("no_model", f"no model serves stream {s.stream[:64]!r}")
                det, takes = self.models.detectors[model], self.models.takes[model]
                values = s.values
                if s.names is not None:
                    values = s.in_order(det.meta.recorded_metrics)
                check_length(len(values), takes.values)
                clock = clock_values(takes.clock, s.ts)
                seq = w.push(p, rec.offset, s.stream, s.seq, values, row, clock)
            except Invalid as bad:
                self._dead_letter(tp, rec, bad, batch)
                continue
            except LateSample as late:
                self._dead_letter(tp, rec, Invalid("late_sample", str(late)), batch)
                continue
            if seq is not None:
                streams.append(s.stream)
                seqs.append(seq)
                ts.append(s.ts)
                kafka_ts.append(rec.timestamp / 1000)
                batch.models.append(model)
                batch.parts.append(p)
                batch.dets.append(det)
                batch.offsets.append(rec.offset)
                if w.history:
                    batch.holds.append(w.history_offset(p, s.stream))
                    batch.hold_seqs.append(w.history_seq(p, s.stream))
                index = w.index(seq)
                resume = self.resuming.at(p, s.stream, det.version, index, rec.offset)
                batch.resumes.append(resume)
                learners = self.learners
                if learners and resume is not SKIP:
                    window = as_windows(row[None], takes.shape)[0]
                    update = learners.push(p, s.stream, det, index, window)
                else:
                    update = None
                batch.learned.append(update)
        batch.keep(streams, seqs, ts, kafka_ts)
        if w.gaps > gaps and w.last_gap is not None:
            self.metrics.sample_gaps.inc(w.gaps - gaps)
            stream, expected, came = w.last_gap
            self._gap.warning(
                f"stream {stream[:64]!r}: seq {came} came where {expected} was next, so its "
                f"window starts again ({w.gaps - gaps} such jumps in this fetch); send seq as 0, "
                "1, 2, ... per stream, every sample"
            )
        if w.split > split and w.last_split is not None:
            self.metrics.split_streams.inc(w.split - split)
            stream, one, other = w.last_split
            self._split.warning(
                f"stream {stream[:64]!r} has samples on partitions {one} and {other}: each "
                "partition windows and decides its share apart; key each message by its stream"
            )

    def _end(self, partition: int, offset: int, marker: End, batch: Batch, row: int) -> None:
        """A stream's end marker: the windows, learner and (before ``row`` of ``batch``, by
        the decisions) the decisions of the stream are forgotten, so its samples no longer hold
        the commit back; a later sample of it starts a new stream. One the daemon sent
        (``after``) is left alone where the stream sent again since."""
        assert self.windower is not None
        stream = marker.stream
        self._ending.discard((partition, stream))
        held = self.windower.end(partition, offset, stream, marker.after)
        model = self.models.index(stream)
        if held and model is not None:
            if self.learners:
                self.learners.end(partition, stream)
            batch.finished.append((row, partition, stream, model))
            self.metrics.streams_ended.inc()
        elif marker.after is None:
            self._unheld.warning(
                f"end marker of stream {stream[:64]!r} at {partition}@{offset}: no such stream "
                "held (it ended before, or sent nothing since the commit)"
            )

    def _dead_letter(self, tp: TopicPartition, rec, bad: Invalid, batch: Batch) -> None:
        self.metrics.invalid.labels(bad.reason).inc()
        self.refusals.note(bad.reason, str(bad), f"{tp.topic}/{tp.partition}@{rec.offset}")
        where = (tp.topic, tp.partition)
        batch.pending.append(
            alerts.dead_letter(self.dlq_topic, rec, bad.reason, str(bad), where, self.dlq_max_bytes)
        )
