"""Per-stream sliding windows over samples: the one rule offline cutting and the daemon share.

A window ends at every sample whose per-stream index ``seq`` satisfies ``seq + 1 >= length`` and
``(seq + 1 - length) % stride == 0``; it holds the ``length`` samples up to and including it and
takes that sample's ``seq``. Samples should carry ``seq`` (0, 1, 2, ... per stream); without it
the stream's arrival count stands in.

The clock rule: **order is the sample order, never the clock.** Timestamps label windows and
events (and, with a clock, tell the model the hour) but do not reorder or refuse
samples, so a daylight-saving hour stamped twice or a clock stepping back changes nothing. A
sample whose ``seq`` is not after the stream's last is a repeat (:class:`LateSample`); a jump in
``seq`` is a gap: the stream's buffer restarts, since a window must hold contiguous samples.

Delivery: windows are aligned on ``seq``, so re-reading a partition from an earlier offset
rebuilds exactly the same windows. With ``history`` H, each stream also remembers where its last
H + 1 windows start: :meth:`Windower.safe_offset` (the lowest offset still needed: buffered
samples and those windows) lets a restart re-read the H windows a stream's next decision depends
on, so it is rebuilt exactly.

The clock: with ``clock``, each sample also carries two channels after its values: where its
timestamp falls in the UTC day, as a point on the unit circle (:func:`time_of_day`), so that a model
can tell the night's quiet from the day's peak; or in the UTC week (:func:`time_of_week`), so that
it can also tell a Wednesday from a Sunday; or zeros, for a stream whose model has a *blank*
clock (trained on less than a day, beside models that see the hour). The same timestamp gives
the same two numbers offline and in the daemon (Python's ``math``, one sample at a time).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aemon.core.errors import ConfigError

DAY = 86_400.0  # seconds
WEEK = 7 * DAY
MONDAY = 4 * DAY  # the first Monday 00:00 UTC after the epoch (a Thursday): where a week starts
CLOCK_CHANNELS = 2  # the angle's sine and cosine
# What a model's clock channels hold (the artifact's ``input.clock``): each sample's time of day
# or of the week, or zeros (a blank clock).
TIME_OF_DAY, TIME_OF_WEEK, BLANK = "time_of_day", "time_of_week", "blank"
CLOCKS = (TIME_OF_DAY, TIME_OF_WEEK, BLANK)
HOUR_WORDS = {TIME_OF_DAY: "time of day", TIME_OF_WEEK: "time of week"}  # the clocks, in words


def window_channels(values: int, clock: bool) -> int:
    """Channels of a window: a sample's values, then the clock's two when there is one."""
    return values + (CLOCK_CHANNELS if clock else 0)


def time_of_day(ts: float) -> tuple[float, float]:
    """Where epoch seconds ``ts`` fall in the UTC day, as (sine, cosine) of its angle: midnight
    and the minute before it are neighbours."""
    angle = 2.0 * math.pi * ((ts % DAY) / DAY)
    return math.sin(angle), math.cos(angle)


def time_of_week(ts: float) -> tuple[float, float]:
    """Where epoch seconds ``ts`` fall in the UTC week (from Monday 00:00), as (sine, cosine) of
    its angle: Sunday's last minute and Monday's first are neighbours."""
    angle = 2.0 * math.pi * (((ts - MONDAY) % WEEK) / WEEK)
    return math.sin(angle), math.cos(angle)


def clock_values(clock: str | None, ts: float) -> tuple[float, float] | None:
    """A sample's clock channels for a model whose ``input.clock`` is ``clock``: its time of day
    or of the week, zeros (blank), or None (the model has no clock channels)."""
    if clock is None:
        return None
    if clock == TIME_OF_DAY:
        return time_of_day(ts)
    return time_of_week(ts) if clock == TIME_OF_WEEK else (0.0, 0.0)


def window_index(seq: Any, length: int, stride: int) -> Any:
    """The position among its stream's windows of the window ending at sample ``seq`` (an int, or
    an integer array of them)."""
    return (seq + 1 - length) // stride


def check_stride(stride: int | None, length: int, length_name: str) -> None:
    """One clear error for a window stride outside 1..length (``length_name``: how the user
    named the length, e.g. ``--length 8``)."""
    if stride is not None and not 1 <= stride <= length:
        raise ConfigError(f"--stride must be between 1 and {length_name}")


class LateSample(ValueError):
    """A sample whose ``seq`` is not after its stream's last one."""


def sample_seq(seq: int | None, next_seq: int) -> int:
    """The ``seq`` a sample is windowed at: its own, else its stream's next (``next_seq``);
    raises :class:`LateSample` for one not after the stream's last."""
    if seq is None:
        return next_seq
    if seq < next_seq:
        why = f"seq {seq} is not after the stream's last ({next_seq - 1})"
        if seq == 0 and next_seq > 1:  # a producer restarted, or a second file replayed
            why += " (its producer counts from 0 again: continue its count)"
        raise LateSample(why)
    return seq


