"""Refused messages in the log: counted per reason and written as one warning line at most every
``every`` seconds, so that a stream dead-lettered as a whole is noticed without flooding the log."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("aemon.serve")


@dataclass
class RefusalLog:
    every: float = 10.0
    clock: object = time.monotonic
    _counts: Counter = field(default_factory=Counter)
    _latest: str = ""
    _last: float = float("-inf")

    def note(self, reason: str, detail: str, where: str) -> None:
        """Count a refusal; write the summary line when the last one is old enough."""
        self._counts[reason] += 1
        self._latest = f"{detail} ({where})"
        now = self.clock()  # type: ignore[operator]
        if now - self._last >= self.every:
            self.flush(now)

    def flush_if_due(self) -> None:
        """Write what is pending once ``every`` seconds have passed (from housekeeping)."""
        if self.clock() - self._last >= self.every:  # type: ignore[operator]
            self.flush()

    def flush(self, now: float | None = None) -> None:
        if not self._counts:
            return
        reasons = ", ".join(f"{r} {n}" for r, n in self._counts.most_common())
        total = sum(self._counts.values())
        log.warning("dead-lettered %d messages (%s); latest: %s", total, reasons, self._latest)
        self._counts.clear()
        self._last = self.clock() if now is None else now  # type: ignore[operator]
