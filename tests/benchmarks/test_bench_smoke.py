"""``aemon bench`` end to end on a small topic: both loops, every figure, ratios that follow."""

from __future__ import annotations

import statistics

from aemon.core.table import read_windows
from aemon.tools import bench


async def test_bench_reports_both_loops_and_their_paired_ratio(bootstrap, ecg):
    model, csv = ecg
    windows = read_windows(csv).values
    result = await bench.run(model, windows, 3000, bootstrap, rounds=2, progress=False)
    assert result["windows"] == 3000 and result["scorer"]["wps"] > 0
    for fmt in ("json", "f32"):
        r = result[fmt]
        assert r["bare_wps"] > 0 and r["full_wps"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
        assert len(r["round_ratios"]) == 2
        assert abs(r["ratio"] - statistics.median(r["round_ratios"])) < 1e-3
        assert abs(r["rate"] - r["full_wps"] / 2) <= 1  # both rounded from one float
        assert 0 < r["alert_rate"] < 1
