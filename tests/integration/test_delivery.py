"""Delivery under signals, with the daemon as a real process: SIGKILL, SIGTERM, SIGHUP."""

import asyncio
import shutil
import signal
import time

import orjson

import aemon
from aemon.core.artifact import read_meta
from aemon.core.table import read_windows, write_windows
from aemon.daemon.alerts import alert_id
from aemon.replay import replay
from tests.conftest import train_ecg
from tests.integration.helpers import (
    Daemon,
    committed,
    decided,
    make_topics,
    read_all,
    scrape,
    settings,
    topics,
    until,
)


def keys_in(path) -> list[tuple[str, int]]:
    t = read_windows(path)
    return [(str(s), int(q)) for s, q in zip(t.stream, t.seq, strict=True)]


async def alerts_by_window(bootstrap, t) -> dict[tuple[str, int], list[dict]]:
    out: dict = {}
    for r in await read_all(bootstrap, t["alerts_topic"]):
        a = orjson.loads(r.value)
        out.setdefault((a["stream"], a["seq"]), []).append(a)
    return out


async def test_sigkill_mid_stream_then_restart_leaves_no_gap(bootstrap, ecg, tmp_path):
    art, holdout = ecg
    t = topics(3)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, art, t, max_batch=16)
    first = Daemon(s, tmp_path / "first.log")
    await first.wait_ready()
    feeding = asyncio.create_task(
        replay(holdout, t["input_topic"], bootstrap, rate=800, progress=False)
    )
    await until(lambda: first.metric("aemon_windows_scored_total") >= 150, 30, "mid-stream")
    first.kill()
    assert first.metric("aemon_windows_scored_total") == -1  # really gone
    sent = await feeding
    second = Daemon(s, tmp_path / "second.log")
    want = set(keys_in(holdout))
    seen: dict = {}
    try:
        await second.wait_ready()
        deadline = time.monotonic() + 60
        while not want <= set(seen := await decided(bootstrap, t)):
            assert time.monotonic() < deadline, f"{len(want - set(seen))} windows never decided"
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(20) == 0
    assert sent == len(want) == 1000
    assert set(seen) == want  # every window decided at least once: no gap
    alerts = await alerts_by_window(bootstrap, t)
    assert len(alerts) > 100
    for (stream, seq), copies in alerts.items():
        ids = {a["alert_id"] for a in copies}
        assert ids == {alert_id(copies[0]["model_version"], stream, seq)}


async def test_sigterm_drains_commits_and_exits_zero(bootstrap, ecg, tmp_path):
    art, holdout = ecg
    t = topics(1)
    await make_topics(bootstrap, t)
    d = Daemon(settings(bootstrap, art, t, max_batch=16), tmp_path / "d.log")
    await d.wait_ready()
    feeding = asyncio.create_task(
        replay(holdout, t["input_topic"], bootstrap, rate=1000, progress=False)
    )
    await until(lambda: d.metric("aemon_windows_scored_total") >= 100, 30, "mid-stream")
    start = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(d.proc.wait, 10)
    took = time.monotonic() - start
    await feeding
    assert rc == 0 and took < 10, (rc, took)
    assert "stopped cleanly" in d.log.read_text()
    done = (await committed(bootstrap, t["group_id"], t["input_topic"], 1))[0]
    assert 100 <= done < 1000
    decided_now = await decided(bootstrap, t)
    # The commit is exactly at the last decided message (one partition: the offsets are the
    # CSV's row order): everything before it decided, nothing after it.
    assert set(decided_now) == set(keys_in(holdout)[:done])


async def test_sighup_swaps_the_model_for_the_next_batch(bootstrap, ecg, tmp_path):
    art, holdout = ecg
    live = tmp_path / "live"
    shutil.copytree(art, live)
    other = tmp_path / "other"
    train_ecg(other, seed=1)
    old, new = read_meta(live).model_version, read_meta(other).model_version
    assert old != new
    table = read_windows(holdout)
    write_windows(tmp_path / "a.csv", table.subset(slice(0, 400)))
    write_windows(tmp_path / "b.csv", table.subset(slice(400, 1000)))

    t = topics(1)
    await make_topics(bootstrap, t)
    d = Daemon(settings(bootstrap, live, t), tmp_path / "d.log")
    try:
        await d.wait_ready()
        await replay(tmp_path / "a.csv", t["input_topic"], bootstrap, progress=False)
        await until(lambda: d.metric("aemon_windows_scored_total") == 400, 30, "first part")
        shutil.copytree(other, live, dirs_exist_ok=True)
        d.proc.send_signal(signal.SIGHUP)
        await replay(tmp_path / "b.csv", t["input_topic"], bootstrap, progress=False)
        await until(lambda: d.metric("aemon_windows_scored_total") == 1000, 30, "second part")
        info = {k: v for k, v in scrape(d.port).items() if k.startswith("aemon_model_info")}
        assert list(info) == [f"aemon_model_info{{family=dense,model=ecg5000,version={new}}}"]
    finally:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
    first = set(keys_in(tmp_path / "a.csv"))
    for key, copies in (await alerts_by_window(bootstrap, t)).items():
        assert [a["model_version"] for a in copies] == [old if key in first else new], key


async def test_serve_from_python_takes_the_cli_settings_and_stops_on_sigterm(
    bootstrap, ecg, tmp_path
):
    art, holdout = ecg
    t = topics(1)
    await make_topics(bootstrap, t)
    d = Daemon(settings(bootstrap, art, t), tmp_path / "d.log", python_api=True)
    try:
        await d.wait_ready()
        sent = await replay(holdout, t["input_topic"], bootstrap, progress=False)
        await until(lambda: d.metric("aemon_windows_scored_total") == sent, 30, "all scored")
        table = read_windows(holdout)
        flagged = int(aemon.load(art, device="cpu").predict(table.values).sum())
        assert d.metric("aemon_anomalies_total") == flagged > 0
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=15) == 0, d.log.read_text()[-2000:]
    finally:
        d.kill()
