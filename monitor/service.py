"""The daemon: consume -> decode -> [window] -> micro-batch -> score -> decide -> publish -> commit.

A façade over parts with one job each, joined by queues and run under one supervisor:
the *intake* (``intake.py``) fetches and decodes into preallocated batches; the *scorer* stage
scores each batch in a worker thread and *decisions* (``decisions.py``) turns scores into
messages; the *publisher* (``publisher.py``) waits until all of them are acknowledged; the
*committer* (``committer.py``) then commits the offsets of every acknowledged batch; the *watch*
(``watch.py``) follows the broker and the input log; housekeeping refreshes lag, writes the
summary line and notices changed models. All take batches in order, so a committed offset never
passes an undecided message. A stage that fails stops the daemon: readiness drops, what was
acknowledged is committed, and :meth:`Service.run` raises :class:`StageFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import numpy as np
import torch
from aiokafka import ConsumerRebalanceListener, TopicPartition

from aemon.batching import Batch, Pool
from aemon.codec import Limits
from aemon.committer import Committer
from aemon.config import Settings
from aemon.decisions import Decided, Decisions
from aemon.health import Health
from aemon.intake import Intake
from aemon.kafka import Clients, kafka_clients
from aemon.metrics import Metrics, serve_http
from aemon.model_watch import ModelWatch
from aemon.models import Models
from aemon.publisher import Publisher
from aemon.scoring import Scorer, settle_heap
from aemon.stopping import pause, unless_stopped
from aemon.summary import Summary
from aemon.supervisor import StageFailed, Supervisor
from aemon.training.detector import Detector
from aemon.training.errors import AemonError, ConfigError
from aemon.training.windowing import Windower
from aemon.watch import BrokerWatch

log = logging.getLogger("aemon.serve")
HOUSEKEEPING_SECONDS = 2.0
FAILED_DRAIN_SECONDS = 2.0  # after a stage failure: time to commit what was acknowledged
DRAINING = {"intake", "score", "publish", "commit"}  # the stages a drain waits for


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.service.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.service.assigned(list(assigned))


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
    def __init__(self, settings: Settings, clients: Clients | None = None) -> None:
        """``clients``: the Kafka clients to use (fakes in tests); by default aiokafka's, made
        when :meth:`run` starts."""
        self.s = settings
        torch.set_num_threads(settings.torch_threads)  # the daemon owns its process
        self.metrics = Metrics()
        self.health = Health(grace_s=settings.broker_grace_s)
        self.models = Models(settings.model, settings.device, settings.amp)
        detector = self.models.first
        self.scorer = Scorer(self.models.detectors, settings.max_batch, settings.top_k)
        kind = settings.input_kind
        if kind == "auto":
            kind = "samples" if detector.meta["input"]["kind"] == "series" else "windows"
        if self.models.events and kind != "samples":
            raise ConfigError("input_kind: series models (aemon train series) take samples")
        self.windower = self._windower(detector, self.models) if kind == "samples" else None
        self.decisions = Decisions(
            self.models,
            self.scorer.detectors,
            self.windower,
            settings.alerts_topic,
            settings.scores_topic,
        )
        self.model_watch = ModelWatch(self.models, self.scorer, self.metrics)
        self.clients = clients
        self.stopping = asyncio.Event()
        self.http_port = settings.metrics_port

    @property
    def detector(self) -> Detector:
        """The first (with one artifact, the only) model in use; it changes on SIGHUP."""
        return self.scorer.detectors[0]

    @property
    def first_fetch(self) -> float | None:
        return self.intake.first_fetch

    @property
    def last_commit(self) -> float | None:
        return self.committer.last_commit

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

    def _parts(self, clients: Clients) -> None:
        s, det = self.s, self.models.first
        # Every batch in flight (queued, scoring, awaiting acks) comes from this fixed pool.
        self.pool = Pool(s.queue_batches + 2, s.max_batch, det.input_shape)
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(s.queue_batches)
        self.confirming: asyncio.Queue[Decided | None] = asyncio.Queue()
        self.committer = Committer(
            clients, self.metrics, s.commit_timeout_s, self._done, self._past_end
        )
        self.intake = Intake(
            clients.consumer,
            self.models,
            self.windower,
            self.pool,
            self.queue,
            Limits(s.max_message_bytes, s.max_stream_id),
            (s.dlq_topic, s.dlq_max_bytes),
            lambda reason: self.metrics.invalid.labels(reason).inc(),
            self.committer.epoch,
            self.committer.baseline,
            s.max_wait_ms / 1000,
            self.stopping,
        )
        outputs = [s.alerts_topic, s.dlq_topic, *([s.scores_topic] if s.scores_topic else [])]
        self.publisher = Publisher(
            clients.producer, clients.cluster, outputs, self.health, self.metrics, self.stopping
        )
        self.watch = BrokerWatch(
            clients,
            s.input_topic,
            self.health,
            self.metrics,
            self.intake.fetched,
            self.committer.committed,
            self._reset,
            self.committer.outage_ended,
            self.stopping,
            s.auto_offset_reset,
        )
        self.summary = Summary(self.metrics, s.summary_interval_s)

    def ready(self) -> bool:
        return self.health.ready()

    # ----- run ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`), then drain and return; raise
        :class:`StageFailed` after a stage failed, :class:`AemonError` when start-up fails."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.model_watch.request, True)
        try:
            http = await serve_http(
                self.metrics, self.health, self.s.metrics_host, self.s.metrics_port
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics_port: cannot listen on {self.s.metrics_host}:{self.s.metrics_port} "
                f"({exc.strerror or exc})"
            ) from None
        self.http_port = int(http.sockets[0].getsockname()[1])
        clients = self.clients = self.clients or kafka_clients(self.s)
        self._parts(clients)
        try:
            await self._serve(clients)
        finally:
            self.scorer.close()
            http.close()
            await http.wait_closed()
        if self.supervisor.failure is not None:
            raise StageFailed(self.supervisor.reason)
        log.info("stopped cleanly")

    async def _serve(self, clients: Clients) -> None:
        det, s = self.detector, self.s
        log.info(
            "serving %s %s (%s) on %s; metrics on %s:%d",
            det.name,
            det.version,
            det.meta["family"],
            det.device,
            s.metrics_host,
            self.http_port,
        )
        self.supervisor = Supervisor(self._failed)
        try:
            if not await self.watch.first_contact(s.bootstrap_servers, s.broker_wait_s):
                return
            await self._start(clients)
            settle_heap()
            sup = self.supervisor
            sup.start("intake", self.intake.run())
            sup.start("score", self._score_stage())
            sup.start("publish", self._confirm_stage())
            sup.start("commit", self.committer.run())
            sup.start("watch", self.watch.run())
            sup.start("housekeeping", self._housekeeping())
            await self.stopping.wait()
            failed = sup.failure is not None
            late = await sup.finish(
                FAILED_DRAIN_SECONDS if failed else s.shutdown_timeout_s, DRAINING
            )
            if late and not failed:
                log.warning(
                    "drain cut short after %g s (%s); what was not acknowledged is decided again "
                    "after the restart",
                    s.shutdown_timeout_s,
                    ", ".join(late),
                )
        finally:
            await self._close(clients)

    async def _start(self, clients: Clients) -> None:
        try:
            await clients.producer.start()
            await clients.consumer.start()
        except Exception as exc:
            raise AemonError(f"cannot start the Kafka clients: {exc!r}") from None
        clients.consumer.subscribe([self.s.input_topic], listener=_Rebalance(self))

    async def _close(self, clients: Clients) -> None:
        """Stop the clients, each within a bound: a broker that is gone must not hold the exit."""
        for close in (clients.consumer.stop, clients.producer.stop, clients.cluster.close):
            try:
                await asyncio.wait_for(close(), 3)
            except (Exception, asyncio.CancelledError) as exc:
                log.info("a Kafka client did not close cleanly: %r", exc)

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: finishing the batches in hand, then committing")
        self.health.stopping = True
        self.stopping.set()

    def _failed(self, reason: str) -> None:
        self.health.failed = reason
        self.stop()

    # ----- rebalance and lost logs ---------------------------------------------------------
    def assigned(self, tps: list[TopicPartition]) -> None:
        self.committer.assigned = set(tps)
        self.health.assigned = bool(tps)
        self.metrics.assigned.set(len(tps))
        log.info("assigned %d partition(s)", len(tps))

    async def revoked(self, tps: list[TopicPartition]) -> None:
        """Before partitions move: decide and commit what was consumed, as a member of the group.
        Without membership (it was lost, e.g. to a broker outage) nothing is committed: the
        partitions may be someone else's, and the next owner decides them again."""
        if tps and self.clients is not None and self.clients.in_group():
            await self.flush()
        self._forget(tps, revoked=True)
        self.health.assigned = bool(self.committer.assigned)
        self.metrics.assigned.set(len(self.committer.assigned))

    async def flush(self) -> None:
        """Decide and commit everything consumed so far (unless stopping first)."""
        await self.intake.hand_off()
        await unless_stopped(self.queue.join(), self.stopping)

    def _forget(self, tps: list[TopicPartition], revoked: bool) -> None:
        self.committer.forget(tps, revoked)
        self.intake.forget(tps)
        self.metrics.events_open.dec(self.decisions.drop([tp.partition for tp in tps]))

    async def _reset(self, tps: list[TopicPartition]) -> None:
        """The documented rule for a lost log: forget what was read of it, read it again from
        where ``auto_offset_reset`` says; nothing fetched before is committed. (Partitions this
        member no longer owns start there anyway: the broker holds no offset for them.)"""
        self._forget(tps, revoked=False)
        assert self.clients is not None
        consumer = self.clients.consumer
        owned = [tp for tp in tps if tp in consumer.assignment()]
        if not owned:
            return
        try:
            if self.s.auto_offset_reset == "earliest":
                await consumer.seek_to_beginning(*owned)
            else:
                await consumer.seek_to_end(*owned)
        except Exception as exc:  # the group is rebalancing: the new assignment starts there
            log.info("could not seek %s: %r", owned, exc)

    def _past_end(self, tp: TopicPartition, detail: str) -> None:
        self.watch.lost("past_end", f"{tp.topic}/{tp.partition}: {detail}")

    def _done(self, batches: int) -> None:
        for _ in range(batches):
            self.queue.task_done()

    # ----- stages ---------------------------------------------------------------------------
    async def _score_stage(self) -> None:
        """Score each batch off the loop, decide, hand its messages to the producer."""
        loop = asyncio.get_running_loop()
        while (batch := await self.queue.get()) is not None:
            await self.model_watch.swap_if_requested()
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
            decided = self.decisions.decide(batch, scored)
            with contextlib.suppress(Exception):  # the publish stage sends again
                await self.publisher.send(decided)
            await self.confirming.put(decided)
        self.queue.task_done()
        await self.confirming.put(None)

    async def _confirm_stage(self) -> None:
        """In batch order: wait for every ack, count, then let the committer have the offsets.
        A batch not acknowledged when the daemon stops ends the stage: nothing after it may be
        committed."""
        try:
            while (d := await self.confirming.get()) is not None:
                try:
                    if not await self.publisher.confirm(d):
                        return
                    self.metrics.decided(d)
                    self.committer.acknowledged(d.batch)
                finally:
                    self.pool.give(d.batch)
        finally:
            self.committer.close()

    async def _housekeeping(self) -> None:
        """Every few seconds: refresh the lag gauges (they must move even when nothing is
        committed), write due log lines and, with ``watch_model``, notice a changed artifact."""
        while not await pause(HOUSEKEEPING_SECONDS, self.stopping):
            await self.committer.find_baselines()
            self.committer.update_lag()
            self.intake.refusals.flush_if_due()
            self.metrics.ready.set(self.health.ready())
            self.summary.due(self.scorer.detectors)
            if self.s.watch_model:
                self.model_watch.notice_changes()
