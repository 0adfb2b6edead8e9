"""Every few seconds: the lag gauges (they must move even when nothing is committed), the due
log lines (refusals, the summary), readiness, and, with ``watch_model``, a changed artifact."""

from __future__ import annotations

import asyncio

from aemon.daemon.committer import Committer
from aemon.daemon.health import Health
from aemon.daemon.intake import Intake
from aemon.daemon.metrics import Metrics
from aemon.daemon.model_watch import ModelWatch
from aemon.daemon.scoring import Scorer
from aemon.daemon.stopping import pause
from aemon.daemon.summary import Summary


class Housekeeping:
    def __init__(
        self,
        *,
        committer: Committer,
        intake: Intake,
        scorer: Scorer,
        model_watch: ModelWatch,
        health: Health,
        metrics: Metrics,
        summary_interval_s: float,
        watch_model: bool,
        stopping: asyncio.Event,
        period_s: float = 2.0,
    ) -> None:
        self.committer, self.intake, self.scorer = committer, intake, scorer
        self.model_watch, self.health, self.metrics = model_watch, health, metrics
        self.summary = Summary(metrics, summary_interval_s)
        self.watch_model, self.stopping, self.period_s = watch_model, stopping, period_s

    async def run(self) -> None:
        while not await pause(self.period_s, self.stopping):
            await self.committer.find_baselines()
            self.committer.update_lag()
            self.intake.refusals.flush_if_due()
            self.metrics.ready.set(self.health.ready())
            self.summary.due(self.scorer.detectors)
            if self.watch_model:
                self.model_watch.notice_changes()
