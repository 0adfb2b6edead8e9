"""The periodic summary line: what the daemon did since the last one, from its own metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aemon.core.detector import Detector
from aemon.core.wording import listed
from aemon.daemon.metrics import Metrics

log = logging.getLogger("aemon.serve")


class Summary:
    def __init__(
        self, metrics: Metrics, every_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics, self.every_s, self.clock = metrics, every_s, clock
        self._last = clock()
        self._seen = self._totals()

    def _totals(self) -> dict[str, float]:
        get = self.metrics.registry.get_sample_value
        out = {
            name: get(f"aemon_{name}_total") or 0.0
            for name in (
                "windows_scored",
                "anomalies",
                "alerts_published",
                "sample_gaps",
                "off_step_streams",
            )
        }
        for sample in self.metrics.invalid.collect()[0].samples:
            if sample.name.endswith("_total"):
                out[f"dlq:{sample.labels['reason']}"] = sample.value
        return out

    def line(self, detectors: list[Detector]) -> str:
        now, totals = self.clock(), self._totals()
        delta = {k: v - self._seen.get(k, 0.0) for k, v in totals.items()}
        seconds = max(now - self._last, 1e-9)
        self._last, self._seen = now, totals
        dead = {k[4:]: int(v) for k, v in delta.items() if k.startswith("dlq:") and v}
        lag = sum(s.value for s in self.metrics.consumer_lag.collect()[0].samples)
        models = listed([f"{d.name} {d.version}" for d in detectors], most=3)
        dead_text = ", ".join(f"{r} {n}" for r, n in sorted(dead.items())) or "none"
        gaps, off = int(delta["sample_gaps"]), int(delta["off_step_streams"])
        return (
            f"last {seconds:.0f} s: {delta['windows_scored'] / seconds:.1f} windows/s, "
            f"{int(delta['windows_scored'])} decided, {int(delta['anomalies'])} anomalous, "
            f"{int(delta['alerts_published'])} alerts, dead letters: {dead_text}; "
            + (f"{gaps} jumps in sample streams' seq; " if gaps else "")
            + (f"{off} streams found at another step than their model's; " if off else "")
            + f"lag {int(lag)}; models {models}"
        )

    def due(self, detectors: list[Detector]) -> None:
        """Write the line when ``every_s`` has passed (never with ``every_s`` 0)."""
        if self.every_s and self.clock() - self._last >= self.every_s:
            log.info("%s", self.line(detectors))
