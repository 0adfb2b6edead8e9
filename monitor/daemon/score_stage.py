"""Stage 2: score each batch off the event loop, decide, hand its messages to the producer.

Rows of partitions whose epoch ended while the batch was queued or scored (revoked, or their
log lost) are not decided here: the ledger says which, and their next reader decides them.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from aemon.core.detector import Detector
from aemon.daemon.batching import Batch
from aemon.daemon.decisions import Decided, Decisions
from aemon.daemon.ledger import Ledger
from aemon.daemon.model_watch import ModelWatch
from aemon.daemon.publisher import Publisher
from aemon.daemon.routing import Models
from aemon.daemon.scoring import Scored, Scorer


class ScoreStage:
    def __init__(
        self,
        *,
        queue: asyncio.Queue[Batch | None],
        idle: asyncio.Event,
        confirming: asyncio.Queue[Decided | None],
        models: Models,
        scorer: Scorer,
        decisions: Decisions,
        publisher: Publisher,
        model_watch: ModelWatch,
        ledger: Ledger,
    ) -> None:
        self.queue, self.idle, self.confirming = queue, idle, confirming
        self.models, self.scorer, self.decisions = models, scorer, decisions
        self.publisher, self.model_watch, self.ledger = publisher, model_watch, ledger

    async def run(self) -> None:
        while (batch := await self._next()) is not None:
            await self.model_watch.swap_if_requested()
            scored = await self._score(batch) if batch.n else None
            decided = self.decisions.decide(batch, scored, self.ledger.stale(batch.epochs))
            with contextlib.suppress(Exception):  # the publisher's run sends again
                await self.publisher.send(decided)
            await self.confirming.put(decided)
        await self.confirming.put(None)

    async def _next(self) -> Batch | None:
        """The next batch; ``idle`` is set while there is none (the intake then hands a
        partial batch over at once instead of waiting for it to fill)."""
        self.idle.set()
        try:
            return await self.queue.get()
        finally:
            self.idle.clear()

    async def _score(self, batch: Batch) -> Scored:
        rows = batch.values[: batch.n]
        models = None
        if not self.models.single or self.models.series:
            models = np.asarray(batch.models[: batch.n], dtype=np.intp)
        learned: list[Detector] = []  # scored by other models than the scorer's own
        at: dict[int, int | None] = {}  # id of an update or a model -> its number in ``models``
        own = self.scorer.detectors
        if any(batch.learned):  # rows scored by their stream's updated model
            assert models is not None
            for i, update in enumerate(batch.learned[: batch.n]):
                if update is not None:
                    if id(update) not in at:
                        det = await update  # ready, unless read faster than learned
                        at[id(update)] = None  # withdrawn: its partition's rows go undecided
                        if det is not None:
                            at[id(update)] = len(own) + len(learned)
                            learned.append(det)
                    if (model := at[id(update)]) is not None:
                        models[i] = model
        if self.models.series:  # rows read before a swap: scored by the model read under
            assert models is not None
            for i, det in enumerate(batch.dets[: batch.n]):
                if batch.learned[i] is None and det is not own[batch.models[i]]:
                    if id(det) not in at:
                        at[id(det)] = len(own) + len(learned)
                        learned.append(det)
                    models[i] = at[id(det)]
        loop = asyncio.get_running_loop()
        args = (rows, models, learned) if learned else (rows, models)
        return await loop.run_in_executor(self.scorer.executor, self.scorer.score, *args)
