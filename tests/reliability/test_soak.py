"""The soak run (``make soak``): half the measured capacity for 30 minutes (``AEMON_SOAK_MINUTES``
to change it); memory, file descriptors and threads must stay flat and nothing may be lost.

The embedded broker keeps every message in memory and slows down as it grows (measured: at
half this machine's capacity it reached 15 GB and a full core; at 1,000 windows/s its fetches
dried up after about 6 minutes, some 370,000 messages, while the daemon waited, ready and idle).
The rate is therefore capped at ``AEMON_SOAK_MAX_RATE`` (default 100/s); the soak as the issue
means it (half capacity) needs a broker with real storage: ``AEMON_TEST_BOOTSTRAP`` and a raised
cap.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.integration.helpers import Daemon, make_topics, settings, topics, until
from tests.reliability.test_reliability import blast, drained, measured_capacity, terminate

pytestmark = pytest.mark.soak


async def test_half_capacity_for_half_an_hour(bootstrap, ecg, tmp_path, table):
    art, holdout = ecg
    minutes = float(os.environ.get("AEMON_SOAK_MINUTES", "30"))
    t = topics(3)
    await make_topics(bootstrap, t)
    d = Daemon(settings(bootstrap, art, t, scores_topic=""), tmp_path / "d.log")
    backlog = 40_000
    capacity = await measured_capacity(bootstrap, t, holdout, d, backlog)
    rate = min(capacity / 2, float(os.environ.get("AEMON_SOAK_MAX_RATE", "100")))
    n = int(rate * minutes * 60)
    feeding = asyncio.create_task(blast(bootstrap, t["input_topic"], holdout, n, rate, 3))
    samples: list[tuple[float, int, int, int]] = []  # minutes, RSS kB, fds, threads
    start = time.monotonic()
    while not feeding.done():
        samples.append(
            (
                (time.monotonic() - start) / 60,
                d.proc_status("VmRSS"),
                d.fds(),
                d.proc_status("Threads"),
            )
        )
        await asyncio.wait({feeding}, timeout=30)
    sent = await feeding
    await until(lambda: d.metric("aemon_windows_scored_total") >= backlog + sent, 120, "drained")
    await drained(bootstrap, t, 3, backlog + sent, 60)
    scored = d.metric("aemon_windows_scored_total")
    assert terminate(d) == 0
    warm = [s for s in samples if s[0] >= min(5.0, minutes / 4)]  # after the first minutes
    rss = [s[1] / 1024 for s in warm]
    fds, threads = [s[2] for s in samples], [s[3] for s in samples]
    table.row(
        f"soak: {rate:.0f}/s (capacity {capacity:.0f}/s) for {minutes:g} min",
        sent=sent,
        lost=int(backlog + sent - scored),
        rss_mb=f"{rss[0]:.0f} -> {rss[-1]:.0f} (max {max(rss):.0f})",
        fds=f"{min(fds)}..{max(fds)}",
        threads=f"{min(threads)}..{max(threads)}",
    )
    assert scored == backlog + sent
    assert rss[-1] - rss[0] < 0.1 * rss[0] and max(fds) - min(fds) <= 8
    assert max(threads) - min(threads) <= 4
