"""``aemon bench`` end to end on a small topic: both loops, every figure, ratios that follow."""

from __future__ import annotations

import statistics

from aemon.core.detector import Detector
from aemon.core.learning import Learning
from aemon.core.table import read_windows
from aemon.tools import bench, scorer_bench, streams_bench
from aemon.training.presets import WINDOW_PRESETS


async def test_bench_reports_both_loops_and_their_paired_ratio(bootstrap, ecg):
    model, csv = ecg
    windows = read_windows(csv).values
    result = await bench.run(model, windows, 3000, bootstrap, rounds=2, progress=False)
    assert result["windows"] == 3000 and result["scorer"]["wps"] > 0
    for fmt in ("json", "f32"):
        r = result[fmt]
        assert r["bare_wps"] > 0 and r["full_wps"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
        assert len(r["round_ratios"]) == 2 and r["decode_ratio"] > 0
        assert abs(r["ratio"] - statistics.median(r["round_ratios"])) < 1e-3
        assert abs(r["rate"] - r["full_wps"] / 2) <= 1  # both rounded from one float
        assert 0 < r["alert_rate"] < 1
        assert r["fixed_rate"] == bench.FIXED_RATE
        assert r["fixed_p99_ms"] >= r["fixed_p50_ms"] > 0
        parts = r["fixed_to_fetch_ms"], r["fixed_in_daemon_ms"]
        for p50, p99 in parts:  # each record's total is its two parts (whole milliseconds)
            assert -1 <= p50 <= p99 <= r["fixed_p99_ms"] + 1
        assert r["fixed_p50_ms"] <= parts[0][1] + parts[1][1] + 1
        cpu = r["cpu_us_per_window"]  # the process's CPU time holds its event loop thread's
        assert cpu["bare_loop_thread"] > 0 and 0 < cpu["full_loop_thread"] <= cpu["full_process"]


def test_the_scorer_table_has_a_row_per_family_and_thread_count(ecg):
    model, csv = ecg
    trained = Detector.load(model, device="cpu")
    rows = scorer_bench.table(trained, read_windows(csv).values, (1, 2), (1, 256), seconds=0.05)
    families = [r["family"] for r in rows]
    assert families[0] == f"{trained.meta.family} (trained)" and len(rows) == 2 * 5
    assert set(families[2::2]) == set(WINDOW_PRESETS) and [r["threads"] for r in rows[:2]] == [1, 2]
    for r in rows:  # a batch of 256 is scored faster per window than one window at a time
        assert r["windows_per_s"]["256"] > r["windows_per_s"]["1"] > 0


async def test_the_many_streams_bench_measures_each_count_through_one_daemon(bootstrap):
    learning = Learning(every=50, span=100, delay=10, epochs=1)
    result = await streams_bench.run(bootstrap, (1, 40), per_stream=100, learning=learning)
    rows = result["rows"]
    assert [(r["streams"], r["learning"]) for r in rows] == [
        (1, False),
        (1, True),
        (40, False),
        (40, True),
    ]
    more = streams_bench.LATENCY_RATE * streams_bench.LATENCY_SECONDS  # the latency phase's
    assert [r["samples_per_stream"] for r in rows] == [
        100 + round(more / r["streams"]) for r in rows
    ]
    for r in rows:
        assert r["windows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
        # learning: every stream's model updated at least once (each has 93 windows or more)
        assert r["model_updates"] >= r["streams"] if r["learning"] else r["model_updates"] == 0
        if r["learning"]:  # restarted: without the learned-models topic, its updates again
            kept, retrained = r["restart"]["kept"], r["restart"]["retrained"]
            assert retrained["trained"] > 0 and retrained["restored"] == 0
            assert kept["restored"] > 0 and kept["trained"] < retrained["trained"]
        else:
            assert "restart" not in r
    # a stream's decider holds 2,300 scores and its windower 2,319 window starts, 8 bytes each
    assert 36_000 < result["state_bytes_per_stream"] < 120_000


async def test_the_many_streams_bench_measures_samples_without_seq_beside_those_with(bootstrap):
    """Each count again with samples that carry no seq: the daemon counts each stream (the
    bench gives each record the count the daemon gives it, so every latency finds its window)."""
    result = await streams_bench.run(bootstrap, (40,), per_stream=100, without_seq=True)
    rows = result["rows"]
    assert [(r["streams"], r["seq"]) for r in rows] == [(40, True), (40, False)]
    for r in rows:
        assert r["windows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
