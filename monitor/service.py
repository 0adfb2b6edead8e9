"""The daemon: consume -> decode -> [window] -> micro-batch -> score -> decide -> publish -> commit.

Four tasks joined by queues: the *intake* fetches and decodes into preallocated batches;
the *scorer* scores each batch in a worker thread and hands its alerts and dead letters to the
producer; the *confirmer* waits until all of them are acknowledged (``acks=all``); the *committer*
then commits the offsets of every acknowledged batch. All take batches in order, so a committed
offset never passes an undecided message, while scoring, acks and commits of successive batches
overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
import signal
import time
from dataclasses import dataclass

import numpy as np
import orjson
import torch
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from monitor import alerts
from monitor.batching import Batch, Pool
from monitor.codec import (
    Invalid,
    Limits,
    decode_sample,
    decode_windows,
    non_finite_reason,
    non_finite_rows,
)
from monitor.config import Settings
from monitor.metrics import Metrics, serve_http
from monitor.models import Models
from monitor.refusals import RefusalLog
from monitor.scoring import Scored, Scorer
from training.decide import Decider
from training.detector import Detector
from training.errors import ConfigError
from training.timeline import event_record
from training.windowing import LateSample, Windower

log = logging.getLogger("aemon.serve")
Send = tuple[str, bytes | None, bytes | None, list | None]  # topic, value, key, headers
HOUSEKEEPING_SECONDS = 2.0
RETRY_SECONDS = 1.0


@dataclass
class _Decided:
    batch: Batch
    scored: Scored | None
    sends: list[Send]
    futures: list[asyncio.Future] | None = None
    decided: int = 0  # windows decided (warm-up windows are scored but not decided again)
    anomalies: int = 0
    alerts: int = 0  # alert or event messages
    opened: int = 0
    resolved: int = 0
    warmup: int = 0


@dataclass
class _Stream:
    """A stream's decisions: its decider, the first window this process saw of it, and whether
    the event open now was announced by this process."""

    decider: Decider
    first: int
    announced: bool = False


@functools.lru_cache(maxsize=1 << 16)
def _keyed_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(key: bytes | None, partitions: int) -> int:
    """Kafka's default partitioner (the Java client's murmur2 for a key, any for none)."""
    return random.randrange(partitions) if key is None else _keyed_partition(key, partitions)


def settle_heap() -> None:
    """Hide everything alive now (torch, the model, the clients) from the cyclic garbage
    collector, so that its full collections walk only what the stream allocates instead of
    stalling the loop (measured: 0.15-0.37 s a collection over the ~250k start-up objects)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class _Flush(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.service.flush()
        self.service.drop([tp.partition for tp in revoked])
        for tp in revoked:
            self.service.forget_lag(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.service.assigned = set(assigned)


async def started(svc: Service) -> asyncio.Task:
    """Run ``svc`` in a task; return the task once the daemon is ready (or raise what stopped it
    before that)."""
    task = asyncio.create_task(svc.run())
    while not svc.ready():
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return task


class Service:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        torch.set_num_threads(settings.torch_threads)  # the daemon owns its process
        self.metrics = Metrics()
        self.models = Models(settings.model, settings.device, settings.amp)
        detector = self.models.first
        self.scorer = Scorer(self.models.detectors, settings.max_batch, settings.top_k)
        self.limits = Limits(settings.max_message_bytes, settings.max_stream_id)
        kind = settings.input_kind
        if kind == "auto":
            kind = "samples" if detector.meta["input"]["kind"] == "series" else "windows"
        if self.models.events and kind != "samples":
            raise ConfigError("input_kind: series models (aemon train series) take samples")
        self.windower = self._windower(detector, self.models) if kind == "samples" else None
        self.streams: dict[tuple[int, str], _Stream] = {}
        self.refusals = RefusalLog()
        self.event_holds: dict[int, dict[str, int]] = {}  # partition -> stream -> offset
        # Every batch in flight (queued, scoring, awaiting acks) comes from this fixed pool.
        self.pool = Pool(settings.queue_batches + 2, settings.max_batch, detector.input_shape)
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(settings.queue_batches)
        self.confirming: asyncio.Queue[_Decided | None] = asyncio.Queue()
        self._committable: dict[TopicPartition, int] = {}
        self._uncommitted = 0
        self._commit_wanted = asyncio.Event()
        self._confirmed_all = False
        self.stopping = asyncio.Event()
        self.reload_requested = False
        self._reload_all = False
        self.assigned: set[TopicPartition] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.first_offset: dict[TopicPartition, int] = {}  # lag baseline before a first commit
        self.batch: Batch | None = None
        self.healthy_io = True
        self.http_port = settings.metrics_port
        self.first_fetch: float | None = None  # monotonic times, for the benchmark
        self.last_commit: float | None = None
        self._set_model_metrics()

    @property
    def detector(self) -> Detector:
        """The first (with one artifact, the only) model in use; it changes on SIGHUP."""
        return self.scorer.detectors[0]

    def _set_model_metrics(self) -> None:
        self.metrics.set_models(
            [(d.name, d.version, d.meta["family"], d.threshold) for d in self.scorer.detectors]
        )

    # ----- set-up -------------------------------------------------------------------------
    @staticmethod
    def _windower(det: Detector, models: Models) -> Windower:
        """Windows as the artifact records them (tumbling windows when it names none); series
        models also keep the history their decisions depend on."""
        shape = det.input_shape
        window = det.meta["input"].get("window", {})
        length = int(window.get("length", shape[-1]))
        channels = 1 if len(shape) == 1 else shape[0]
        history = models.history if models.events else 0
        return Windower(length, int(window.get("stride", length)), channels, history)

    def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        s, sec = self.s, self.s.kafka_security()
        consumer = AIOKafkaConsumer(
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
            max_batch_size=1 << 20,  # aiokafka's 16 KiB default splits one batch's alerts in many
            max_request_size=max(1 << 21, 2 * s.max_message_bytes),
            **sec,
        )
        return consumer, producer

    def ready(self) -> bool:
        return bool(self.assigned) and self.healthy_io and not self.stopping.is_set()

    # ----- run ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`), then drain and exit cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload, True)
        http = await serve_http(self.metrics, self.ready, self.s.metrics_host, self.s.metrics_port)
        self.http_port = int(http.sockets[0].getsockname()[1])
        det = self.detector
        log.info(
            "serving %s %s (%s) on %s; metrics on %s:%d",
            det.name,
            det.version,
            det.meta["family"],
            det.device,
            self.s.metrics_host,
            self.http_port,
        )
        self.consumer, self.producer = self._clients()
        await self.producer.start()
        try:
            await self.consumer.start()
            self.consumer.subscribe([self.s.input_topic], listener=_Flush(self))
            self.batch = await self.pool.take()
            settle_heap()
            stages = [
                asyncio.create_task(self._score_loop(), name="aemon-score"),
                asyncio.create_task(self._confirm_loop(), name="aemon-confirm"),
                asyncio.create_task(self._commit_loop(), name="aemon-commit"),
            ]
            watcher = asyncio.create_task(self._housekeeping(), name="aemon-housekeeping")
            try:
                await self._intake_loop()
            finally:
                self.stopping.set()  # not ready from here on, whatever ended the intake
                await self._hand_off()
                await self.queue.put(None)
                await asyncio.gather(*stages)
                watcher.cancel()
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            await self.producer.stop()
            self.scorer.close()
            http.close()
            await http.wait_closed()
        log.info("stopped cleanly")

    def stop(self) -> None:
        log.info("stopping: finishing the batch in hand, then committing")
        self.stopping.set()

    def request_reload(self, every: bool = False) -> None:
        self.reload_requested = True
        self._reload_all = self._reload_all or every

    # ----- intake -------------------------------------------------------------------------
    async def _intake_loop(self) -> None:
        wait = self.s.max_wait_ms / 1000
        while not self.stopping.is_set():
            batch = self.batch
            assert batch is not None
            left = max(0.0, wait - (time.monotonic() - batch.opened)) if batch.n else wait
            fetch = asyncio.ensure_future(
                self.consumer.getmany(timeout_ms=int(left * 1000), max_records=batch.room)
            )
            stop = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if fetch not in done:
                fetch.cancel()
                stop.cancel()
                break
            stop.cancel()
            fetched = fetch.result()
            if fetched and self.first_fetch is None:
                self.first_fetch = time.monotonic()
            for tp, records in fetched.items():
                self._take(tp, records)
            batch = self.batch
            if batch.full or (not batch.empty and time.monotonic() - batch.opened >= wait):
                await self._hand_off()

    def _take(self, tp: TopicPartition, records: list) -> None:
        batch = self.batch
        assert batch is not None
        if records:
            batch.commit[tp] = records[-1].offset + 1
            self.first_offset.setdefault(tp, records[0].offset)
        if self.windower is not None:
            self._take_samples(tp, records, batch)
            return
        first = batch.n
        got = decode_windows(records, batch.values[first:], self.limits)
        batch.keep(got.streams, got.seqs, got.ts, [r.timestamp / 1000 for r in got.kept])
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
        if not self.models.single and stream is not None and self.models.index(stream) is None:
            return Invalid("no_model", f"no model serves stream {stream[:64]!r}")
        return non_finite_reason(rec.value)

    def _take_samples(self, tp: TopicPartition, records: list, batch: Batch) -> None:
        """Push samples into their streams' windows; each completed window fills a row."""
        assert self.windower is not None
        w, p = self.windower, tp.partition
        streams: list[str] = []
        seqs: list[int] = []
        ts: list[float] = []
        kafka_ts: list[float] = []
        for rec in records:
            row = batch.values[batch.n + len(streams)]
            try:
                s = decode_sample(rec.value, rec.timestamp, w.channels, self.limits)
                model = self.models.index(s.stream)
                if model is None:
                    raise Invalid("no_model", f"no model serves stream {s.stream[:64]!r}")
                seq = w.push(p, rec.offset, s.stream, s.seq, s.values, row)
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
                if w.history:
                    batch.holds.append(w.history_offset(p, s.stream))
        batch.keep(streams, seqs, ts, kafka_ts)

    def _dead_letter(self, tp: TopicPartition, rec, bad: Invalid, batch: Batch) -> None:
        self.metrics.invalid.labels(bad.reason).inc()
        self.refusals.note(bad.reason, str(bad), f"{tp.topic}/{tp.partition}@{rec.offset}")
        headers = alerts.dead_letter_headers(
            rec.headers, bad.reason, str(bad), tp.topic, tp.partition, rec.offset
        )
        batch.pending.append((self.s.dlq_topic, rec.value, rec.key, headers))

    async def _hand_off(self) -> None:
        """Queue the batch in hand (if it holds anything) and take a fresh one."""
        batch = self.batch
        if batch is None or batch.empty:
            return
        if self.windower is not None:
            for tp in batch.commit:
                batch.commit[tp] = self.windower.safe_offset(tp.partition, batch.commit[tp])
        self.batch = None
        await self.queue.put(batch)
        self.batch = await self.pool.take()

    async def flush(self) -> None:
        """Decide and commit everything consumed so far (before partitions move)."""
        await self._hand_off()
        await self.queue.join()

    # ----- decide -------------------------------------------------------------------------
    async def _score_loop(self) -> None:
        """Stage 2: score each batch off the loop, decide, hand its messages to the producer."""
        loop = asyncio.get_running_loop()
        while (batch := await self.queue.get()) is not None:
            if self.reload_requested:
                await self._reload(loop)
            scored = None
            if batch.n:
                rows = batch.values[: batch.n]
                models = None if self.models.single and not self.models.events else batch.models
                scored = await loop.run_in_executor(
                    self.scorer.executor,
                    self.scorer.score,
                    rows,
                    None if models is None else np.asarray(models[: batch.n], dtype=np.intp),
                )
            if self.models.events:
                decided = self._decide_events(batch, scored)
            else:
                decided = self._decide(batch, scored)
            with contextlib.suppress(KafkaError):  # the confirm stage sends again
                decided.futures = await self._send(decided.sends)
            await self.confirming.put(decided)
        self.queue.task_done()
        await self.confirming.put(None)

    async def _confirm_loop(self) -> None:
        """Stage 3, in batch order: wait for every ack, count, then mark the offsets committable."""
        while (d := await self.confirming.get()) is not None:
            try:
                await self._acknowledged(d)
                self._count(d)
            finally:
                self.pool.give(d.batch)
            self._committable.update(d.batch.commit)
            self._uncommitted += 1
            self._commit_wanted.set()
        self._confirmed_all = True
        self._commit_wanted.set()

    async def _commit_loop(self) -> None:
        """Stage 4: commit everything acknowledged so far, one commit in flight at a time, so
        commits coalesce under load instead of costing a round trip per batch. A batch is done
        (for :meth:`flush` and the drain) only once its offsets are committed."""
        while True:
            if not self._uncommitted:
                if self._confirmed_all:
                    return
                await self._commit_wanted.wait()
                self._commit_wanted.clear()
                continue
            offsets, batches = dict(self._committable), self._uncommitted
            self._committable.clear()
            self._uncommitted = 0
            await self._commit(offsets)
            for _ in range(batches):
                self.queue.task_done()

    def _decide(self, batch: Batch, scored: Scored | None) -> _Decided:
        """Artifacts without an event rule: every window above the threshold is an alert."""
        sends: list[Send] = list(batch.pending)
        if scored is None:
            return _Decided(batch, None, sends)
        dets = self.scorer.detectors
        if batch.models:  # several models: flags against each row's own model
            thresholds = np.array([dets[m].threshold for m in batch.models[: batch.n]])
            scored.flagged = np.flatnonzero(scored.scores > thresholds)
            scored.top = np.empty((len(scored.flagged), 0), dtype=np.int64)
        scores = scored.scores.tolist()
        tops = alerts.contributors(scored.top, dets[0].input_shape)
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
            sends.append((self.s.alerts_topic, body, batch.streams[i].encode(), None))
        if self.s.scores_topic:
            flags = scored.flags.tolist()
            for i in range(batch.n):
                body = alerts.score_record(
                    batch.streams[i], batch.seqs[i], batch.ts[i], scores[i], flags[i]
                )
                sends.append((self.s.scores_topic, body, batch.streams[i].encode(), None))
        n, flagged = batch.n, len(scored.flagged)
        return _Decided(batch, scored, sends, decided=n, anomalies=flagged, alerts=flagged)

    def _decide_events(self, batch: Batch, scored: Scored | None) -> _Decided:
        """Series models: each stream's decider judges its windows in order; events open and
        resolve. A window whose history this process has not seen in full (the first H windows
        re-read after a restart) only rebuilds state: it was decided before the restart."""
        d = _Decided(batch, scored, list(batch.pending))
        if scored is None:
            self._hold_events(batch)
            return d
        w, dets, rules = self.windower, self.scorer.detectors, self.models.rules
        assert w is not None
        scores = scored.scores.tolist()
        for i in range(batch.n):
            p, stream, seq, ts, m = (
                batch.parts[i],
                batch.streams[i],
                batch.seqs[i],
                batch.ts[i],
                batch.models[i],
            )
            idx = w.index(seq)
            st = self.streams.get((p, stream))
            if st is None:
                st = self.streams[(p, stream)] = _Stream(Decider(rules[m], stream), idx)
            v = st.decider.push(seq, ts, scores[i])
            if st.first and idx - st.first < rules[m].history:
                d.warmup += 1
                continue
            d.decided += 1
            d.anomalies += v.above
            key, holds = stream.encode(), self.event_holds.setdefault(p, {})
            if v.resolved is not None and st.announced:
                record = event_record(v.resolved, dets[m], "resolved")
                d.sends.append((self.s.alerts_topic, alerts.event_message(record), key, None))
                d.resolved += 1
                st.announced = False
            if v.opened is not None:
                record = event_record(v.opened, dets[m], "open")
                d.sends.append((self.s.alerts_topic, alerts.event_message(record), key, None))
                d.opened += 1
                st.announced = True
                holds[stream] = batch.holds[i]
            if st.decider.event is None:
                holds.pop(stream, None)
            if self.s.scores_topic:
                body = alerts.score_record(stream, seq, ts, scores[i], v.above, v.threshold)
                d.sends.append((self.s.scores_topic, body, key, None))
        d.alerts = d.opened + d.resolved
        self._hold_events(batch)
        return d

    def _hold_events(self, batch: Batch) -> None:
        """Keep the commit H windows before every open event's opening, so that a restart
        re-reads the event from its start and resolves it with the same id and figures."""
        for tp in batch.commit:
            holds = self.event_holds.get(tp.partition)
            if holds:
                batch.commit[tp] = min(batch.commit[tp], *holds.values())

    def drop(self, partitions: list[int]) -> None:
        """Forget windows and decisions of partitions this consumer no longer owns."""
        if self.windower is not None:
            self.windower.drop(partitions)
        gone = set(partitions)
        for key in [k for k in self.streams if k[0] in gone]:
            st = self.streams.pop(key)
            if st.announced:
                self.metrics.events_open.dec()
        for p in partitions:
            self.event_holds.pop(p, None)

    async def _send(self, sends: list[Send]) -> list[asyncio.Future]:
        """Hand ``sends`` to the producer as one record batch per topic partition (the partition
        Kafka's default partitioner picks for the key), so that a batch's alerts cost a future
        per partition instead of one each (measured: alerts took 18% of the bench's throughput)."""
        counts = {t: len(await self.producer.partitions_for(t)) for t in {s[0] for s in sends}}
        by_tp: dict[tuple[str, int], list[Send]] = {}
        for send in sends:
            topic, key = send[0], send[2]
            by_tp.setdefault((topic, partition_for(key, counts[topic])), []).append(send)
        futures = []
        for (topic, partition), group in by_tp.items():
            batch = self.producer.create_batch()
            for _, value, key, headers in group:
                record = {"timestamp": None, "key": key, "value": value, "headers": headers or []}
                if batch.append(**record) is None:  # full: send it, start another
                    futures.append(
                        await self.producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = self.producer.create_batch()
                    batch.append(**record)  # an empty batch takes any one record
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        return futures

    async def _acknowledged(self, d: _Decided) -> None:
        """Wait for every ack (``acks=all``); on failure send again, so nothing is committed
        unsent. A resent alert may be a duplicate; its ``alert_id`` is the same."""
        while True:
            try:
                if d.futures is None:
                    d.futures = await self._send(d.sends)
                for fut in d.futures:
                    await fut
                self.healthy_io = True
                return
            except KafkaError as exc:
                self.healthy_io = False
                d.futures = None
                log.error("publishing failed (%s); retrying in %.0fs", exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    def _count(self, d: _Decided) -> None:
        if d.scored is None:
            return
        m, now, n = self.metrics, time.time(), d.batch.n
        m.windows_scored.inc(d.decided)
        m.anomalies.inc(d.anomalies)
        m.alerts_published.inc(d.alerts)
        m.events_opened.inc(d.opened)
        m.events_resolved.inc(d.resolved)
        m.events_open.inc(d.opened - d.resolved)
        m.warmup_windows.inc(d.warmup)
        m.batch_size.observe(n)
        m.scoring_duration.observe(d.scored.seconds)
        m.reconstruction_error.observe_many(d.scored.scores)
        m.end_to_end_latency.observe_many(now - np.asarray(d.batch.kafka_ts))
        m.last_batch.set(now)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        offsets = {
            tp: o
            for tp, o in offsets.items()
            if tp in self.assigned and o > self.committed.get(tp, -1)
        }
        if not offsets:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), self.s.commit_timeout_s)
            self.committed.update(offsets)
            self.last_commit = time.monotonic()
        except (KafkaError, TimeoutError) as exc:  # IllegalStateError etc. are KafkaErrors
            # Not fatal: the messages are decided; a restart re-decides them (same alert ids).
            log.warning("commit of %s failed: %s", offsets, exc)
        self._update_lag()

    def _update_lag(self) -> None:
        for tp in self.assigned:
            high = self.consumer.highwater(tp)
            done = self.committed.get(tp, self.first_offset.get(tp))
            if high is not None and done is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, high - done)
                )

    def forget_lag(self, tp: TopicPartition) -> None:
        with contextlib.suppress(KeyError):
            self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self.assigned.discard(tp)
        self.first_offset.pop(tp, None)
        self.committed.pop(tp, None)

    # ----- housekeeping and model swaps ---------------------------------------------------
    async def _housekeeping(self) -> None:
        """Every few seconds: refresh the lag gauges (they must move even when nothing is
        committed) and, with ``watch_model``, notice a changed artifact."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            self._update_lag()
            self.refusals.flush_if_due()
            if self.s.watch_model and self.models.changed():
                self.request_reload()

    async def _reload(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reload the models whose artifact changed (SIGHUP: every model), one by one."""
        which = (
            self.models.changed() if not self._reload_all else list(range(len(self.models.paths)))
        )
        self.reload_requested = self._reload_all = False
        swapped = await loop.run_in_executor(self.scorer.executor, self.models.reload, which)
        for i, det in swapped:
            self.scorer.swap(i, det)
            log.info("model swapped in: %s %s", det.name, det.version)
        if swapped:
            settle_heap()  # the old models go, the new ones are hidden from the collector
            self._set_model_metrics()