@dataclass
class _Stream:
    # The last ``len(offsets)`` samples since the last gap (at most ``length``, with their
    # offsets), in rows ``end - len(offsets) .. end - 1`` of ``buf`` (float32 ``[2 * length,
    # window channels]``): a window is a view of ``length`` consecutive rows, and the last
    # ``length - 1`` rows move to the front once ``buf`` is full.
    buf: np.ndarray
    end: int = 0
    offsets: deque = field(default_factory=deque)
    next_seq: int = 0
    # First-sample offsets of the last H + 1 windows, packed (8 bytes each, not an int object)
    starts: array = field(default_factory=lambda: array("q"))
    counted: bool = False  # its samples carry no seq: the windower counts them
    last_window: int = -1  # the index of its last window

    def history_seq(self, stride: int) -> int:
        """The seq of the sample its last H + 1 windows start at (``starts[0]``), for a counted
        stream: it has no gaps, so its windows' first samples are ``stride`` apart."""
        return (self.last_window - len(self.starts) + 1) * stride


@dataclass
class Windower:
    """Windows of ``length`` samples, one every ``stride`` samples, each sample's clock channels
    (if its model has them) after its values. A stream's samples are as wide as its first one:
    streams may differ (a pump's 8 metrics beside a server's 19, with a clock or without)."""

    length: int
    stride: int
    history: int = 0  # windows before the next one that a stream's decisions depend on
    gaps: int = 0  # jumps in a stream's seq (each restarts the stream's window)
    last_gap: tuple[str, int, int] | None = None  # (stream, the seq expected, the seq that came)
    split: int = 0  # streams met on a second partition (their samples are not keyed by stream)
    last_split: tuple[str, int, int] | None = None  # (stream, one partition, the other)
    _state: dict[int, dict[str, _Stream]] = field(default_factory=dict)
    # per partition: counted streams' anchors read back after a restart (see :meth:`restore`)
    _restored: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)
    _counted: dict[int, dict[str, _Stream]] = field(default_factory=dict)  # of ``_state``

    def __post_init__(self) -> None:
        if not 1 <= self.stride <= self.length:
            raise ValueError("window stride must be between 1 and the window length")

    def index(self, seq: int) -> int:
        """The position of the window ending at sample ``seq`` among its stream's windows."""
        return window_index(seq, self.length, self.stride)

    def push(
        self,
        partition: int,
        offset: int,
        stream: str,
        seq: int | None,
        sample: np.ndarray,
        out: np.ndarray,
        clock: tuple[float, float] | None = None,
    ) -> int | None:
        """Add a sample (its values, and its ``clock`` channels (:func:`clock_values`) if its
        model has them); when it ends a window, copy the window into ``out`` and return its seq.

        The window fills the start of ``out`` in the artifact's input order: ``[length]`` for one
        channel, else ``[window channels, length]`` (``out`` may be longer: a batch row sized for
        the widest stream). Raises :class:`LateSample` for a repeated or earlier ``seq``.
        """
        length = self.length
        streams = self._state.setdefault(partition, {})
        s = streams.get(stream)
        if s is None:
            start = 0
            restored = self._restored.get(partition) if seq is None else None
            anchor = restored.get(stream) if restored else None
            if anchor is not None:
                if offset < anchor[0]:
                    return None  # decided before: the stream's count resumes at its anchor
                del restored[stream]  # (a later offset: the anchor's sample is gone; resume)
                start = anchor[1]
            wide = window_channels(len(sample), clock is not None)
            s = streams[stream] = _Stream(np.empty((2 * length, wide), np.float32))
            s.counted, s.next_seq = seq is None, start
            if s.counted:
                self._counted.setdefault(partition, {})[stream] = s
            other = next(
                (q for q, st in self._state.items() if q != partition and stream in st), None
            )
            if other is not None:
                self.split += 1
                self.last_split = (stream, other, partition)
        seq = sample_seq(seq, s.next_seq)
        if seq > s.next_seq and s.offsets:
            self.gaps += 1
            self.last_gap = (stream, s.next_seq, seq)
            s.offsets.clear()
        s.next_seq = seq + 1
        if s.end == len(s.buf):
            s.buf[: length - 1] = s.buf[s.end - length + 1 :]
            s.end = length - 1
        row = s.buf[s.end]
        row[: len(sample)] = sample
        if clock is not None:
            row[len(sample) :] = clock
        s.end += 1
        s.offsets.append(offset)
        if len(s.offsets) > length:
            s.offsets.popleft()
        if len(s.offsets) < length or (seq + 1 - length) % self.stride:
            return None
        s.last_window = window_index(seq, length, self.stride)
        if self.history:
            s.starts.append(s.offsets[0])
            if len(s.starts) > self.history + 1:
                s.starts.pop(0)
        window = s.buf[s.end - length : s.end]  # [length, channels]
        ordered = window[:, 0] if window.shape[1] == 1 else window.T  # the model's input order
        out.reshape(-1)[: window.size] = ordered.ravel()
        return seq

    def history_offset(self, partition: int, stream: str) -> int:
        """Where the stream's last ``history`` + 1 windows start (call right after a window)."""
        return self._state[partition][stream].starts[0]

    def history_seq(self, partition: int, stream: str) -> int | None:
        """The seq of the sample at :meth:`history_offset` for a stream the windower counts
        (None for one that sends seq): a counted stream has no gaps, so its windows' first
        samples are ``stride`` apart."""
        s = self._state[partition][stream]
        return s.history_seq(self.stride) if s.counted else None

    def counts(self, partition: int) -> bool:
        """Whether ``partition`` has counted streams (or anchors of some not met again yet)."""
        return bool(self._counted.get(partition) or self._restored.get(partition))

    def anchors(self, partition: int) -> dict[str, tuple[int, int]]:
        """Each counted stream's earliest sample still needed (the one :meth:`safe_offset`
        counts for it), as (offset, seq): kept with a commit, they let a restart that re-reads
        from there count each such stream on from where it was (:meth:`restore`). A stream
        restored but not met again since keeps the anchor it was restored with."""
        out = dict(self._restored.get(partition, {}))
        for name, s in self._counted.get(partition, {}).items():
            if s.starts:
                out[name] = (s.starts[0], s.history_seq(self.stride))
            elif s.offsets:
                out[name] = (s.offsets[0], s.next_seq - len(s.offsets))
        return out

    def restore(self, partition: int, anchors: dict[str, tuple[int, int]], first: int) -> None:
        """After a restart or a takeover that re-reads ``partition`` from offset ``first``: a
        counted stream with an anchor skips its samples before the anchor's offset (decided
        before) and counts on from the anchor's seq at it. An anchor before ``first`` is left
        out (its stream counts from 0): the commit only passes a stream's anchor once the
        stream has ended (or its sample is gone), and such an anchor may be one kept before
        its end."""
        self._restored[partition] = {s: a for s, a in anchors.items() if a[0] >= first}

    def committed(self, partition: int, offset: int) -> None:
        """``partition``'s commit is at ``offset``: the anchors of streams not met again that
        lie before it are dropped (an ended stream's ``(marker + 1, 0)``; :meth:`restore` leaves
        such anchors out too), so that the anchors kept with each commit do not grow with every
        stream that ever ended there."""
        restored = self._restored.get(partition)
        if restored:
            for stream in [s for s, (o, _) in restored.items() if o < offset]:
                del restored[stream]

    def holder(self, partition: int) -> tuple[str, int, int, int] | None:
        """What holds ``partition``'s commit back: the stream whose needed samples start
        earliest, as (stream, that offset, the offset of its last sample, the partition's
        stream count); None without streams."""
        streams = self._state.get(partition, {})
        found: tuple[str, int, int] | None = None
        for name, s in streams.items():
            if not s.offsets:
                continue
            held = min(s.offsets[0], s.starts[0]) if s.starts else s.offsets[0]
            if found is None or held < found[1]:
                found = (name, held, s.offsets[-1])
        return None if found is None else (*found, len(streams))

    def safe_offset(self, partition: int, next_offset: int) -> int:
        """The offset to commit for ``partition`` so that nothing still needed is lost."""
        held = [
            o
            for s in self._state.get(partition, {}).values()
            for o in ((s.offsets[0] if s.offsets else None), (s.starts[0] if s.starts else None))
            if o is not None
        ]
        return min([next_offset, *held])

    def end(self, partition: int, offset: int, stream: str, after: int | None = None) -> bool:
        """The stream's end marker at ``offset``: forget the stream (its samples no longer hold
        the commit back), so that its next sample starts it afresh; whether it ended. With
        ``after``, only if its last sample is at offset ``after`` (else it sent again since the
        marker was sent, and goes on). A stream without seq then counts from 0 again, and its
        anchor says so, ``(offset + 1, 0)``, until it sends again or the commit passes it
        (:meth:`committed`): a restart that re-reads from before that must not count it on from
        an anchor kept before the marker."""
        streams = self._state.get(partition, {})
        s = streams.get(stream)
        if after is not None and (s is None or not s.offsets or s.offsets[-1] != after):
            return False
        streams.pop(stream, None)
        restored = self._restored.setdefault(partition, {})
        if self._counted.get(partition, {}).pop(stream, None) is not None or stream in restored:
            restored[stream] = (offset + 1, 0)
        return s is not None

    def silent(self, partition: int, before: int) -> list[tuple[str, int]]:
        """The streams of ``partition`` whose last sample came before offset ``before``, each
        with that sample's offset."""
        return [
            (name, s.offsets[-1])
            for name, s in self._state.get(partition, {}).items()
            if s.offsets and s.offsets[-1] < before
        ]

    def drop(self, partitions: list[int]) -> None:
        """Forget the state of partitions this consumer no longer owns."""
        for p in partitions:
            self._state.pop(p, None)
            self._restored.pop(p, None)
            self._counted.pop(p, None)
