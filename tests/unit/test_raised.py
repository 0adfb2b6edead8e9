"""A stream whose adaptive threshold rose past RAISED times its calibrated one: counted
(``aemon_raised_threshold_streams``), named once in the log, and let go with its stream."""

import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from aemon.core.artifact import Meta
from aemon.core.events import RAISED, Rule
from aemon.core.windowing import Windower
from aemon.daemon.batching import Batch
from aemon.daemon.decisions import Decisions
from aemon.daemon.metrics import Metrics
from aemon.daemon.scoring import Scored

RULE = Rule(threshold=1.0, adaptive_window=50, open_after=1, within=1, seed=(1.0,) * 50)


META = Meta({"threshold": {"value": 1.0}, "input": {"kind": "window", "shape": [1]}})
DET = SimpleNamespace(meta=META, version="v1", name="m")


def decisions() -> Decisions:
    takes = [SimpleNamespace(values=1)]
    models = SimpleNamespace(
        series=True, detectors=[DET], rules=[RULE], takes=takes, warmup=lambda m: 0
    )
    return Decisions(models, [DET], Windower(length=1, stride=1), "alerts", "")  # type: ignore[arg-type]


def batch(stream: str, seqs: range, finished: list | None = None) -> Batch:
    n = len(seqs)
    return Batch(
        values=np.zeros((n, 1), np.float32),
        n=n,
        streams=[stream] * n,
        seqs=list(seqs),
        ts=[1_700_000_000.0 + 300 * s for s in seqs],
        models=[0] * n,
        parts=[0] * n,
        holds=[0] * n,
        hold_seqs=[None] * n,
        dets=[DET] * n,
        offsets=list(seqs),
        resumes=[None] * n,
        finished=finished or [],
    )


def scored(scores: list[float]) -> Scored:
    empty = np.empty(0, np.int64)
    return Scored(np.array(scores, np.float32), empty, np.empty((0, 0), np.int64), 0.0)


def test_a_raised_threshold_is_counted_named_once_and_let_go_with_its_stream(caplog):
    d, m = decisions(), Metrics()
    high = 2 * RAISED  # a change that stays: every window scores it
    with caplog.at_level(logging.WARNING, logger="aemon.serve"):
        first = d.decide(batch("web-2", range(10)), scored([0.5] * 10), set())
        shifted = d.decide(batch("web-2", range(10, 20)), scored([high] * 10), set())
        again = d.decide(batch("web-2", range(20, 30)), scored([high] * 10), set())
        spike = d.decide(batch("web-2", range(30, 32)), scored([100 * high] * 2), set())
    assert (first.raised, shifted.raised, again.raised, spike.raised) == (0, 1, 0, 0)
    for x in (first, shifted, again, spike):
        m.decided(x)
    assert m.registry.get_sample_value("aemon_raised_threshold_streams") == 1
    assert m.registry.get_sample_value("aemon_events_open") == 1  # the spike's, still open
    (line,) = [r.message for r in caplog.records if "times its calibrated" in r.message]
    assert line.startswith("stream 'web-2': its threshold is 244 times its calibrated 1 since")
    assert "retrain its model on history since the change" in line
    ended = d.decide(batch("web-2", range(0), finished=[(0, 0, "web-2", 0)]), None, set())
    assert ended.raised == -1 and ended.resolved == 1 and ended.alerts == 1
    m.decided(ended)  # a batch of an end marker alone: the gauges still follow it
    assert m.registry.get_sample_value("aemon_raised_threshold_streams") == 0
    assert m.registry.get_sample_value("aemon_events_open") == 0


def test_dropped_partitions_return_their_raised_streams():
    d = decisions()
    d.decide(batch("a", range(5)), scored([2 * RAISED] * 5), set())
    d.decide(batch("b", range(5)), scored([0.5] * 5), set())
    assert d.drop([0]) == (1, 1)  # a's event, announced, and a's raised threshold


def test_offline_scoring_names_a_stream_whose_threshold_was_raised_as_the_daemon_does():
    """A metric constant through training that moves for good: the scores of offline scoring
    (``aemon score``, ``evaluate``, the benchmarks) warn once, with the daemon's line."""
    import aemon

    rng = np.random.default_rng(0)
    n = 900
    t = pd.date_range("2026-10-01", periods=n, freq="5min", tz="UTC")
    mem = np.where(np.arange(n) < 700, 8.0, 16.0)  # constant in training, moved for good
    cpu = 40 + 10 * np.sin(np.arange(n) / 20) + rng.normal(0, 1, n)
    df = pd.DataFrame({"timestamp": t, "stream": "h", "cpu": cpu, "mem": mem})
    with pytest.warns(UserWarning, match=r"mem \(8\) never changes in the fitted history"):
        series = aemon.fit_series(
            df, train_fraction=0.5, epochs=3, adaptive_window=50, adaptive_delay=5, learn=False
        )
    with pytest.warns(UserWarning, match=r"stream 'h': its threshold is [\d,]+ times its") as got:
        series.timeline(df)
    assert sum("times its calibrated" in str(w.message) for w in got) == 1
