"""Model swaps: a changed artifact (``watch_model``) or SIGHUP reloads models between batches,
and an artifact put into the models directory since start is taken in then when the running
daemon can serve it; a refused one is logged and counted while the old models keep scoring."""

from __future__ import annotations

import asyncio
import logging

from aemon.core.catalog import ANY
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
        """Reload before the next batch: the changed models, or ``every`` one (SIGHUP); and take
        in the artifacts added since start."""
        self.requested = True
        self._every = self._every or every

    def notice_changes(self) -> None:
        if self.models.changed() or self.models.unserved():
            self.request()

    async def swap_if_requested(self) -> None:
        """Between batches: reload what was asked for, one model at a time, and add the new
        ones (in the scorer's thread, so that no batch is being scored meanwhile)."""
        if not self.requested:
            return
        every = self._every
        which = list(range(len(self.models.paths))) if every else self.models.changed()
        self.requested = self._every = False
        loop = asyncio.get_running_loop()
        swapped, refused = await loop.run_in_executor(
            self.scorer.executor, self.models.reload, which
        )
        new = self.models.unserved(again=every)
        added, not_added = (
            await loop.run_in_executor(
                self.scorer.executor, self.models.load_new, new, self.scorer.wide
            )
            if new
            else ([], 0)
        )
        self.metrics.model_reload_failures.inc(refused + not_added)
        for i, det in swapped:
            self.scorer.swap(i, det)
            log.info("model swapped in: %s %s", det.name, det.version)
        for stream, path, det in added:
            self.scorer.add(det)  # before the route: a row is never routed to a model not there
            self.models.add(stream, path, det)
            serves = "every other stream" if stream == ANY else f"stream {stream!r}"
            log.info(
                "model added: %s %s (%s, %s) from %s",
                det.name,
                det.version,
                det.meta.family,
                serves,
                path,
            )
        if swapped or added:
            settle_heap()  # the old models go, the new ones are hidden from the collector
            self.set_metrics()
