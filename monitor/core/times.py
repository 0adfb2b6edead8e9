"""Times as aemon takes them: seconds since the epoch (UTC), in CSVs, messages and events alike.

A time must lie between the year 1 and :data:`LATEST` (1e11 seconds, the year 5138), so that
every event can be written in ISO 8601. A larger number is a time in milliseconds (or finer)
sent as seconds, the commonest mistake with epoch times: ``1767225600000`` would be the year
57,970, and a model that sees the time of day would read a new hour into every sample.
"""

from __future__ import annotations

import datetime
import math

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
EARLIEST = -62_135_596_800.0  # 0001-01-01T00:00:00Z
LATEST = 1e11  # 5138-11-16T09:46:40Z


def time_problem(ts: float) -> str | None:
    """Why ``ts`` is not a time aemon takes, as words after the time itself; None when it is."""
    if not math.isfinite(ts):
        return "is not a finite number"
    if ts >= LATEST:
        return (
            "is after the year 5000 as seconds since the epoch: milliseconds? "
            "times are seconds since the epoch (or ISO 8601)"
        )
    if ts < EARLIEST:
        return "is before the year 1 as seconds since the epoch"
    return None


def iso_seconds(text: str) -> float:
    """An ISO 8601 / RFC 3339 time (no zone: UTC) as seconds since the epoch; ValueError for
    anything else."""
    when = datetime.datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).timestamp()


def iso(ts: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC to the microsecond (``""`` for None)."""
    if ts is None:
        return ""
    moment = EPOCH + datetime.timedelta(microseconds=round(ts * 1e6))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
