"""Per-stream sliding windows over samples: the one rule offline cutting and the daemon share.

A window ends at every sample whose per-stream index ``seq`` satisfies ``seq + 1 >= length`` and
``(seq + 1 - length) % stride == 0``; it holds the ``length`` samples up to and including it and
takes that sample's ``seq``. Samples should carry ``seq`` (0, 1, 2, ... per stream); without it
the stream's arrival count stands in.

The clock rule: **order is the sample order, never the clock.** Timestamps label windows and
events but do not reorder or refuse samples, so a daylight-saving hour stamped twice or a clock
stepping back changes nothing. A sample whose ``seq`` is not after the stream's last is a repeat
(:class:`LateSample`); a jump in ``seq`` is a gap: the stream's buffer restarts, since a window
must hold contiguous samples.

Delivery: windows are aligned on ``seq``, so re-reading a partition from an earlier offset
rebuilds exactly the same windows. :meth:`Windower.safe_offset` is the lowest offset still
needed (buffered samples, and the first samples of the windows a stream's decisions still depend
on, see :meth:`Windower.hold`); committing no further than it means a restart loses nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


class LateSample(ValueError):
    """A sample whose ``seq`` is not after its stream's last one."""


@dataclass
class _Stream:
    values: deque = field(default_factory=deque)  # float32 [channels] per sample
    offsets: deque = field(default_factory=deque)
    next_seq: int = 0
    held: int | None = None  # offset of the oldest sample the stream's decisions still need
    starts: deque = field(default_factory=deque)  # (seq, first-sample offset) of recent windows


@dataclass
class Windower:
    """Windows of ``length`` samples of ``channels`` values, one every ``stride`` samples."""

    length: int
    stride: int
    channels: int = 1
    keep_windows: int = 0  # how many recent windows' first offsets to remember (see hold)
    gaps: int = 0
    _state: dict[int, dict[str, _Stream]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.stride <= self.length:
            raise ValueError("window stride must be between 1 and the window length")

    def index(self, seq: int) -> int:
        """The position of the window ending at sample ``seq`` among its stream's windows."""
        return (seq + 1 - self.length) // self.stride

    def push(
        self,
        partition: int,
        offset: int,
        stream: str,
        seq: int | None,
        sample: np.ndarray,
        out: np.ndarray,
    ) -> int | None:
        """Add a sample; when it ends a window, copy the window into ``out`` and return its seq.

        ``out`` has the artifact's input shape: ``[length]`` for one channel, else
        ``[channels, length]``. Raises :class:`LateSample` for a repeated or earlier ``seq``.
        """
        s = self._state.setdefault(partition, {}).setdefault(stream, _Stream())
        if seq is None:
            seq = s.next_seq
        if seq < s.next_seq:
            raise LateSample(f"seq {seq} is not after the stream's last ({s.next_seq - 1})")
        if seq > s.next_seq and s.values:
            self.gaps += 1
            s.values.clear()
            s.offsets.clear()
        s.next_seq = seq + 1
        s.values.append(sample)
        s.offsets.append(offset)
        if len(s.values) > self.length:
            s.values.popleft()
            s.offsets.popleft()
        if len(s.values) < self.length or (seq + 1 - self.length) % self.stride:
            return None
        if self.keep_windows:
            s.starts.append((seq, s.offsets[0]))
            if len(s.starts) > self.keep_windows:
                s.starts.popleft()
        window = np.stack(s.values)  # [length, channels]
        out.reshape(-1)[:] = (window[:, 0] if self.channels == 1 else window.T).ravel()
        return seq

    def hold(self, partition: int, stream: str, from_seq: int | None) -> None:
        """Keep the samples of the stream's windows from the one ending at ``from_seq`` on
        (``None``: nothing beyond the current buffer), so a restart can rebuild its decisions."""
        s = self._state.get(partition, {}).get(stream)
        if s is None:
            return
        s.held = None
        if from_seq is not None:
            s.held = next((o for q, o in s.starts if q >= from_seq), None)

    def safe_offset(self, partition: int, next_offset: int) -> int:
        """The offset to commit for ``partition`` so that nothing still needed is lost."""
        held = [
            o
            for s in self._state.get(partition, {}).values()
            for o in ((s.offsets[0] if s.offsets else None), s.held)
            if o is not None
        ]
        return min([next_offset, *held])

    def drop(self, partitions: list[int]) -> None:
        """Forget the state of partitions this consumer no longer owns."""
        for p in partitions:
            self._state.pop(p, None)
