"""Per-stream decisions: a window's threshold, its verdict, and the anomaly events they form.

One :class:`Decider` per stream sees the stream's window scores in order and is used alike by
offline scoring and by the daemon, so both decide exactly the same.

- **Threshold.** The calibrated ``threshold``; with ``adaptive_window`` W > 0 also the running
  ``adaptive_quantile`` of W scores times ``exp(adaptive_margin)``, whichever is higher. The
  history starts full: the calibration scores, repeated to W, which the stream's scores then
  displace one by one. So a high quantile is not moved by a few anomalous windows, not even at
  the start of a stream, but follows slow drift and rises on streams whose spikes are routine.
  With ``adaptive_delay`` D, a score joins that history only D windows later (the W scores are
  those before the last D), so an incident is not learned as normal while its first D windows
  last: a persistent fault stays above the threshold instead of raising it.
- **Tail probability.** Each window's ``p``: the share of that same history (the stream's recent
  scores, D windows old) at or above its score, counting the window itself, ``(k + 1) / (W +
  1)``. A conformal p-value: while the stream behaves as its history did, ``p <= a`` holds for
  at most a fraction ``a`` of its windows, on every stream alike, whatever its scores' units; so
  one alert rule on ``p`` means the same false-alarm rate everywhere (``1 / (W + 1)`` is the
  smallest ``p``: higher than every remembered score). None without an adaptive history.
- **Events.** A window is *above* when its score exceeds its threshold. The stream is *active*
  at window t when, at some window of the last ``resolve_after`` windows, at least ``open_after``
  of the ``within`` windows up to it were above (2 of 6 by default: a lone noisy window opens
  nothing). An event opens at the first active window and resolves at the first inactive one:
  one message each.

Every decision at window t depends only on windows t - ``history`` .. t (a bounded history), so a
daemon that re-reads that much after a restart rebuilds exactly the same state.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aemon.core.errors import ArtifactError
from aemon.core.times import iso

if TYPE_CHECKING:
    from aemon.core.artifact import Meta
    from aemon.core.detector import Detector
    from aemon.core.learning import Learning


def event_id(model_version: str, stream: str, seq: int, ts: float) -> str:
    """Deterministic: the event opened at the same window (its ``seq`` and time ``ts``) by the
    same model has the same id; a stream that ended and counts from 0 again opens new ones."""
    raw = f"event\x1f{model_version}\x1f{stream}\x1f{seq}\x1f{ts!r}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class Rule:
    """How a stream's windows become verdicts and events (stored in the artifact)."""

    threshold: float
    adaptive_window: int = 0
    adaptive_quantile: float = 0.99
    adaptive_margin: float = 0.2
    adaptive_delay: int = 0
    open_after: int = 1
    within: int = 6
    resolve_after: int = 12
    seed: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ValueError(f"threshold must be finite and >= 0, got {self.threshold}")
        if self.adaptive_window < 0:
            raise ValueError("adaptive_window must be >= 0")
        if self.adaptive_delay < 0:
            raise ValueError("adaptive_delay must be >= 0")
        if not 0 < self.adaptive_quantile < 1:
            raise ValueError("adaptive_quantile must be in (0, 1)")
        if not 1 <= self.open_after <= self.within:
            raise ValueError("open_after must be between 1 and within")
        if self.resolve_after < 1:
            raise ValueError("resolve_after must be >= 1")

    @property
    def history(self) -> int:
        """Windows before t that a decision at t may depend on."""
        return self.adaptive_window + self.adaptive_delay + self.within + self.resolve_after

    def warmup(self, learning: Learning | None) -> int:
        """Windows of a stream met in the middle (its first window not its first ever) scored
        before it decides: those a decision depends on and, for a model that keeps learning,
        those its updates read."""
        return self.history + (0 if learning is None else learning.history)

    def to_dict(self) -> dict[str, object]:
        return {
            "adaptive_window": self.adaptive_window,
            "adaptive_quantile": self.adaptive_quantile,
            "adaptive_margin": self.adaptive_margin,
            "adaptive_delay": self.adaptive_delay,
            "open_after": self.open_after,
            "within": self.within,
            "resolve_after": self.resolve_after,
        }

    @classmethod
    def from_meta(cls, meta: Meta) -> Rule:
        """The rule an artifact records (fixed threshold, one-window events when it has none)."""
        try:
            return cls(meta.threshold, seed=meta.calibration_tail, **(meta.event_rule or {}))
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"the event rule of model {meta.name!r}: {exc}") from None


