"""A stream's sample step against the step its series model was trained on.

A model of 8-sample windows trained on samples a minute apart has learned what 8 minutes look
like. Fed samples 10 s apart (an exporter's scrape interval changed, a stream of another rate
routed to it), each window spans 70 s instead of 7 minutes, and its scores, its expected false
alarms a day and its learning cadence mean something else, without a word. :class:`Cadence`
watches the median step between a stream's windows (their end times over their ``seq``) and
names the stream once when it is off by more than a factor of two either way; offline scoring
and the daemon use the same check, so both say it.
"""

from __future__ import annotations

from statistics import median

from aemon.core.artifact import Meta

OFF_BY = 2.0  # a step this many times longer or shorter than the trained one is off
OVER = 64  # windows whose steps' median is checked, and again after as many more


def trained_step(meta: Meta) -> float | None:
    """Seconds between the samples a series model was trained on (their median step), or None
    where the artifact does not record it (a window model)."""
    per_day = meta.doc["threshold"].get("windows_per_day")
    if not meta.is_series or not per_day:
        return None
    return 86_400.0 / float(per_day) / meta.window.stride


def spoken(seconds: float) -> str:
    """A duration in the largest unit that says it as a whole number or as 2 or more of it:
    ``250 ms``, ``70 s``, ``7 min``, ``90 min``, ``2.5 h``."""
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0), ("s", 1.0)):
        n = seconds / size
        if n >= 2 or (n >= 1 and n == round(n)):
            return f"{n:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"


class Cadence:
    """One stream's recent steps against its model's trained ``step`` (seconds per sample)."""

    def __init__(self, stream: str, step: float, length: int) -> None:
        self.stream, self.step, self.length = stream, step, length
        self._steps: list[float] = []
        self._last: tuple[int, float] | None = None
        self.said = False

    def push(self, seq: int, ts: float) -> str | None:
        """Take the stream's next window (its ``seq`` and end time); return the one line that
        names the stream when its steps have gone off (at most once)."""
        if self.said:
            return None
        last, self._last = self._last, (seq, ts)
        if last is None or seq <= last[0]:
            return None
        self._steps.append((ts - last[1]) / (seq - last[0]))
        if len(self._steps) < OVER:
            return None
        step = median(self._steps)
        self._steps.clear()
        if self.step / OFF_BY <= step <= self.step * OFF_BY:
            return None
        self.said = True
        if step <= 0:
            return (
                f"stream {self.stream!r}: its windows' times do not move forward (the median "
                f"step is {step:g} s) where its model was trained on samples {spoken(self.step)} "
                "apart: give each sample the time it was taken (its 'ts')"
            )
        span = self.length - 1
        return (
            f"stream {self.stream!r}: samples {spoken(step)} apart where its model was trained "
            f"on samples {spoken(self.step)} apart, so its {self.length}-sample windows span "
            f"{spoken(step * span)} instead of {spoken(self.step * span)}: its scores and "
            "false alarms a day mean something else; train it on samples at this step, or send "
            "them at its own"
        )


def cadence_of(stream: str, meta: Meta) -> Cadence | None:
    """The check for ``stream`` served by a model of ``meta`` (None: it records no step)."""
    step = trained_step(meta)
    return None if step is None or step <= 0 else Cadence(stream, step, meta.window.length)
