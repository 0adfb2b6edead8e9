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


def build(
    s: Settings,
    c: Clients,
    *,
    ledger: Ledger,
    health: Health,
    metrics: Metrics,
    models: Models,
    scorer: Scorer,
    decisions: Decisions,
    model_watch: ModelWatch,
    stopping: asyncio.Event,
) -> Stages:
    common = {"metrics": metrics, "stopping": stopping}
    # Every batch in flight (queued, scoring, awaiting acks) comes from this fixed pool.
    pool = Pool(s.queue_batches + 2, s.max_batch, models.first.input_shape)
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(s.queue_batches)
    confirming: asyncio.Queue[Decided | None] = asyncio.Queue()
    intake = Intake(
        consumer=c.consumer,
        models=models,
        windower=decisions.windower,
        pool=pool,
        queue=queue,
        ledger=ledger,
        limits=Limits(s.max_message_bytes, s.max_stream_id),
        dlq_topic=s.dlq_topic,
        dlq_max_bytes=s.dlq_max_bytes,
        max_wait_s=s.max_wait_ms / 1000,
        **common,
    )
    rebalance = Rebalance(
        consumer=c.consumer,
        ledger=ledger,
        intake=intake,
        decisions=decisions,
        health=health,
        metrics=metrics,
        reset_to=s.auto_offset_reset,
    )
    watch = BrokerWatch(
        clients=c,
        input_topic=s.input_topic,
        ledger=ledger,
        health=health,
        on_reset=rebalance.reset,
        reset_to=s.auto_offset_reset,
        **common,
    )
    committer = Committer(
        consumer=c.consumer,
        ledger=ledger,
        metrics=metrics,
        timeout_s=s.commit_timeout_s,
        lost=watch.lost,
    )
    publisher = Publisher(
        producer=c.producer,
        cluster=c.cluster,
        topics=[s.alerts_topic, s.dlq_topic, *([s.scores_topic] if s.scores_topic else [])],
        confirming=confirming,
        pool=pool,
        committer=committer,
        health=health,
        **common,
    )
    score = ScoreStage(
        queue=queue,
        confirming=confirming,
        models=models,
        scorer=scorer,
        decisions=decisions,
        publisher=publisher,
        model_watch=model_watch,
        ledger=ledger,
    )
    housekeeping = Housekeeping(
        committer=committer,
        intake=intake,
        scorer=scorer,
        model_watch=model_watch,
        health=health,
        summary_interval_s=s.summary_interval_s,
        watch_model=s.watch_model,
        **common,
    )
    return Stages(intake, score, publisher, committer, watch, housekeeping, rebalance)
