"""The soak run (``make soak``): half the measured capacity for 30 minutes (``AEMON_SOAK_MINUTES``
to change it) on the embedded broker keeping its data on disk (``aemon broker --storage``, in a
temporary directory: about 25 GB for 30 minutes at this machine's half capacity;
``AEMON_TEST_BOOTSTRAP`` points it at another broker instead); memory, file descriptors and
threads must stay flat and nothing may be lost.

The producer sends each partition's next second of windows at once, as a producer that lingers
does (in batches of up to 1 MiB): the broker keeps each record batch as one object and lists a
partition's objects on every fetch, so finding a fetch's batch slows with the number of batches
kept, and the broker answers a fetch empty when that takes longer than ``fetch_max_wait_ms``:
with the daemon's 20 ms it decided nothing after a few minutes (about 1,000 batches a
partition), hence 1,000 ms here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest

from aemon.tools.broker import EmbeddedBroker
from tests.integration.helpers import Daemon, make_topics, settings, topics, until
from tests.reliability.test_reliability import blast, drained, measured_capacity, terminate

pytestmark = pytest.mark.soak


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """A broker that keeps its data on disk (or the one ``AEMON_TEST_BOOTSTRAP`` names)."""
    given = os.environ.get("AEMON_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    storage = tmp_path_factory.mktemp("broker")
    broker = EmbeddedBroker(storage=storage)
    asyncio.run(broker.start())
    yield broker.bootstrap
    broker.stop()
    shutil.rmtree(storage)  # tens of GB after half an hour


async def test_half_capacity_for_half_an_hour(kept, ecg, tmp_path, table):
    bootstrap = kept
    art, holdout = ecg
    minutes = float(os.environ.get("AEMON_SOAK_MINUTES", "30"))
    t = topics(3)
    await make_topics(bootstrap, t)
    # the broker answers a fetch empty when finding its batch takes longer than the wait, and
    # finding it takes longer the more batches a partition keeps: 20 ms stalls within minutes
    s = settings(bootstrap, art, t, scores_topic="", fetch_max_wait_ms=1000)
    d = Daemon(s, tmp_path / "d.log")
    backlog = 40_000
    capacity = await measured_capacity(bootstrap, t, holdout, d, backlog)
    rate = capacity / 2
    n = int(rate * minutes * 60)
    # one batch per partition a second: a broker on object storage keeps one object per batch
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
    where = "a broker on disk" if "AEMON_TEST_BOOTSTRAP" not in os.environ else bootstrap
    table.row(
        f"soak: {rate:.0f}/s (capacity {capacity:.0f}/s) for {minutes:g} min on {where}",
        sent=sent,
        lost=int(backlog + sent - scored),
        rss_mb=f"{rss[0]:.0f} -> {rss[-1]:.0f} (max {max(rss):.0f})",
        fds=f"{min(fds)}..{max(fds)}",
        threads=f"{min(threads)}..{max(threads)}",
    )
    assert scored == backlog + sent
    assert rss[-1] - rss[0] < 50 and max(fds) - min(fds) <= 8
    assert max(threads) - min(threads) <= 4
