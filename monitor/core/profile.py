"""A stream's profile: each metric's usual level at each hour of the UTC day, or of the week.

A model whose windows carry a clock (the clock channels) also sees, beside each value, its
distance from the profile's level at that sample's hour: of the day for a time-of-day clock (24
levels), of the week for a time-of-week clock (168: a Wednesday's busy hours apart from a
Sunday's). A short window of an ordinary shape can still be wrong for its hour (the day's peak
that does not come, a holiday that looks like a Sunday); the distance says so where the window
alone cannot. The profile is fitted on the stream's fitted training windows (the median of every
sample at each hour; an hour of the week never seen takes its hour of the day's, and an hour of
the day never seen the median of all) and stored in the artifact; the hour is read back from
the clock channels, so offline scoring and the daemon compute the same inputs from the same
windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aemon.core.errors import ArtifactError
from aemon.core.table import F32_MAX
from aemon.core.windowing import TIME_OF_DAY, TIME_OF_WEEK, clock_values

HOURS = {TIME_OF_DAY: 24, TIME_OF_WEEK: 168}  # a profile's bins per clock it is read from


def hour_of(sin: np.ndarray, cos: np.ndarray, hours: int = HOURS[TIME_OF_DAY]) -> np.ndarray:
    """The hour (0 to ``hours`` - 1) of clock channels holding its angle's sine and cosine: of
    the day (24) or of the week (168)."""
    angle = np.arctan2(sin.astype(np.float64), cos.astype(np.float64)) % (2.0 * math.pi)
    return np.minimum((angle * (hours / (2.0 * math.pi))).astype(np.int64), hours - 1)


@dataclass(frozen=True)
class Profile:
    """``levels[hour, metric]`` (24 hours of the day or 168 of the week); :meth:`__call__` turns
    windows ``[n, metrics + 2, length]`` (values, then the clock) into the model's input
    ``[n, 2 metrics + 2, length]``: the values, their distances from the profile, then the
    clock."""

    levels: np.ndarray  # float32 [hours, metrics]

    @property
    def metrics(self) -> int:
        return int(self.levels.shape[1])

    @property
    def hours(self) -> int:
        return int(self.levels.shape[0])

    @property
    def clock(self) -> str:
        """The clock whose hours the profile's levels follow."""
        return TIME_OF_WEEK if self.hours == HOURS[TIME_OF_WEEK] else TIME_OF_DAY

    @classmethod
    def fit(cls, windows: np.ndarray, metrics: int, clock: str) -> Profile:
        """From windows ``[n, metrics + 2, length]`` whose clock is ``clock``."""
        hours, day = HOURS[clock], HOURS[TIME_OF_DAY]
        values = windows[:, :metrics].transpose(0, 2, 1).reshape(-1, metrics)
        at = hour_of(windows[:, metrics], windows[:, metrics + 1], hours).reshape(-1)
        levels = np.tile(np.median(values, axis=0), (hours, 1))
        if hours > day:  # an hour of the week never seen: its hour of the day's, where seen
            of_day = at % day
            for h in np.unique(of_day).tolist():
                levels[h::day] = np.median(values[of_day == h], axis=0)
        for h in np.unique(at).tolist():
            levels[h] = np.median(values[at == h], axis=0)
        return cls(levels.astype(np.float32))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        m = self.metrics
        at = hour_of(windows[:, m], windows[:, m + 1], self.hours)  # [n, length]
        distance = windows[:, :m] - self.levels[at].transpose(0, 2, 1)
        return np.concatenate([windows[:, :m], distance, windows[:, m:]], axis=1)

    def at(self, ts: np.ndarray) -> np.ndarray:
        """The levels ``[n, metrics]`` at the hours of epoch seconds ``ts``, each hour read as the
        model reads it (from the clock channels' float32 sine and cosine)."""
        ticks = [clock_values(self.clock, float(t)) for t in ts]
        clock = np.array(ticks, dtype=np.float32).reshape(-1, 2)
        return self.levels[hour_of(clock[:, 0], clock[:, 1], self.hours)]

    def to_dict(self) -> dict[str, Any]:
        of = "week" if self.clock == TIME_OF_WEEK else "day"
        return {
            "hours": self.hours,
            "levels": [[float(v) for v in row] for row in self.levels],
            "fitted_on": f"the median of the fitted training samples at each hour of the UTC {of}",
        }

    @classmethod
    def from_dict(cls, doc: object, metrics: int, clock: str) -> Profile:
        """The profile an artifact records for ``metrics`` value channels and its ``clock``;
        ArtifactError when it is not one finite number per hour and metric."""
        hours = HOURS[clock]
        levels = doc.get("levels") if isinstance(doc, dict) else None
        try:
            array = np.asarray(levels, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.empty(0)
        if array.shape != (hours, metrics) or not (np.abs(array) <= F32_MAX).all():
            raise ArtifactError(
                f"input.profile.levels must be {hours} lists of {metrics} finite numbers "
                f"within float32 (one per hour of the {'week' if hours > 24 else 'day'} and "
                "value channel)"
            )
        return cls(array.astype(np.float32))


def with_distances(profile: Profile | None, windows: np.ndarray) -> np.ndarray:
    """Raw windows as the model takes them before scaling: with a ``profile``, each value's
    distance from it added (see :class:`Profile`); without, the windows themselves."""
    return windows if profile is None else profile(windows)


def level_channels(profile: Profile | None) -> list[int] | None:
    """Per channel of :func:`with_distances`'s windows, the channel whose level the robust
    scaling's floor is a fraction of (``Normaliser.fit``'s ``level_from``): a distance is in its
    value's units, so a metric near 1e9 that barely moved in training is not scaled by
    0.001 in its distance (where it would sit at the clip, blind to any change); the clock's
    channels their own. None without a profile (every channel its own)."""
    if profile is None:
        return None
    m = profile.metrics
    return [*range(m), *range(m), 2 * m, 2 * m + 1]
