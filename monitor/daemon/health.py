"""What ``/readyz`` and ``/healthz`` answer: the daemon's conditions, each set by the part that
sees it, and the reasons it is not ready (the body of a 503)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Health:
    """``ready``: partitions assigned, the broker reachable (or lost for less than ``grace_s``),
    publishing working, no lost log unresolved, no failed stage, not stopping. ``alive``: no
    stage failed (``/healthz`` turns 500 so that a supervisor restarts the process)."""

    grace_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    assigned: bool = False
    broker_down_since: float | None = None
    publish_failing: str | None = None
    log_lost: str | None = None
    failed: str | None = None
    stopping: bool = False
    outages: int = 0  # broker outages seen; an ack from before the last one is not trusted

    def broker_down(self) -> None:
        if self.broker_down_since is None:
            self.broker_down_since = self.clock()

    def broker_up(self) -> float:
        """Mark the broker reachable; return how long it was not (0: it was)."""
        if self.broker_down_since is None:
            return 0.0
        down = self.clock() - self.broker_down_since
        self.broker_down_since = None
        self.outages += 1
        return down

    def problems(self) -> list[str]:
        """Why the daemon is not ready (empty: ready)."""
        out = []
        if self.failed:
            out.append(f"failed: {self.failed}")
        if self.stopping:
            out.append("stopping")
        if self.broker_down_since is not None:
            down = self.clock() - self.broker_down_since
            if down >= self.grace_s:
                out.append(f"broker unreachable for {down:.0f} s")
        if self.publish_failing:
            out.append(f"publishing fails: {self.publish_failing}")
        if self.log_lost:
            out.append(f"input log lost: {self.log_lost}")
        if not self.assigned:
            out.append("no partition assigned")
        return out

    def ready(self) -> bool:
        return not self.problems()

    def alive(self) -> bool:
        return self.failed is None