# The event rule of `aemon train series` and the benchmarks (`aemon nab`, `skab`, `asd`) unless
# their flags say otherwise.
DEFAULT_EVENT_RULE = Rule(
    threshold=0.0, adaptive_window=2000, adaptive_delay=300, open_after=2
).to_dict()


def event_rule(**settings: int | float | None) -> dict[str, int | float]:
    """The default event rule with the ``settings`` given (None keeps the default)."""
    return {**DEFAULT_EVENT_RULE, **{k: v for k, v in settings.items() if v is not None}}


RAISED = 100  # an adaptive threshold this many times the calibrated one


def raised(threshold: float, rule: Rule) -> bool:
    """Whether a window's ``threshold`` stands over :data:`RAISED` times ``rule``'s calibrated
    one: the stream learned scores that high into its history, and is blind to smaller faults
    until they leave it (a metric that moved for good keeps it so)."""
    return threshold > RAISED * rule.threshold > 0


def raised_line(stream: str, ts: float, threshold: float, rule: Rule) -> str:
    """The line for a stream whose threshold was raised (:func:`raised`) at time ``ts``."""
    return (
        f"stream {stream!r}: its threshold is {threshold / rule.threshold:,.0f} times its "
        f"calibrated {rule.threshold:.4g} since {iso(ts)}: at least 1% of the "
        f"{rule.adaptive_window:,} scores in its history (those before its newest "
        f"{rule.adaptive_delay:,} windows) are near it, and a smaller fault on it goes unseen "
        "until they leave that history; if "
        "that is a change that stays (a metric constant in its training history moved), retrain "
        "its model on history since the change"
    )


@dataclass
class Event:
    """An anomaly event of one stream; ``end_*`` is the last window above the threshold."""

    stream: str
    start_seq: int
    start_ts: float
    end_seq: int
    end_ts: float
    peak_score: float
    windows_above: int
    resolved_seq: int | None = None
    resolved_ts: float | None = None
    min_p: float | None = None  # the smallest tail probability of a window in the event
    opening_channels: list[float] | None = None  # each metric's error as it opened (several)
    opened_by: str = ""  # the version of the model that opened it, where one was swapped in since

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Verdict:
    threshold: float
    above: bool
    p: float | None = None
    opened: Event | None = None
    resolved: Event | None = None
    raised: bool | None = None  # the stream's threshold became raised (True) or not (False)


def _log(score: float) -> float:
    return math.log(max(score, 1e-12))


@functools.lru_cache(maxsize=256)
def _seeded(rule: Rule) -> tuple[array, array]:
    """The history a stream's decider starts with: the calibration scores' logs cycled to W
    entries, in order and sorted (computed once per rule; every new stream copies them)."""
    seed = rule.seed[-rule.adaptive_window :]
    logs = [_log(seed[i % len(seed)]) for i in range(rule.adaptive_window)]
    return array("d", logs), array("d", sorted(logs))


