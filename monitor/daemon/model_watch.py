"""Model swaps: a changed artifact (``watch_model``) or SIGHUP reloads models between batches;
a refused one is logged and counted while the old model keeps scoring."""

from __future__ import annotations

import asyncio
import logging

from aemon.daemon.metrics import Metrics
from aemon.daemon.routing import Models
from aemon.daemon.scoring import Scorer, settle_heap

log = logging.getLogger("aemon.serve")


class ModelWatch:
    def __init__(self, models: Models, scorer: Scorer, metrics: Metrics) -> None:
        self.models, self.scorer, self.metrics = models, scorer, metrics
        self.requested = False
        self._every = False
        self.set_metrics()

    def set_metrics(self) -> None:
        self.metrics.set_models(
            [(d.name, d.version, d.meta.family, d.threshold) for d in self.scorer.detectors]
        )

    def request(self, every: bool = False) -> None:
        """Reload before the next batch: the changed models, or ``every`` one (SIGHUP)."""
        self.requested = True
        self._every = self._every or every

    def notice_changes(self) -> None:
        if self.models.changed():
            self.request()
        self._tell_unserved()

    def _tell_unserved(self) -> None:
        for path in self.models.unserved():
            log.warning(
                "%s was added to the models directory: the daemon reads the directory at start, "
                "so it is served after a restart (until then its stream's samples are "
                "dead-lettered as no_model)",
                path,
            )

    async def swap_if_requested(self) -> None:
        """Between batches: reload what was asked for, one model at a time (in the scorer's
        thread, so that no batch is being scored meanwhile)."""
        if not self.requested:
            return
        which = list(range(len(self.models.paths))) if self._every else self.models.changed()
        if self._every:  # SIGHUP: also say what a reload does not take in
            self._tell_unserved()
        self.requested = self._every = False
        loop = asyncio.get_running_loop()
        swapped, refused = await loop.run_in_executor(
            self.scorer.executor, self.models.reload, which
        )
        self.metrics.model_reload_failures.inc(refused)
        for i, det in swapped:
            self.scorer.swap(i, det)
            log.info("model swapped in: %s %s", det.name, det.version)
        if swapped:
            settle_heap()  # the old models go, the new ones are hidden from the collector
            self.set_metrics()
