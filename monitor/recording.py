"""A topic of samples recorded as the sample CSV ``aemon train series`` takes: the history a
stream's model trains on, read from the topic the daemon will serve.

Each message is decoded as the daemon decodes it (:func:`aemon.daemon.codec.decode_sample`), and
a stream's first sample fixes its metrics, as the model trained on them will: later samples are
taken as the daemon would take them for that model (by name, extra metrics left out; by
position, the same count) or left out and counted under the daemon's dead-letter reason. Each
sample's ``seq`` is the one the daemon windows it at (its own, else the next of its stream), so
that a jump is a gap offline as in the daemon, and a repeat is left out as ``late_sample``. A
stream's end marker is written as ``end`` = 1 on its last sample's row: offline scoring then
starts the stream afresh after it, as the daemon does, and a stream sent again counts its seq
from 0 again (without seq of its own). A marker that follows no sample of its stream ends
nothing here: left out, counted as ``end``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aemon.core.errors import DataError
from aemon.core.table import TIME_COLUMNS, writing
from aemon.core.windowing import LateSample, sample_seq
from aemon.daemon.codec import End, Limits, check_length, decode_sample
from aemon.daemon.invalid import Invalid
from aemon.training.datasets.samples import ID_COLUMNS


@dataclass
class _Stream:
    """A stream's samples so far, in arrays that double when full (a week of a fleet's samples
    is tens of millions: about 16 bytes a sample and 4 a value, not a Python object each)."""

    metrics: list[str]  # the CSV columns of its values, fixed by its first sample
    by_name: bool  # its first sample's values came by metric name
    n: int = 0
    next_seq: int = 0
    ends: list[int] = field(default_factory=list)  # samples its end marker followed
    ts: np.ndarray = field(default_factory=lambda: np.empty(64))
    seq: np.ndarray = field(default_factory=lambda: np.empty(64, dtype=np.int64))
    values: np.ndarray = field(init=False)  # float32 [room, metrics]

    def __post_init__(self) -> None:
        self.values = np.empty((len(self.ts), len(self.metrics)), dtype=np.float32)

    def append(self, ts: float, seq: int, values: np.ndarray) -> None:
        if self.n == len(self.ts):
            self.ts, self.seq, self.values = (
                np.concatenate([a, np.empty_like(a)]) for a in (self.ts, self.seq, self.values)
            )
        self.ts[self.n], self.seq[self.n], self.values[self.n] = ts, seq, values
        self.n += 1


def positional(width: int) -> list[str]:
    """Column names for values sent by position: ``value``, or ``value0``, ``value1``, ..."""
    return ["value"] if width == 1 else [f"value{i}" for i in range(width)]


@dataclass
class Recording:
    """The samples recorded so far, by stream, and the messages left out, by reason."""

    limits: Limits = field(default_factory=Limits)
    streams: dict[str, _Stream] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def samples(self) -> int:
        return sum(s.n for s in self.streams.values())

    def add(
        self,
        value: bytes | None,
        timestamp_ms: int,
        key: bytes | None = None,
        keep: set[str] | None = None,
    ) -> bool:
        """Record one message (of a stream in ``keep``, when given); True when it is a sample
        taken (not one left out, nor an end marker)."""
        try:
            sample = decode_sample(value, timestamp_ms, self.limits, key)
            if keep is not None and sample.stream not in keep:
                return False
            s = self.streams.get(sample.stream)
            if isinstance(sample, End):
                if s is None or s.ends[-1:] == [s.n - 1]:
                    self.refused["end"] += 1  # it ends no sample recorded
                    return False
                s.ends.append(s.n - 1)
                s.next_seq = 0  # a stream of the same name next, counted afresh
                return False
            if s is None:
                names = sample.names
                metrics = list(names) if names is not None else positional(len(sample.values))
                s = self.streams[sample.stream] = _Stream(metrics, names is not None)
            if s.by_name:
                values = sample.in_order(s.metrics)
            else:
                check_length(len(sample.values), len(s.metrics))
                values = sample.values
            seq = sample_seq(sample.seq, s.next_seq)
        except Invalid as bad:
            self.refused[bad.reason] += 1
            return False
        except LateSample:
            self.refused["late_sample"] += 1
            return False
        s.next_seq = seq + 1
        s.append(sample.ts, seq, values)
        return True

    def frame(self) -> pd.DataFrame:
        """One row per sample, stream after stream, in the order each arrived: ``timestamp``
        (epoch seconds), ``stream``, ``seq``, ``end`` when a stream ended (1 on the sample its
        end marker followed), then every stream's metrics (a stream's rows leave the others'
        metric columns empty)."""
        columns = list(dict.fromkeys(m for s in self.streams.values() for m in s.metrics))
        taken = [m for m in columns if m in (*TIME_COLUMNS, *ID_COLUMNS)]
        if taken:
            who = next(n for n, s in self.streams.items() if taken[0] in s.metrics)
            raise DataError(
                f"stream {who!r} sends a metric named {taken[0]!r}, which a sample CSV reads as "
                "its own column: rename it in the producer"
            )
        ids = ["timestamp", "stream", "seq"] + ["end"] * any(s.ends for s in self.streams.values())
        parts = []
        for name, s in self.streams.items():
            part = pd.DataFrame(s.values[: s.n], columns=s.metrics)
            if "end" in ids:
                end = np.zeros(s.n, dtype=np.int8)
                end[s.ends] = 1
                part.insert(0, "end", end)
            part.insert(0, "seq", s.seq[: s.n])
            part.insert(0, "stream", name)
            part.insert(0, "timestamp", s.ts[: s.n])
            parts.append(part)
        if not parts:
            return pd.DataFrame(columns=[*ids, *columns])
        return pd.concat(parts, ignore_index=True)[[*ids, *columns]]

    def write(self, path: Path) -> None:
        """The sample CSV at ``path`` (``-``: standard output)."""
        with writing(path) as fh:
            self.frame().to_csv(fh, index=False)

    def summary(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "streams": {
                name: {
                    "samples": s.n,
                    "metrics": s.metrics,
                    "first_ts": float(s.ts[0]),
                    "last_ts": float(s.ts[s.n - 1]),
                    "ended": len(s.ends),
                }
                for name, s in self.streams.items()
            },
            "left_out": dict(sorted(self.refused.items())),
        }