@dataclass
class Decider:
    """The decision state of one stream; feed it windows in order with :meth:`push`."""

    rule: Rule
    stream: str = ""
    # Log-scores as packed doubles (8 bytes each, not a float object and a pointer): the W
    # before the last D in order, the last D in order, and the W sorted.
    _recent: array = field(default_factory=lambda: array("d"))
    _pending: array = field(default_factory=lambda: array("d"))
    _sorted: array = field(default_factory=lambda: array("d"))
    _above: deque = field(default_factory=deque)  # last `within` verdicts
    _since_trigger: int = 1 << 30
    _last_seq: int = 0  # the seq and time of the last window
    _last_ts: float = 0.0
    event: Event | None = None
    raised: bool = False  # its threshold is raised (:func:`raised`)

    def __post_init__(self) -> None:
        if self.rule.adaptive_window and self.rule.seed:
            recent, ordered = _seeded(self.rule)
            self._recent, self._sorted = recent[:], ordered[:]  # copies: each stream's own

    def _remember(self, v: float) -> None:
        """A stream's log-score: learned now, or after ``adaptive_delay`` more windows."""
        if not self.rule.adaptive_window:
            return
        if self.rule.adaptive_delay:
            self._pending.append(v)
            if len(self._pending) <= self.rule.adaptive_delay:
                return
            v = self._pending.pop(0)
        self._learn(v)

    def _learn(self, v: float) -> None:
        w = self.rule.adaptive_window
        self._recent.append(v)
        bisect.insort(self._sorted, v)
        if len(self._recent) > w:
            old = self._recent.pop(0)
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def current_threshold(self) -> float:
        """The threshold the next window will be judged by."""
        r = self.rule
        if not r.adaptive_window or not self._sorted:
            return r.threshold
        s = self._sorted
        pos = r.adaptive_quantile * (len(s) - 1)  # numpy's 'linear' quantile
        lo = math.floor(pos)
        hi = min(lo + 1, len(s) - 1)
        q = s[lo] + (s[hi] - s[lo]) * (pos - lo)
        return max(r.threshold, math.exp(q + r.adaptive_margin))

    def tail_probability(self, score: float) -> float | None:
        """The share of the stream's remembered scores at or above ``score``, counting this one:
        ``(k + 1) / (n + 1)``; None when there is no history (``adaptive_window`` 0)."""
        s = self._sorted
        if not s:
            return None
        k = len(s) - bisect.bisect_left(s, _log(score))
        return (k + 1) / (len(s) + 1)

    def push(
        self, seq: int, ts: float, score: float, channels: Sequence[float] | None = None
    ) -> Verdict:
        """Judge the next window of the stream; say whether an event opened or resolved.
        ``channels``: the window's error per metric (several-metric streams), kept for the
        window that opens an event (later windows' errors spread over every metric as the
        model's reconstruction drifts off as a whole)."""
        r = self.rule
        self._last_seq, self._last_ts = seq, ts
        thr = self.current_threshold()
        above = score > thr
        p = self.tail_probability(score)
        self._remember(_log(score))
        self._above.append(above)
        if len(self._above) > r.within:
            self._above.popleft()
        self._since_trigger = 0 if sum(self._above) >= r.open_after else self._since_trigger + 1
        active = self._since_trigger < r.resolve_after
        verdict = Verdict(thr, above, p)
        if (high := raised(thr, r)) != self.raised:
            self.raised = verdict.raised = high
        ev = self.event
        if active and ev is None:
            ev = self.event = Event(self.stream, seq, ts, seq, ts, score, int(above), min_p=p)
            ev.opening_channels = None if channels is None else [float(c) for c in channels]
            verdict.opened = ev
        elif active and ev is not None:
            if above:
                ev.end_seq, ev.end_ts = seq, ts
                ev.windows_above += 1
            ev.peak_score = max(ev.peak_score, score)
            if p is not None and ev.min_p is not None:
                ev.min_p = min(ev.min_p, p)
        elif ev is not None:
            ev.resolved_seq, ev.resolved_ts = seq, ts
            verdict.resolved = ev
            self.event = None
        return verdict

    def adopt(self, rule: Rule, same_scores: bool) -> None:
        """Judge the next windows by ``rule``: the stream's model was replaced (its threshold,
        event rule or weights). ``same_scores``: the new model scores every window as the old
        one did (only its threshold or event rule changed), so the scores remembered stay, as the
        new rule keeps them: the history a restart would rebuild from the same windows (when it
        is no longer than the old rule's: a longer one starts with fewer of them). Else they
        were another model's, and the history starts afresh from the new rule's calibration
        scores, as a new stream's does. An open event stays open, and the last verdicts count
        on towards resolving it."""
        if same_scores and rule == self.rule:  # the same artifact read again (SIGHUP)
            self.rule = rule
            return
        scores = [*self._recent, *self._pending] if same_scores else []
        self.rule = rule
        self._recent, self._pending, self._sorted = array("d"), array("d"), array("d")
        if rule.adaptive_window:  # as pushing the scores into a new stream's decider would
            learned = len(scores) - min(rule.adaptive_delay, len(scores))
            seed = _seeded(rule)[0] if rule.seed else array("d")
            self._recent = (seed + array("d", scores[:learned]))[-rule.adaptive_window :]
            self._pending = array("d", scores[learned:])
            self._sorted = array("d", sorted(self._recent))
        while len(self._above) > rule.within:
            self._above.popleft()

    def state(self) -> dict[str, object]:
        """What :meth:`resumed` needs besides the rule, right after :meth:`adopt` of a model of
        other weights (whose score history is the calibration scores alone): the last verdicts,
        the open event and the raised flag (JSON-ready; floats round-trip exactly)."""
        assert not self._pending and (not self.rule.seed or self._recent == _seeded(self.rule)[0])
        return {
            "above": list(self._above),
            "since_trigger": self._since_trigger,
            "last": [self._last_seq, self._last_ts],
            "event": None if self.event is None else self.event.to_dict(),
            "raised": self.raised,
        }

    @classmethod
    def resumed(cls, rule: Rule, stream: str, state: dict) -> Decider:
        """The decider that :meth:`state` describes, judging by ``rule`` (a restart rebuilds a
        swapped-in model's stream from there, not from windows another model scored)."""
        d = cls(rule, stream)
        d._above = deque(bool(a) for a in state["above"])
        d._since_trigger = int(state["since_trigger"])
        d._last_seq, d._last_ts = int(state["last"][0]), float(state["last"][1])
        d.event = None if state["event"] is None else Event(**state["event"])
        d.raised = bool(state["raised"])
        return d

    def end(self) -> Event | None:
        """The stream ended (its end marker): its open event, if any, resolved at its last
        window."""
        ev, self.event = self.event, None
        if ev is not None:
            ev.resolved_seq, ev.resolved_ts = self._last_seq, self._last_ts
        return ev


