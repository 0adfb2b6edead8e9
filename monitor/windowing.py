"""Per-stream sliding windows over sample messages.

A window ends at every sample whose per-stream index ``seq`` satisfies
``seq + 1 >= length`` and ``(seq + 1 - length) % stride == 0``; it holds the ``length`` samples up
to and including it, and takes that sample's ``seq`` and ``ts``. Samples should carry ``seq`` (0, 1,
2, ... per stream); without it the stream's arrival count stands in. A sample whose ``seq`` or
``ts`` is not after the stream's last one is late (dropped, counted); a jump in ``seq`` is a gap:
the stream's buffer restarts, since a window must hold contiguous samples.

Delivery: because windows are aligned on ``seq``, re-reading a partition from an earlier offset
rebuilds exactly the same windows (same ``seq``, so the same alert id). :meth:`safe_offset` is the
lowest offset still buffered; committing no further than it means a restart loses no window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from monitor.codec import Invalid


@dataclass
class _Stream:
    values: deque = field(default_factory=deque)  # float32 [channels] per sample
    offsets: deque = field(default_factory=deque)
    next_seq: int = 0
    last_ts: float = float("-inf")


@dataclass
class Windower:
    """Windows of ``length`` samples of ``channels`` values, one every ``stride`` samples."""

    length: int
    stride: int
    channels: int = 1
    gaps: int = 0
    _state: dict[int, dict[str, _Stream]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.stride <= self.length:
            raise ValueError("window stride must be between 1 and the window length")

    def push(
        self,
        partition: int,
        offset: int,
        stream: str,
        seq: int | None,
        ts: float,
        sample: np.ndarray,
        out: np.ndarray,
    ) -> int | None:
        """Add a sample; when it ends a window, copy the window into ``out`` and return its seq.

        ``out`` has the artifact's input shape: ``[length]`` for one channel, else
        ``[channels, length]``. Raises :class:`Invalid` (``late_sample``) for late samples.
        """
        s = self._state.setdefault(partition, {}).setdefault(stream, _Stream())
        if seq is None:
            seq = s.next_seq
        if seq < s.next_seq or ts <= s.last_ts:
            raise Invalid("late_sample", f"seq {seq} / ts {ts} is not after the stream's last")
        if seq > s.next_seq and s.values:
            self.gaps += 1
            s.values.clear()
            s.offsets.clear()
        s.next_seq, s.last_ts = seq + 1, ts
        s.values.append(sample)
        s.offsets.append(offset)
        if len(s.values) > self.length:
            s.values.popleft()
            s.offsets.popleft()
        if len(s.values) < self.length or (seq + 1 - self.length) % self.stride:
            return None
        window = np.stack(s.values)  # [length, channels]
        out.reshape(-1)[:] = (window[:, 0] if self.channels == 1 else window.T).ravel()
        return seq

    def safe_offset(self, partition: int, next_offset: int) -> int:
        """The offset to commit for ``partition`` so that no buffered sample is lost."""
        held = [s.offsets[0] for s in self._state.get(partition, {}).values() if s.offsets]
        return min([next_offset, *held])

    def drop(self, partitions: list[int]) -> None:
        """Forget the state of partitions this consumer no longer owns."""
        for p in partitions:
            self._state.pop(p, None)
