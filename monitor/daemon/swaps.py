"""Swap points: where a stream's model was replaced by one of other weights, kept in the
learned-models topic, so that a restart (or the replica that takes the partition over) resumes
the stream there instead of rebuilding it from windows the replaced model judged.

A model of other weights starts a stream's score history afresh from its calibration scores
and its learner from the next window (:meth:`~aemon.core.events.Decider.adopt`). A restart
re-reads the H windows before its commit, which may lie before the swap: rebuilt from those,
the new model's history and learner would hold windows it never judged live, and decide
otherwise. So the decisions note, at the swap, the stream's window index, the offset of its
last sample, the new model's version and the decider's state then
(:meth:`~aemon.core.events.Decider.state`), published with the batch: a commit past the swap is
never made before the note is kept. A restart that meets the stream first at or before that
window (by index and by offset: a stream that ended and counts from 0 again is another), under
the same model version, skips the windows before it (decided before the restart) and resumes
the stream there: the decider from the note, the learner afresh, as the swap left them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

SKIP = "skip"  # a row before its stream's swap point: decided before the restart, not rebuilt


@dataclass(frozen=True)
class SwapPoint:
    version: str  # the model swapped in
    index: int  # the stream's first window it judged
    offset: int  # the input offset of that window's last sample
    state: dict[str, Any]  # the decider's there (Decider.state)
    announced: bool  # whether the event open there had been announced

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": self.version,
                "index": self.index,
                "offset": self.offset,
                "state": self.state,
                "announced": self.announced,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> SwapPoint:
        """Raises ``ValueError``, ``TypeError`` or ``KeyError`` for a record not of this form."""
        doc = orjson.loads(raw)
        return cls(
            str(doc["version"]),
            int(doc["index"]),
            int(doc["offset"]),
            dict(doc["state"]),
            bool(doc["announced"]),
        )


@dataclass(frozen=True)
class Resume:
    """A row at its stream's swap point, after a restart: resume the stream from ``point``;
    ``first`` is the first window this process read of it (its warm-up counts from there)."""

    point: SwapPoint
    first: int


class Resuming:
    """The intake's side: per input partition, the swap points read before its first records
    since it was assigned; per stream, at its first window, whether a swap point lies ahead."""

    def __init__(self) -> None:
        self.points: dict[int, dict[str, SwapPoint]] = {}
        self.ahead: dict[tuple[int, str], Resume] = {}

    def restore(self, partition: int, points: dict[str, SwapPoint]) -> None:
        self.points[partition] = dict(points)

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.points.pop(p, None)
        for key in [k for k in self.ahead if k[0] in partitions]:
            del self.ahead[key]

    def at(
        self, partition: int, stream: str, version: str, index: int, offset: int
    ) -> Resume | str | None:
        """What the intake does with the stream's window ``index`` (its last sample at
        ``offset``), read under model ``version``: SKIP it, resume there (a :class:`Resume`),
        or take it as ever (None)."""
        key = (partition, stream)
        resume = self.ahead.get(key)
        if resume is None:
            points = self.points.get(partition)
            point = points.pop(stream, None) if points else None  # looked at once, first
            if point is None or point.version != version:
                return None
            if index > point.index or offset > point.offset:
                return None
            resume = self.ahead[key] = Resume(point, index)
        if index < resume.point.index:
            return SKIP
        del self.ahead[key]
        return resume if index == resume.point.index else None