def top_metrics(errors: Sequence[float], names: list[str], k: int = 3) -> list[dict]:
    """The ``k`` metrics with the largest error in a window, each with its share of the
    window's error (the metrics that moved)."""
    total = sum(errors) or 1.0
    ranked = sorted(range(len(errors)), key=lambda i: -errors[i])[:k]
    return [{"metric": names[i], "share": round(errors[i] / total, 3)} for i in ranked]


def event_record(ev: Event, det: Detector, state: str, ended: bool = False) -> dict:
    """An event as the alerts topic carries it (``state``: open or resolved; ``ended``: resolved
    by its stream's end marker): its times as epoch seconds (``*_ts``) and as ISO 8601 UTC
    (``*_time``), as the scores CSV writes them."""
    opener = ev.opened_by or det.version  # the id stays the opening model's
    doc = {
        "event_id": event_id(opener, ev.stream, ev.start_seq, ev.start_ts),
        "state": state,
        **ev.to_dict(),
        "model": det.name,
        "model_version": det.version,
    }
    del doc["opened_by"]
    opening = doc.pop("opening_channels")
    if doc["min_p"] is None:
        doc.pop("min_p")
    if opening is not None:
        doc["top_metrics"] = top_metrics(opening, det.meta.metric_names)
    if state == "open":
        for k in ("resolved_seq", "resolved_ts"):
            doc.pop(k)
    elif ended:
        doc["ended"] = True  # resolved because its stream ended, at its last window
    for k in ("start", "end", "resolved"):
        if f"{k}_ts" in doc:
            doc[f"{k}_time"] = iso(doc[f"{k}_ts"])
    return doc
