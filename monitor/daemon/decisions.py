"""Scored batch -> decisions: alerts (or event messages), per-window score records, counts.

No Kafka here: :class:`Decisions` turns a batch and its scores into the messages to publish and
keeps each stream's decision state (series models: open events, the offsets they hold).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aemon.core.cadence import Cadence, cadence_of
from aemon.core.detector import Detector
from aemon.core.events import Decider, Rule, event_record, raised_line
from aemon.core.windowing import Windower
from aemon.daemon import alerts
from aemon.daemon.batching import Batch
from aemon.daemon.metrics import RAISED_STREAMS
from aemon.daemon.routing import Models
from aemon.daemon.scoring import Scored
from aemon.daemon.swaps import SKIP, Resume, SwapPoint

Send = tuple[str, bytes | None, bytes | None, list | None]  # topic, value, key, headers
Keep = tuple[str, int, bytes, bytes]  # a record for a topic partition: topic, partition, key, value

log = logging.getLogger("aemon.serve")


@dataclass
class Decided:
    """A batch's messages and counts, from decision to commit."""

    batch: Batch
    scored: Scored | None
    sends: list[Send]
    keeps: list[Keep] = field(default_factory=list)  # swap points (:mod:`aemon.daemon.swaps`)
    futures: list | None = None
    outages: int = 0  # broker outages seen when sent (an ack from before a later one is doubted)
    decided: int = 0  # windows decided (warm-up windows are scored but not decided again)
    anomalies: int = 0
    alerts: int = 0  # alert or event messages
    opened: int = 0
    resolved: int = 0
    warmup: int = 0
    off_step: int = 0  # streams first found at another step than their model's
    raised: int = 0  # streams whose threshold became raised (Verdict.raised), less those no more


@dataclass
class Totals:
    """What the daemon decided since it started, counted once each batch is acknowledged."""

    windows: int = 0
    anomalies: int = 0
    alerts: int = 0
    opened: int = 0
    resolved: int = 0

    def add(self, d: Decided) -> None:
        self.windows += d.decided
        self.anomalies += d.anomalies
        self.alerts += d.alerts
        self.opened += d.opened
        self.resolved += d.resolved


@dataclass
class _Stream:
    """A stream's decider, the first window this process saw of it, its samples' step against
    its model's, the model its decider judges by, and whether the event open now was announced
    (by this process, or before the swap point it resumed at)."""

    decider: Decider
    first: int
    cadence: Cadence | None
    det: Detector
    announced: bool = False


def from_one(stream: str, warmup: int) -> str:
    """The line for a stream first met at its window 1: its seq from 1, most likely."""
    return (
        f"stream {stream!r} starts at its window 1, not 0 (its seq starts at 1, or its first "
        f"samples are not in the topic): taken as met in the middle, its first {warmup:,} "
        "windows only build its state and decide nothing (aemon_warmup_windows_total); if its "
        "producer counts seq from 1, count from 0"
    )


