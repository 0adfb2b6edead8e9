"""The soak run (``make soak``): half the measured capacity for 30 minutes (``AEMON_SOAK_MINUTES``
to change it) on the embedded broker keeping its data on disk (``aemon broker --storage``, in a
temporary directory: about 3 KB a window, 74 GB for 30 minutes at this machine's half capacity
on a fast day, checked against the free disk before the feed starts;
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
from collections.abc import Callable
from pathlib import Path

import pytest

from aemon.tools.broker import EmbeddedBroker
from tests.integration.helpers import Daemon, make_topics, settings, topics
from tests.reliability.test_reliability import (
    blast,
    drained,
    measured_capacity,
    scrape_lag,
    terminate,
)

pytestmark = pytest.mark.soak


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """A broker that keeps its data on disk (or the one ``AEMON_TEST_BOOTSTRAP`` names, then
    None in place of the broker's processes)."""
    given = os.environ.get("AEMON_TEST_BOOTSTRAP")
    if given:
        yield given, None
        return
    storage = tmp_path_factory.mktemp("broker")
    broker = EmbeddedBroker(storage=storage)
    asyncio.run(broker.start())
    yield broker.bootstrap, broker
    broker.stop()
    shutil.rmtree(storage)  # tens of GB after half an hour


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system, /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_drained(scored: Callable[[], float], total: int, stall_s: float) -> float:
    """Wait while the daemon decides the backlog left at the feed's end, however long that
    takes while it keeps deciding; fail once it decided nothing for ``stall_s``. The seconds."""
    start = last_move = time.monotonic()
    done = scored()
    while done < total:
        assert time.monotonic() - last_move < stall_s, f"stalled at {done:.0f} of {total}"
        await asyncio.sleep(1.0)
        now = scored()
        if now > done:
            done, last_move = now, time.monotonic()
    return time.monotonic() - start


def stored_bytes(root: Path) -> int:
    """What the broker keeps under ``root`` (its object store's files)."""
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def cores_busy(samples: list[tuple[float, int, int, int]], cpu: list[dict[str, float]]) -> str:
    """Each process's CPU in cores (CPU seconds a second) over the feed's first and last thirds:
    where the two cores went as the broker kept more."""
    last, third = len(cpu) - 1, len(cpu) // 3
    spans = ((0, third), (last - third, last)) if third else ((0, last),)

    def busy(name: str, a: int, b: int) -> float:
        return (cpu[b][name] - cpu[a][name]) / max(1e-9, 60 * (samples[b][0] - samples[a][0]))

    return ", ".join(
        f"{name} {' then '.join(f'{busy(name, a, b):.2f}' for a, b in spans)}" for name in cpu[0]
    )


async def test_half_capacity_for_half_an_hour(kept, ecg, tmp_path, table):
    bootstrap, broker = kept
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
    if broker is not None:  # a full disk fails the broker, not the daemon: say so before
        need = n * stored_bytes(broker.storage) / backlog
        free = shutil.disk_usage(broker.storage).free
        if need > 0.9 * free:
            pytest.fail(
                f"{minutes:g} minutes at {rate:.0f}/s need about {need / 1e9:.0f} GB of disk for "
                f"the broker and {broker.storage} has {free / 1e9:.0f} GB free: free more, or set "
                "AEMON_SOAK_MINUTES lower"
            )
    # one batch per partition a second: a broker on object storage keeps one object per batch
    feeding = asyncio.create_task(blast(bootstrap, t["input_topic"], holdout, n, rate, 3))
    samples: list[tuple[float, int, int, int]] = []  # minutes, RSS kB, fds, threads
    pids = {"daemon": d.proc.pid, "producer": os.getpid()}  # the feed runs in this process
    if broker is not None:
        pids |= {"broker": broker.process.pid, "object store": broker.store.pid}
    cpu: list[dict[str, float]] = []  # each process's CPU seconds at each sample
    lag = 0.0
    start = time.monotonic()
    while True:  # every 30 s, and once more at the feed's end
        samples.append(
            (
                (time.monotonic() - start) / 60,
                d.proc_status("VmRSS"),
                d.fds(),
                d.proc_status("Threads"),
            )
        )
        cpu.append({name: cpu_seconds(pid) for name, pid in pids.items()})
        lag = max(lag, sum(scrape_lag(d).values()))
        if feeding.done():
            break
        await asyncio.wait({feeding}, timeout=30)
    sent = await feeding

    def scored_total() -> float:
        return d.metric("aemon_windows_scored_total")

    behind = int(backlog + sent - scored_total())
    drain_s = await until_drained(scored_total, backlog + sent, 120)
    await drained(bootstrap, t, 3, backlog + sent, 60)
    scored = d.metric("aemon_windows_scored_total")
    assert terminate(d) == 0
    warm = [s for s in samples if s[0] >= min(5.0, minutes / 4)]  # after the first minutes
    rss = [s[1] / 1024 for s in warm]
    fds, threads = [s[2] for s in samples], [s[3] for s in samples]
    where = "a broker on disk" if broker is not None else bootstrap
    kept_gb = "" if broker is None else f", {stored_bytes(broker.storage) / 1e9:.1f} GB on disk"
    table.row(
        f"soak: {rate:.0f}/s (capacity {capacity:.0f}/s) for {minutes:g} min on {where}",
        sent=f"{sent}{kept_gb}",
        lost=int(backlog + sent - scored),
        rss_mb=f"{rss[0]:.0f} -> {rss[-1]:.0f} (max {max(rss):.0f})",
        fds=f"{min(fds)}..{max(fds)}",
        threads=f"{min(threads)}..{max(threads)}",
        largest_lag_sampled=f"{lag:,.0f}",
        behind_at_the_feeds_end=f"{behind:,} windows, decided in {drain_s:.0f} s",
        cores_busy=cores_busy(samples, cpu),
    )
    assert scored == backlog + sent
    assert rss[-1] - rss[0] < 50 and max(fds) - min(fds) <= 8
    assert max(threads) - min(threads) <= 4
