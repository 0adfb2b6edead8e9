"""The daemon's stages, built and wired: each by keyword from the settings, the ledger, the
health object and the parts it talks to, joined by bounded queues."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aemon.daemon.batching import Batch, Pool
from aemon.daemon.codec import Limits
from aemon.daemon.committer import Committer
from aemon.daemon.config import Settings
from aemon.daemon.decisions import Decided, Decisions
from aemon.daemon.health import Health
from aemon.daemon.housekeeping import Housekeeping
from aemon.daemon.intake import Intake
from aemon.daemon.kafka import Clients
from aemon.daemon.learned import Anchors
from aemon.daemon.learning import Learners
from aemon.daemon.ledger import Ledger
from aemon.daemon.metrics import Metrics
from aemon.daemon.model_watch import ModelWatch
from aemon.daemon.publisher import Publisher
from aemon.daemon.rebalance import Rebalance
from aemon.daemon.routing import Models
from aemon.daemon.score_stage import ScoreStage
from aemon.daemon.scoring import Scorer
from aemon.daemon.watch import BrokerWatch

DRAINING = ("intake", "score", "publish", "commit")  # the stages a drain waits for


@dataclass
class Stages:
    intake: Intake
    score: ScoreStage
    publish: Publisher
    commit: Committer
    watch: BrokerWatch
    housekeeping: Housekeeping
    rebalance: Rebalance  # not a stage: the consumer calls it

    def runs(self) -> dict[str, Coroutine[Any, Any, None]]:
        """Each stage's ``run()``, by the name the supervisor logs."""
        stages = (self.intake, self.score, self.publish, self.commit, self.watch)
        names = (*DRAINING, "watch")
        return {
            **{name: stage.run() for name, stage in zip(names, stages, strict=True)},
            "housekeeping": self.housekeeping.run(),
        }


@dataclass
class Shared:
    """What several stages hold: the settings, the Kafka clients, the ledger, health and
    metrics, the models and their scorer, decisions, the model watch, the stop signal, the
    learners."""

    s: Settings
    c: Clients
    ledger: Ledger
    health: Health
    metrics: Metrics
    models: Models
    scorer: Scorer
    decisions: Decisions
    model_watch: ModelWatch
    stopping: asyncio.Event
    learners: Learners | None  # streams' models that keep learning (None: none do)
    anchors: Anchors  # where streams without seq are anchored at each commit


def build(x: Shared) -> Stages:
    """Every stage, joined: a fixed pool of batches (every batch in flight, queued, scoring or
    awaiting acks, comes from it), the bounded queue to the score stage, and the publisher's."""
    pool = Pool(x.s.queue_batches + 2, x.s.max_batch, x.models.row_shape)
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(x.s.queue_batches)
    scorer_idle = asyncio.Event()  # set while the score stage waits for a batch
    confirming: asyncio.Queue[Decided | None] = asyncio.Queue()
    intake, rebalance, watch = _input(x, pool, queue, scorer_idle)
    committer = Committer(
        consumer=x.c.consumer,
        ledger=x.ledger,
        metrics=x.metrics,
        timeout_s=x.s.commit_timeout_s,
        lost=watch.lost,
        anchors=x.anchors,
    )
    publisher = Publisher(
        producer=x.c.producer,
        cluster=x.c.cluster,
        topics=[x.s.alerts_topic, x.s.dlq_topic, *([x.s.scores_topic] if x.s.scores_topic else [])],
        confirming=confirming,
        pool=pool,
        committer=committer,
        health=x.health,
        metrics=x.metrics,
        stopping=x.stopping,
    )
    score = ScoreStage(
        queue=queue,
        idle=scorer_idle,
        confirming=confirming,
        models=x.models,
        scorer=x.scorer,
        decisions=x.decisions,
        publisher=publisher,
        model_watch=x.model_watch,
        ledger=x.ledger,
    )
    housekeeping = Housekeeping(
        committer=committer,
        intake=intake,
        scorer=x.scorer,
        model_watch=x.model_watch,
        health=x.health,
        metrics=x.metrics,
        summary_interval_s=x.s.summary_interval_s,
        watch_model=x.s.watch_model,
        stopping=x.stopping,
    )
    return Stages(intake, score, publisher, committer, watch, housekeeping, rebalance)


def _input(
    x: Shared, pool: Pool, queue: asyncio.Queue[Batch | None], scorer_idle: asyncio.Event
) -> tuple[Intake, Rebalance, BrokerWatch]:
    intake = Intake(
        consumer=x.c.consumer,
        models=x.models,
        windower=x.decisions.windower,
        pool=pool,
        queue=queue,
        ledger=x.ledger,
        metrics=x.metrics,
        limits=Limits(x.s.max_message_bytes, x.s.max_stream_id),
        dlq_topic=x.s.dlq_topic,
        dlq_max_bytes=x.s.dlq_max_bytes,
        max_wait_s=x.s.max_wait_ms / 1000,
        scorer_idle=scorer_idle,
        stopping=x.stopping,
        anchors=x.anchors,
        learners=x.learners,
        producer=x.c.producer,
        end_after_s=x.s.end_silent_after_s,
    )
    rebalance = Rebalance(
        consumer=x.c.consumer,
        ledger=x.ledger,
        intake=intake,
        decisions=x.decisions,
        health=x.health,
        metrics=x.metrics,
        reset_to=x.s.auto_offset_reset,
        anchors=x.anchors,
    )
    watch = BrokerWatch(
        clients=x.c,
        input_topic=x.s.input_topic,
        ledger=x.ledger,
        health=x.health,
        metrics=x.metrics,
        on_reset=rebalance.reset,
        stopping=x.stopping,
        reset_to=x.s.auto_offset_reset,
    )
    return intake, rebalance, watch