@dataclass
class Decisions:
    models: Models
    detectors: list[Detector]  # the scorer's (swapped in place on reload)
    windower: Windower | None
    alerts_topic: str
    scores_topic: str
    streams: dict[tuple[int, str], _Stream] = field(default_factory=dict)
    holds: dict[int, dict[str, int]] = field(default_factory=dict)  # partition -> stream -> offset
    # the seq at each hold, for streams whose samples carry none (partition -> stream -> seq)
    hold_seqs: dict[int, dict[str, int]] = field(default_factory=dict)
    # the record that keeps a stream's swap point (LearnedStore.swap_record; None: none kept,
    # and a restart rebuilds a swapped-in model's streams from the windows it re-reads)
    keep_swap: Callable[[int, str, SwapPoint], Keep] | None = None

    def decide(self, batch: Batch, scored: Scored | None, stale: set[int]) -> Decided:
        """Decide ``batch``'s windows, except those of the partitions in ``stale`` (fetched in
        an epoch that has ended: revoked, or their log lost; their next reader decides them)."""
        if self.models.series:
            return self._events(batch, scored, stale)
        return self._windows(batch, scored, stale)

    def _windows(self, batch: Batch, scored: Scored | None, stale: set[int]) -> Decided:
        """Artifacts without an event rule: every window above the threshold is an alert."""
        sends: list[Send] = list(batch.pending)
        if scored is None:
            return Decided(batch, None, sends)
        dets = self.detectors
        if batch.models:  # several models: flags against each row's own model
            thresholds = np.array([dets[m].threshold for m in batch.models[: batch.n]])
            scored.flagged = np.flatnonzero(scored.scores > thresholds)
            scored.top = np.empty((len(scored.flagged), 0), dtype=np.int64)
        scores = scored.scores.tolist()
        tops = alerts.contributors(scored.top, dets[0].input_shape)
        rows = range(batch.n)
        if stale:
            rows = [i for i in rows if batch.parts[i] not in stale]
            keep = set(rows)
            kept = [(i, t) for i, t in zip(scored.flagged.tolist(), tops, strict=True) if i in keep]
            scored.flagged = np.array([i for i, _ in kept], dtype=np.int64)
            tops = [t for _, t in kept]
        for i, top in zip(scored.flagged.tolist(), tops, strict=True):
            det = dets[batch.models[i]] if batch.models else dets[0]
            body = alerts.alert(
                model=det.name,
                model_version=det.version,
                stream=batch.streams[i],
                seq=batch.seqs[i],
                ts=batch.ts[i],
                score=scores[i],
                threshold=det.threshold,
                top=top,
            )
            sends.append((self.alerts_topic, body, batch.streams[i].encode(), None))
        if self.scores_topic:
            flags = scored.flags.tolist()
            for i in rows:
                body = alerts.score_record(
                    batch.streams[i], batch.seqs[i], batch.ts[i], scores[i], flags[i]
                )
                sends.append((self.scores_topic, body, batch.streams[i].encode(), None))
        n, flagged = len(rows), len(scored.flagged)
        return Decided(batch, scored, sends, decided=n, anomalies=flagged, alerts=flagged)

    def _events(self, batch: Batch, scored: Scored | None, stale: set[int]) -> Decided:
        """Series models: each stream's decider judges its windows in order; events open and
        resolve. A window whose history this process has not seen in full (the first H windows
        re-read after a restart) only rebuilds state: it was decided before the restart."""
        d = Decided(batch, scored, list(batch.pending))
        finished, done = batch.finished, 0  # end markers, each before the row it names
        if scored is None:
            for item in finished:
                self._end(d, item, stale)
            d.alerts = d.resolved
            self._hold(batch)
            return d
        w, takes = self.windower, self.models.takes
        assert w is not None
        scores, channels = scored.scores.tolist(), scored.channels
        for i in range(batch.n):
            while done < len(finished) and finished[done][0] <= i:
                self._end(d, finished[done], stale)
                done += 1
            if batch.parts[i] in stale:
                continue
            p, stream, seq, ts, m, det = (
                batch.parts[i],
                batch.streams[i],
                batch.seqs[i],
                batch.ts[i],
                batch.models[i],
                batch.dets[i],
            )
            if (resume := batch.resumes[i]) is not None:
                if resume is SKIP:  # before the swap point a restart resumes at
                    d.warmup += 1
                    continue
                self._resume(d, batch, i, resume)
            idx = w.index(seq)
            st = self.streams.get((p, stream))
            if st is None:
                cadence = cadence_of(stream, det.meta)
                decider = Decider(self._rule(m, det), stream)
                st = self.streams[(p, stream)] = _Stream(decider, idx, cadence, det)
                if idx == 1:  # what a producer counting seq from 1 sends
                    log.warning(from_one(stream, self.models.warmup(m)))
            elif st.det is not det:  # its model was swapped in since the last window
                same = det.meta.scoring == st.det.meta.scoring
                st.decider.adopt(self._rule(m, det), same_scores=same)
                st.det = det
                if not same and self.keep_swap is not None:
                    point = SwapPoint(
                        det.version, idx, batch.offsets[i], st.decider.state(), st.announced
                    )
                    d.keeps.append(self.keep_swap(p, stream, point))
            metrics = takes[m].values  # a row's errors per metric: as many as its model's
            per = None if channels is None or metrics == 1 else channels[i, :metrics]
            v = st.decider.push(seq, ts, scores[i], per)
            if v.raised is not None:
                d.raised += 1 if v.raised else -1
                if v.raised:
                    line = raised_line(stream, ts, v.threshold, st.decider.rule)
                    log.warning(f"{line} and put it in the models directory ({RAISED_STREAMS})")
            if st.cadence is not None and (problem := st.cadence.push(seq, ts)):
                log.warning(problem)
                d.off_step += 1
            if st.first and idx - st.first < self.models.warmup(m):
                d.warmup += 1
                if v.resolved is not None:  # (announced before a swap point resumed at)
                    st.announced = False
                continue
            d.decided += 1
            d.anomalies += v.above
            key, holds = stream.encode(), self.holds.setdefault(p, {})
            if v.resolved is not None and st.announced:
                record = event_record(v.resolved, det, "resolved")
                d.sends.append((self.alerts_topic, alerts.event_message(record), key, None))
                d.resolved += 1
                st.announced = False
            if v.opened is not None:
                v.opened.opened_by = det.version  # its resolution keeps its id after a swap
                record = event_record(v.opened, det, "open")
                d.sends.append((self.alerts_topic, alerts.event_message(record), key, None))
                d.opened += 1
                st.announced = True
                self._hold_event(batch, i)
            if st.decider.event is None:
                holds.pop(stream, None)
                self.hold_seqs.get(p, {}).pop(stream, None)
            if self.scores_topic:
                body = alerts.score_record(stream, seq, ts, scores[i], v.above, v.threshold, v.p)
                d.sends.append((self.scores_topic, body, key, None))
        for item in finished[done:]:
            self._end(d, item, stale)
        d.alerts = d.opened + d.resolved
        self._hold(batch)
        return d

    def _rule(self, m: int, det: Detector) -> Rule:
        """The event rule of model ``det`` (a row's; the one at position ``m`` now, unless it
        was read before a swap)."""
        return self.models.rules[m] if self.models.detectors[m] is det else Rule.from_meta(det.meta)

    def _resume(self, d: Decided, batch: Batch, i: int, resume: Resume) -> None:
        """A restart at a stream's swap point (row ``i``): its decider as the swap left it, its
        warm-up counted from the first window this process read, and the commit held before an
        event open there, so that a restart again re-reads the swap point."""
        p, stream, m, det = batch.parts[i], batch.streams[i], batch.models[i], batch.dets[i]
        point = resume.point
        decider = Decider.resumed(self._rule(m, det), stream, point.state)
        open_ = decider.event is not None
        cadence = cadence_of(stream, det.meta)
        self.streams[(p, stream)] = _Stream(
            decider, resume.first, cadence, det, point.announced and open_
        )
        d.raised += decider.raised
        if open_:
            self._hold_event(batch, i)

    def _hold_event(self, batch: Batch, i: int) -> None:
        """Hold the commit of row ``i``'s partition where its stream's history starts (and, for
        a stream without seq, its seq there), for the event open at that row (:meth:`_hold`)."""
        p, stream = batch.parts[i], batch.streams[i]
        self.holds.setdefault(p, {})[stream] = batch.holds[i]
        if (seq_at := batch.hold_seqs[i]) is not None:
            self.hold_seqs.setdefault(p, {})[stream] = seq_at

    def _end(self, d: Decided, finished: tuple[int, int, str, int], stale: set[int]) -> None:
        """A stream's end marker: forget its decisions; an event it had open resolves at its
        last window (``"ended": true``), so that none is left open for good."""
        _, p, stream, _ = finished
        if p in stale:
            return
        self.holds.get(p, {}).pop(stream, None)
        self.hold_seqs.get(p, {}).pop(stream, None)
        st = self.streams.pop((p, stream), None)
        if st is not None and st.decider.raised:
            d.raised -= 1
        ev = None if st is None else st.decider.end()
        if ev is not None and st is not None and st.announced:
            record = event_record(ev, st.det, "resolved", ended=True)
            d.sends.append((self.alerts_topic, alerts.event_message(record), stream.encode(), None))
            d.resolved += 1

    def _hold(self, batch: Batch) -> None:
        """Keep the commit H windows before every open event's opening, so that a restart
        re-reads the event from its start and resolves it with the same id and figures (and
        the anchor of a stream without seq there)."""
        for tp in batch.commit:
            holds = self.holds.get(tp.partition)
            if holds:
                batch.commit[tp] = min(batch.commit[tp], *holds.values())
                anchors = batch.anchors.get(tp)
                if anchors is None:
                    continue
                for stream, seq in self.hold_seqs.get(tp.partition, {}).items():
                    at = anchors.get(stream)
                    if at is None or holds[stream] < at[0]:  # re-read from its event's start
                        anchors[stream] = (holds[stream], seq)

    def drop(self, partitions: list[int]) -> tuple[int, int]:
        """Forget the decisions of partitions this consumer no longer owns; return how many
        announced events, and how many streams with a raised threshold, went with them."""
        gone = set(partitions)
        announced = high = 0
        for key in [k for k in self.streams if k[0] in gone]:
            st = self.streams.pop(key)
            announced, high = announced + st.announced, high + st.decider.raised
        for p in partitions:
            self.holds.pop(p, None)
            self.hold_seqs.pop(p, None)
        return announced, high
