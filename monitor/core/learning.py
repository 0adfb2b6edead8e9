"""Continual learning: a series model that keeps up with its stream by fine-tuning on it.

Every ``every`` windows (at window index ``j * every``, j >= 1) a stream's model is replaced by
its *trained* model fine-tuned for ``epochs`` epochs on the stream's windows of index
``[j * every - delay - span, j * every - delay)``: the recent past, but not the last ``delay``
windows, so an incident is not learned as normal while its first ``delay`` windows last (as the
adaptive threshold's own delay keeps it out of the score history). The normaliser, the daily
profile and the calibrated threshold stay the trained model's.

Each update starts from the trained weights and reads a bounded stretch of raw windows, nothing
the stream's decisions made: the model in effect at any window is a function of the trained
artifact and of the ``every + delay + span`` windows before it. So offline scoring and the daemon
compute the same models from the same windows, and a daemon that restarts, or takes a partition
over, rebuilds them by re-reading that stretch of the input (:attr:`Learning.history`); no
learned state has to be kept anywhere but in the input topic itself. Updates are seeded by the
stream, the update's number and the training seed, so they are deterministic. The learners:
:mod:`aemon.core.learner`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from aemon.core.errors import ArtifactError, ConfigError


@dataclass(frozen=True)
class Learning:
    """When and on what a stream's model is updated (stored in the artifact as ``learning``)."""

    every: int = 1000  # windows between updates
    span: int = 3000  # windows each update trains on
    delay: int = 1000  # the newest windows left out of each update
    epochs: int = 5  # passes over them, from the trained weights

    def __post_init__(self) -> None:
        for name, low in (("every", 1), ("span", 1), ("delay", 0), ("epochs", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"learning {name} must be a whole number >= {low}, got {value!r}")

    @property
    def history(self) -> int:
        """Windows before a window that its model depends on."""
        return self.every + self.delay + self.span

    @property
    def first_trained(self) -> int:
        """The first window scored by an update that trained on any window (the windows before it
        are scored by the trained model): ``every + delay`` with the defaults."""
        return (self.delay // self.every + 1) * self.every

    def update_of(self, index: int) -> int:
        """The number of the update in effect at window ``index`` (0: the trained model)."""
        return index // self.every

    def training_range(self, update: int) -> tuple[int, int]:
        """Window indices ``[start, stop)`` update ``update`` (>= 1) trains on."""
        stop = update * self.every - self.delay
        return max(0, stop - self.span), max(0, stop)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> Learning:
        if not isinstance(doc, dict) or set(doc) != {"every", "span", "delay", "epochs"}:
            raise ArtifactError("learning must name every, span, delay and epochs")
        try:
            return cls(**doc)
        except ConfigError as exc:
            raise ArtifactError(str(exc)) from None
