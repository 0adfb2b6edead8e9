"""The daemon: consume -> decode -> [window] -> micro-batch -> score -> decide -> publish -> commit.

Only wiring and supervision. The stages (:mod:`aemon.daemon.stages`) share the ledger
(:mod:`aemon.daemon.ledger`, the one owner of partition state); a stage that fails stops the
daemon: readiness drops, what was acknowledged is committed, and :meth:`Service.run` raises
:class:`StageFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

import torch

from aemon.core.detector import Detector
from aemon.core.errors import AemonError, ConfigError
from aemon.daemon import stages
from aemon.daemon.config import Settings
from aemon.daemon.decisions import Decisions, Totals
from aemon.daemon.health import Health
from aemon.daemon.kafka import Clients, kafka_clients
from aemon.daemon.learned import Anchors, LearnedStore
from aemon.daemon.learning import Learners
from aemon.daemon.ledger import Ledger
from aemon.daemon.metrics import Metrics, serve_http
from aemon.daemon.model_watch import ModelWatch
from aemon.daemon.routing import Models
from aemon.daemon.scoring import Scorer, settle_heap
from aemon.daemon.supervisor import StageFailed, Supervisor
from aemon.daemon.topic_settings import setting_warnings, written

log = logging.getLogger("aemon.serve")
FAILED_DRAIN_SECONDS = 2.0  # after a stage failure: time to commit what was acknowledged


class Service:
    def __init__(
        self,
        settings: Settings,
        clients: Clients | None = None,
        scorer: Callable[[list[Detector], int, int], Scorer] = Scorer,
    ) -> None:
        """``clients``: the Kafka clients (fakes in tests; by default aiokafka's, made when
        :meth:`run` starts); ``scorer``: what builds the scorer from the models."""
        self.s = s = settings
        torch.set_num_threads(s.torch_threads)  # the daemon owns its process
        self.metrics, self.health, self.ledger = Metrics(), Health(s.broker_grace_s), Ledger()
        self.models = Models(s.model, s.device, s.amp)
        self.scorer = scorer(self.models.detectors, s.max_batch, s.top_k)
        windower = self.models.windower(s.input_kind)
        self.decisions = Decisions(
            self.models, self.scorer.detectors, windower, s.alerts_topic, s.scores_topic
        )
        self.model_watch = ModelWatch(self.models, self.scorer, self.metrics)
        self.learners = (
            Learners(self.metrics, s.learn_processes)
            if windower is not None and self.models.learning
            else None
        )
        self.clients, self.stopping, self.http_port = clients, asyncio.Event(), s.metrics_port
        self.anchors = Anchors()
        self.stages: stages.Stages | None = None

    @property
    def detector(self) -> Detector:
        """The first (with one artifact, the only) model in use; it changes on SIGHUP."""
        return self.scorer.detectors[0]

    @property
    def totals(self) -> Totals:
        """What was decided and acknowledged since the daemon started."""
        return Totals() if self.stages is None else self.stages.publish.totals

    def ready(self) -> bool:
        return self.health.ready()

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
            http = await serve_http(self.metrics, self.health, self.s.metrics_host, self.http_port)
        except OSError as exc:
            raise ConfigError(
                f"metrics_port: cannot listen on {self.s.metrics_host}:{self.s.metrics_port} "
                f"({exc.strerror or exc})"
            ) from None
        self.http_port = int(http.sockets[0].getsockname()[1])
        self.clients = self.clients or kafka_clients(self.s)
        self.supervisor = Supervisor(self._failed)
        shared = stages.Shared(
            *(self.s, self.clients, self.ledger, self.health, self.metrics, self.models),
            *(self.scorer, self.decisions, self.model_watch, self.stopping, self.learners),
            self.anchors,
        )
        self.stages = stages.build(shared)
        try:
            await self._serve(self.clients, self.stages)
        finally:
            self.scorer.close()
            if self.learners is not None:
                self.learners.close()
            http.close()
            await http.wait_closed()
        if self.supervisor.failure is not None:
            raise StageFailed(self.supervisor.reason)
        log.info("stopped cleanly")

    async def _serve(self, c: Clients, parts: stages.Stages) -> None:
        s, sup = self.s, self.supervisor
        log.info("serving %s on %s", self.models.describe(), self.detector.device)
        log.info(
            "input %s, alerts %s, dead letters %s, scores %s; group %s at %s; metrics on %s:%d",
            *(s.input_topic, s.alerts_topic, s.dlq_topic, s.scores_topic or "off", s.group_id),
            *(s.bootstrap_servers, s.metrics_host, self.http_port),
        )
        try:
            if not await parts.watch.first_contact(s.bootstrap_servers, s.broker_wait_s):
                return
            try:
                await c.producer.start()
                await c.consumer.start()
            except Exception as exc:
                raise AemonError(f"cannot start the Kafka clients: {exc!r}") from None
            try:
                topics: set[str] | None = await c.cluster.topics()
            except Exception:  # the watch reports a broker in trouble
                topics = None
            await self._check_topic_settings(c, topics)
            store = await self._learned_store(c, topics)
            c.consumer.subscribe([s.input_topic], listener=parts.rebalance)
            settle_heap()
            for name, run in parts.runs().items():
                sup.start(name, run)
            if store is not None:
                sup.start("learned", store.follow())
                sup.start("keep", store.send(self.stopping))
            await self.stopping.wait()
            failed = sup.failure is not None
            deadline = FAILED_DRAIN_SECONDS if failed else s.shutdown_timeout_s
            began = time.monotonic()
            late = await sup.finish(deadline, set(stages.DRAINING))
            if self.learners is not None and store is not None:  # within the drain's time
                await self.learners.settle(deadline - (time.monotonic() - began))
            if store is not None:
                await store.sent(FAILED_DRAIN_SECONDS)
            if late and not failed:
                cut = f"drain cut short after {s.shutdown_timeout_s:g} s ({', '.join(late)})"
                log.warning("%s; what was not acknowledged is decided again after restart", cut)
        finally:
            closing = [c.consumer.stop, c.producer.stop, c.cluster.close]
            if self.anchors.store is not None:
                closing.append(self.anchors.store.close)
            for close in closing:
                try:  # each within a bound: a broker that is gone must not hold the exit
                    await asyncio.wait_for(close(), 3)
                except (Exception, asyncio.CancelledError) as exc:
                    log.info("a Kafka client did not close cleanly: %r", exc)

    async def _check_topic_settings(self, c: Clients, topics: set[str] | None) -> None:
        """One warning for each setting of a topic the daemon writes (of ``topics``, those on
        the broker; None: unknown) that it should not run with, as ``aemon serve --check``
        finds them."""
        if topics is None:
            return
        try:
            configs = await c.cluster.configs(sorted(topics & written(self.s)))
        except Exception:  # the watch reports a broker in trouble
            return
        samples = self.decisions.windower is not None
        for line in setting_warnings(self.s, self.models, configs, samples):
            log.warning(line)

    async def _learned_store(self, c: Clients, topics: set[str] | None) -> LearnedStore | None:
        """The learned-models topic, opened for the learners, the anchors of streams without
        seq and the swap points, and read for the partitions assigned (None: no sample streams,
        or the topic is off or cannot be read); ``topics``: those on the broker (None:
        unknown)."""
        if self.decisions.windower is None or not self.s.learned_topic or c.reader is None:
            return None
        store = LearnedStore(
            self.s.learned_topic,
            c.producer,
            c.reader,
            self.models,
            self.metrics,
            group=self.s.group_id,
            input_topic=self.s.input_topic,
        )
        if topics is None:  # unknown: the store's own read says what is wrong
            topics = {self.s.learned_topic}
        if not await store.load(topics, self.s.broker_wait_s):
            return None
        if self.learners is not None:
            self.learners.store = store
        self.anchors.store = store
        self.decisions.keep_swap = store.swap_record
        return store

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: finishing the batches in hand, then committing")
        self.health.stopping = True
        self.stopping.set()

    def _failed(self, reason: str) -> None:
        self.health.failed = reason
        self.stop()
