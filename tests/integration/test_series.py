"""Telemetry series through the real broker: one daemon serves a models directory, and the
events it publishes equal offline scoring's, also across a SIGKILL in the middle of an event."""

import asyncio
import logging
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from aiokafka.partitioner import DefaultPartitioner

import aemon
from aemon.core.catalog import catalog
from aemon.core.errors import AemonError, ConfigError, DataError
from aemon.core.events import Rule
from aemon.daemon.decisions import from_one
from aemon.daemon.learned import ANCHORS, version_of
from aemon.recording import Recording
from aemon.replay import end_streams, produce, replay, sample_messages
from aemon.tools.benchmark import same_events
from aemon.training.datasets.samples import read_samples
from tests.integration.helpers import (
    Daemon,
    children,
    committed,
    counter,
    decided,
    make_topics,
    read_all,
    running,
    scrape,
    settings,
    topics,
    until,
)

N, TRAIN = 1200, 500
STREAMS = {"cpu-a": 0.04, "disk/b": 100.0, "net c": 15000.0}  # three scales, odd names


def series_csv(path, start: int = 0) -> None:
    """Noisy sines at very different scales with incidents after the training part: a level
    shift (rows 700-780) on every stream and a burst of spikes (rows 950-960) on one."""
    rng = np.random.default_rng(0)
    rows = []
    for k, (stream, scale) in enumerate(STREAMS.items()):
        t = np.arange(N)
        x = np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(N)
        x[700:780] += 3.0
        if k == 1:
            x[950:960] += rng.choice([-6.0, 6.0], 10)
        for i in range(start, N):
            # a daylight-saving hour stamped twice (12 samples repeat their times at row 300)
            # and a clock stepping back 55 minutes at row 900: neither reorders anything
            ts = 1_700_000_000 + 300 * (i - 12 * (i >= 300)) - 3300 * (i >= 900)
            rows.append((ts, stream, float(scale * (2 + x[i])), i))
    rows.sort(key=lambda r: (r[3], r[1]))  # interleave the streams sample by sample
    path.write_text(
        "timestamp,stream,value\n" + "".join(f"{ts},{s},{v!r}\n" for ts, s, v, _ in rows)
    )


def fit_series_models(root, to, **extra) -> None:
    """The models of the streams of ``series_csv`` (written to ``root``), saved to ``to``."""
    series_csv(root / "history.csv")
    aemon.fit_series(
        root / "history.csv",
        train_fraction=TRAIN / N,
        epochs=15,
        adaptive_window=100,
        adaptive_delay=30,  # a history of 148 windows: the kill below comes after more
        **extra,
    ).save(to)


def trained(root, **extra):
    """(models directory, CSV of the rows after training, offline timeline of those rows)."""
    fit_series_models(root, root / "m", **extra)
    series_csv(root / "rest.csv", start=TRAIN)
    offline = aemon.load(root / "m", device="cpu").timeline(read_samples(root / "rest.csv"))
    assert {e["stream"] for e in offline.events} == set(STREAMS)  # each stream has events
    return root / "m", root / "rest.csv", offline


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("series"), learn=False)


async def test_one_daemon_serves_every_stream_and_equals_offline(bootstrap, series):
    models, rest, offline = series
    t = topics(3)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, models, t)) as svc:
        stranger = orjson.dumps({"stream": "no-such", "seq": 0, "value": 1.0})
        await produce(
            bootstrap, t["input_topic"], [(b"x", stranger, None)], total=1, progress=False
        )
        await replay(rest, t["input_topic"], bootstrap, samples=True, progress=False)
        await until(
            lambda: counter(svc, "aemon_windows_scored_total") >= len(offline),
            60,
            "every window decided",
        )
        assert counter(svc, "aemon_invalid_messages_total", reason="no_model") == 1
        assert counter(svc, "aemon_events_opened_total") == sum(
            e["state"] == "open" for e in offline.events
        )

        def summed(gauge: str) -> float:  # over the input's partitions
            return sum(
                counter(svc, gauge, topic=t["input_topic"], partition=str(p)) for p in range(3)
            )

        # all decided: no lag, though the commits stay behind by the windows a restart re-reads
        await until(
            lambda: (
                summed("aemon_consumer_lag_messages") == 0 and summed("aemon_reread_messages") > 0
            ),
            30,
            lambda: f"lag {summed('aemon_consumer_lag_messages')}",
        )
    daemon = [orjson.loads(r.value) for r in await read_all(bootstrap, t["alerts_topic"])]
    assert same_events(offline.events, daemon) == []
    assert len(daemon) == len(offline.events)  # no duplicates without a restart
    dead = await read_all(bootstrap, t["dlq_topic"])
    assert [dict(r.headers)["reason"] for r in dead] == [b"no_model"]
    scores = [orjson.loads(r.value) for r in await read_all(bootstrap, t["scores_topic"])]
    assert len(scores) == len(offline)
    mine = {(d["stream"], d["seq"]): d for d in scores}
    for i in range(0, len(offline), 97):
        d = mine[(offline.stream[i], offline.seq[i])]
        assert d["threshold"] == pytest.approx(offline.threshold[i], rel=1e-6)
        assert d["is_anomaly"] == offline.above[i] and d["p"] == offline.p[i]


@pytest.mark.parametrize("which", ["series", "learning"])
async def test_a_model_put_into_the_directory_of_a_running_daemon_serves_its_stream(
    bootstrap, which, request, tmp_path
):
    """A machine added while the daemon runs: its model copied into the models directory is
    taken in between batches (the model watch), and every stream's scores and events, its own
    included, equal offline scoring's; also with models that keep learning."""
    models, rest, offline = request.getfixturevalue(which)
    root = tmp_path / "m"
    shutil.copytree(models, root)
    late = catalog(root)["cpu-a"]
    shutil.move(late, tmp_path / "later")
    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, root, t, watch_model=True)) as svc:
        assert svc.models.index("cpu-a") is None
        shutil.copytree(tmp_path / "later", late)
        stranger = orjson.dumps({"stream": "no-such", "seq": 0, "value": 1.0})
        deadline = time.monotonic() + 30
        while svc.models.index("cpu-a") is None:  # the watch looks every 2 s; a batch applies it
            assert time.monotonic() < deadline, "the model watch never took the model in"
            await produce(
                bootstrap, t["input_topic"], [(b"x", stranger, None)], total=1, progress=False
            )
            await asyncio.sleep(0.5)
        await replay(rest, t["input_topic"], bootstrap, samples=True, progress=False)
        await until(lambda: svc.totals.windows >= len(offline), 90, "every window decided")
        assert counter(svc, "aemon_model_reload_failures_total") == 0
    published = await read_back(bootstrap, t)
    assert_decided_as_offline(published, offline)
    assert len(published[0]) == len(offline.events)
    assert {e["stream"] for e in published[0]} == set(STREAMS)


async def test_samples_at_a_tenth_of_the_trained_step_are_named_once_per_stream(
    bootstrap, series, tmp_path, caplog
):
    """The models learned samples 5 minutes apart; the same samples stamped 30 s apart are
    scored as before, and offline scoring and the daemon each name every stream once."""
    models, rest, _ = series
    lines = rest.read_text().splitlines()
    rows = [line.split(",", 1)[1] for line in lines[1:]]  # each row after its timestamp
    fast = tmp_path / "fast.csv"
    step = len(STREAMS)  # rows of one sample time: one a stream
    fast.write_text(
        lines[0]
        + "\n"
        + "".join(f"{1_700_000_000 + 30 * (i // step)},{r}\n" for i, r in enumerate(rows))
    )
    wording = "samples 30 s apart where its model was trained on samples 5 min apart"
    with pytest.warns(UserWarning, match=wording) as said:
        offline = aemon.load(models, device="cpu").timeline(read_samples(fast))
    assert sorted(
        str(w.message).split("'")[1] for w in said if wording in str(w.message)
    ) == sorted(STREAMS)
    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, models, t)) as svc:
        await replay(fast, t["input_topic"], bootstrap, samples=True, progress=False)
        await until(
            lambda: counter(svc, "aemon_windows_scored_total") >= len(offline), 60, "decided"
        )
        assert counter(svc, "aemon_off_step_streams_total") == len(STREAMS)
    named = [r.getMessage().split("'")[1] for r in caplog.records if wording in r.getMessage()]
    assert sorted(named) == sorted(STREAMS)


async def test_a_stream_whose_seq_starts_at_1_is_named_as_met_in_the_middle(
    bootstrap, series, tmp_path, caplog
):
    """A producer counting seq from 1: the daemon cannot tell its stream from one whose first
    sample is no longer in the topic, warms it up on its first H windows (no decision), and
    says so once, naming it; a stream counted from 0 decides from its first window."""
    models, rest, _ = series
    frame = pd.read_csv(rest)
    msgs = []
    for k in range(300):
        for stream, base in (("cpu-a", 1), ("disk/b", 0)):
            r = frame[frame.stream == stream].iloc[k]
            doc = {"stream": stream, "seq": k + base, "ts": float(r.timestamp)}
            doc["value"] = float(r.value)
            msgs.append((stream.encode(), orjson.dumps(doc), None))
    det = aemon.load(models, device="cpu").detector_for("cpu-a")
    assert det is not None and det.learning is None
    warmup = Rule.from_meta(det.meta).warmup(None)
    windows = 300 - det.meta.window.length + 1
    assert warmup < windows
    t = topics(1)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, models, t)) as svc:
        await produce(bootstrap, t["input_topic"], msgs, total=len(msgs), progress=False)
        decided = 2 * windows - warmup  # cpu-a's first H windows rebuild state only
        await until(lambda: counter(svc, "aemon_windows_scored_total") >= decided, 60, "decided")
        assert counter(svc, "aemon_warmup_windows_total") == warmup
    said = [r.getMessage() for r in caplog.records if "starts at its window 1" in r.getMessage()]
    assert said == [from_one("cpu-a", warmup)] and f"first {warmup:,} windows" in said[0]


@pytest.mark.parametrize("numbered", [False, True], ids=["no seq", "seq"])
async def test_rows_left_out_for_a_missing_value_are_the_samples_the_daemon_dead_letters(
    bootstrap, series, tmp_path, numbered
):
    """A CSV of the live stream with empty cells, scored offline with ``--missing skip``,
    decides exactly as the daemon fed the same samples with ``null`` where a cell is empty (a
    ``bad_values`` dead letter each): without ``seq`` a stream's neighbouring samples follow
    each other in both, with it each gap starts the stream's windows again in both."""
    models, rest, _ = series
    samples = read_samples(rest)
    gaps = set(np.random.default_rng(3).choice(len(samples), 40, replace=False).tolist())
    seqs: dict[str, int] = {}
    lines, msgs = [], []
    for i, (stream, ts, value) in enumerate(
        zip(samples.stream, samples.ts, samples.values[:, 0].astype(np.float32), strict=True)
    ):
        seq = seqs[stream] = seqs.get(stream, -1) + 1
        cell = "" if i in gaps else repr(float(value))
        lines.append(f"{int(ts)},{stream},{cell}" + (f",{seq}" if numbered else ""))
        doc = {"stream": stream, "ts": float(ts), "value": None if i in gaps else float(value)}
        msgs.append((stream.encode(), orjson.dumps(doc | ({"seq": seq} if numbered else {})), None))
    gappy = tmp_path / "gappy.csv"
    header = "timestamp,stream,value" + (",seq" if numbered else "")
    gappy.write_text("\n".join([header, *lines]) + "\n")
    with pytest.raises(DataError, match=r"is empty, a missing value.*--missing skip"):
        read_samples(gappy)
    with pytest.warns(UserWarning, match=r"left out 40 of 2,100 rows with a missing value"):
        kept = read_samples(gappy, "skip")
    offline = aemon.load(models, device="cpu").timeline(kept)
    joined = len(samples) - len(gaps) - len(STREAMS) * 7  # each stream's first 7: no window
    assert (len(offline) < joined) if numbered else (len(offline) == joined)
    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, models, t)) as svc:
        await produce(bootstrap, t["input_topic"], msgs, total=len(msgs), progress=False)
        await until(lambda: svc.totals.windows >= len(offline), 60, "every window decided")
        await until(
            lambda: counter(svc, "aemon_invalid_messages_total", reason="bad_values") == 40,
            30,
            "each sample with null dead-lettered",
        )
    published = await read_back(bootstrap, t)
    assert_decided_as_offline(published, offline)
    assert len(published[1]) == len(offline)
    again = topics(1)  # `aemon replay --samples --missing skip` sends the rows offline reads
    await make_topics(bootstrap, again)
    with pytest.warns(UserWarning, match="left out 40 of 2,100 rows"):
        sent = await replay(
            gappy, again["input_topic"], bootstrap, samples=True, missing="skip", progress=False
        )
    assert sent == len(kept)
    got = [orjson.loads(r.value) for r in await read_all(bootstrap, again["input_topic"])]
    by_stream = {st: [d["seq"] for d in got if d["stream"] == st] for st in STREAMS}
    for st in STREAMS:
        seqs = kept.seq[kept.stream == st] if numbered else range(sum(kept.stream == st))
        assert by_stream[st] == list(seqs)


@pytest.mark.parametrize("with_seq", [True, False], ids=["seq", "no-seq"])
async def test_sigkill_mid_incident_loses_no_event_and_repeats_ids(
    bootstrap, series, tmp_path, with_seq
):
    """Also with samples that carry no seq: the restart counts each stream on from the anchor
    kept with the last commit, which an open event holds back to the event's start."""
    models, rest, offline = series
    t = topics(2)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, models, t, max_batch=32)
    msgs = list(sample_messages(read_samples(rest), with_seq=with_seq))
    first = Daemon(s, tmp_path / "first.log")
    await first.wait_ready()
    feeding = asyncio.create_task(
        produce(bootstrap, t["input_topic"], msgs, total=len(msgs), rate=150, progress=False)
    )
    # 150 samples/s: the level shift keeps events open about 2 s, far longer than the time
    # between this check and the kill (at 600/s it was 0.4 s, and the kill sometimes came after
    # the events had resolved and been committed).
    await until(lambda: first.metric("aemon_events_open") >= 2, 60, "events open mid-incident")
    first.kill()
    await feeding
    second = Daemon(s, tmp_path / "second.log")
    try:
        await second.wait_ready()
        deadline = time.monotonic() + 90
        while True:
            keys = set(await decided(bootstrap, t))
            if len(keys) >= len(offline):
                break
            assert time.monotonic() < deadline, f"{len(offline) - len(keys)} windows undecided"
            await asyncio.sleep(0.5)
        warm = second.metric("aemon_warmup_windows_total")
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(20) == 0
    assert warm > 0  # the restart re-read history it did not decide again
    daemon = [orjson.loads(r.value) for r in await read_all(bootstrap, t["alerts_topic"])]
    assert same_events(offline.events, daemon) == []  # none lost, none invented
    by_id: dict = {}
    for e in daemon:
        by_id.setdefault((e["event_id"], e["state"]), []).append(e)
    repeated = [copies for copies in by_id.values() if len(copies) > 1]
    # The events open at the kill were re-read from their start and announced again.
    assert sum(c[0]["state"] == "open" for c in repeated) >= 2
    for copies in repeated:  # an event sent again is the same event
        assert {(c["stream"], c["start_seq"], c["end_seq"]) for c in copies} == {
            (copies[0]["stream"], copies[0]["start_seq"], copies[0]["end_seq"])
        }


def two_channel_csv(path, start: int = 0) -> None:
    """One pump, two value columns at different scales; a level shift on one of them only."""
    rng = np.random.default_rng(1)
    t = np.arange(N)
    a = np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(N)
    b = 50 * np.cos(2 * np.pi * t / 48) + 5 * rng.standard_normal(N)
    b[700:780] += 200.0
    lines = ["timestamp,stream,flow,pressure"]
    lines += [f"{1_700_000_000 + 60 * i},pump,{a[i]:.6f},{b[i]:.6f}" for i in range(start, N)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def pump(tmp_path_factory):
    """(models directory, CSV of the rows after training, offline timeline of those rows) of
    one pump of two metrics, flow and pressure."""
    root = tmp_path_factory.mktemp("pump")
    two_channel_csv(root / "history.csv")
    fitted = aemon.fit_series(
        root / "history.csv", train_fraction=TRAIN / N, epochs=10, adaptive_window=100
    )
    fitted.save(root / "m")
    two_channel_csv(root / "rest.csv", start=TRAIN)
    offline = aemon.load(root / "m", device="cpu").timeline(read_samples(root / "rest.csv"))
    assert any(e["state"] == "open" for e in offline.events)  # the shift opens an event
    return root / "m", root / "rest.csv", offline


async def test_a_stream_of_several_metrics_is_windowed_scored_and_decided_like_offline(
    bootstrap, pump
):
    """Multichannel series end to end: the artifact takes [channels, length] windows, offline
    scoring reads it, and the daemon windows samples carrying ``values`` into the same events."""
    models, rest, offline = pump
    det = aemon.load(models, device="cpu").detector_for("pump")
    assert det is not None and det.input_shape == (2, 8) and det.meta.window.length == 8
    svc, daemon, _ = await streamed(bootstrap, models, rest, len(offline))
    refused = ("wrong_length", "bad_values")
    assert sum(counter(svc, "aemon_invalid_messages_total", reason=r) for r in refused) == 0
    assert same_events(offline.events, daemon) == []
    assert len(daemon) == len(offline.events)


async def test_samples_with_their_metrics_by_name_decide_as_offline_in_any_key_order(
    bootstrap, pump
):
    """The same samples sent as ``{"pressure": .., "rpm": .., "flow": ..}`` (another order, and
    a metric the model does not take), every other one without ``stream`` (its key says it),
    decide exactly as offline scoring of the CSV; a sample without one of the model's metrics
    is a dead letter naming it, and one without ``stream`` or a key is a ``bad_stream`` one."""
    models, rest, offline = pump
    samples = read_samples(rest)
    msgs = [
        (
            b"pump",
            orjson.dumps(
                ({"stream": "pump"} if i % 2 else {})
                | {
                    "seq": i,
                    "ts": float(samples.ts[i]),
                    "values": {"pressure": float(p), "rpm": 1450, "flow": float(f)},
                }
            ),
            None,
        )
        for i, (f, p) in enumerate(samples.values.astype(np.float32).tolist())
    ]
    lacking = orjson.dumps({"stream": "pump", "seq": len(msgs), "values": {"pressure": 1.0}})
    nameless = orjson.dumps({"seq": len(msgs), "values": {"pressure": 1.0, "flow": 1.0}})
    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, models, t)) as svc:
        await produce(bootstrap, t["input_topic"], msgs, total=len(msgs), progress=False)
        bad = [(b"pump", lacking, None), (None, nameless, None)]
        await produce(bootstrap, t["input_topic"], bad, total=2, progress=False)
        await until(lambda: svc.totals.windows >= len(offline), 60, "every window decided")
        await until(
            lambda: (
                counter(svc, "aemon_invalid_messages_total", reason="missing_values") == 1
                and counter(svc, "aemon_invalid_messages_total", reason="bad_stream") == 1
            ),
            30,
            "the sample without flow and the one without a stream dead-lettered",
        )
    daemon = [orjson.loads(r.value) for r in await read_all(bootstrap, t["alerts_topic"])]
    assert same_events(offline.events, daemon) == [] and len(daemon) == len(offline.events)
    errors = sorted(dict(d.headers)["error"] for d in await read_all(bootstrap, t["dlq_topic"]))
    assert b"no 'stream' and no key" in errors[0] and b"no value for 'flow'" in errors[1]


async def streamed(bootstrap, models, rest, windows: int):
    """``rest`` replayed as samples into a daemon serving ``models`` until ``windows`` windows
    are decided: the stopped service, its alert records and its score records."""
    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, models, t)) as svc:
        await replay(rest, t["input_topic"], bootstrap, samples=True, progress=False)
        await until(lambda: svc.totals.windows >= windows, 60, "every window decided")
    alerts = [orjson.loads(r.value) for r in await read_all(bootstrap, t["alerts_topic"])]
    scores = [orjson.loads(r.value) for r in await read_all(bootstrap, t["scores_topic"])]
    return svc, alerts, scores


def mixed_clock_csv(path, start: int = 0) -> None:
    """A host sampled every 5 minutes (its 500 training rows span 41 hours), a pump every minute
    (8 hours) and an office every hour (21 days): a level shift on each at rows 700-780."""
    rng = np.random.default_rng(2)
    t = np.arange(N)
    rows = []
    for stream, step in (("host", 300), ("pump", 60), ("office", 3600)):
        x = np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(N)
        x[700:780] += 3.0
        rows += [(i, stream, 1_700_000_000 + step * i, float(x[i])) for i in range(start, N)]
    rows.sort()
    path.write_text("timestamp,stream,value\n" + "".join(f"{r[2]},{r[1]},{r[3]!r}\n" for r in rows))


async def test_models_that_see_the_hour_the_week_and_a_blank_clock_share_one_daemon(
    bootstrap, tmp_path
):
    """The host's model sees each sample's time of day, the office's (three weeks of history)
    the time of week, the pump's (less than a day) has a blank clock: one daemon windows all
    three (the time of day or of the week, or zeros) exactly as offline."""
    mixed_clock_csv(tmp_path / "history.csv")
    fitted = aemon.fit_series(
        tmp_path / "history.csv", train_fraction=TRAIN / N, epochs=10, adaptive_window=100
    )
    fitted.save(tmp_path / "m")
    loaded = aemon.load(tmp_path / "m", device="cpu")
    streams = ("host", "pump", "office")
    clocks = {s: loaded.detector_for(s).meta.clock for s in streams}
    assert clocks == {"host": "time_of_day", "pump": "blank", "office": "time_of_week"}
    assert loaded.detector_for("pump").input_shape == (3, 8)
    # the host's and the office's models also take each value's distance from its profile
    assert [loaded.detector_for(s).model_shape for s in streams] == [(4, 8), (3, 8), (4, 8)]
    assert loaded.detector_for("office").meta.profile.hours == 168
    mixed_clock_csv(tmp_path / "rest.csv", start=TRAIN)
    offline = loaded.timeline(read_samples(tmp_path / "rest.csv"))
    assert {e["stream"] for e in offline.events} == set(streams)
    _, daemon, scores = await streamed(
        bootstrap, tmp_path / "m", tmp_path / "rest.csv", len(offline)
    )
    assert same_events(offline.events, daemon) == []
    assert len(daemon) == len(offline.events)
    mine = {(d["stream"], d["seq"]): d["score"] for d in scores}
    got = [mine[(offline.stream[i], offline.seq[i])] for i in range(len(offline))]
    np.testing.assert_allclose(got, offline.score, rtol=1e-5)


LEARN = {"learn_every": 100, "learn_span": 200, "learn_epochs": 5, "learn_delay": 30}  # 21 updates


def metrics_csv(path, widths: dict[str, int], start: int = 0) -> None:
    """Streams of ``widths[stream]`` value columns (m0, m1, ... at scales 1, 10, 100, ...; a
    stream leaves the columns it does not have empty) every 5 minutes, sample by sample; a level
    shift on each stream's last metric at rows 700-780."""
    wide = max(widths.values())
    rows = []
    for stream, metrics in widths.items():
        rng = np.random.default_rng(metrics)
        t = np.arange(N)
        cols = [
            10**k * (np.sin(2 * np.pi * t / 48 + k) + 0.1 * rng.standard_normal(N))
            for k in range(metrics)
        ]
        cols[-1][700:780] += 3.0 * 10 ** (metrics - 1)
        for i in range(start, N):
            cells = [f"{c[i]:.6f}" for c in cols] + [""] * (wide - metrics)
            rows.append((i, f"{1_700_000_000 + 300 * i},{stream}," + ",".join(cells)))
    header = "timestamp,stream," + ",".join(f"m{k}" for k in range(wide))
    path.write_text("\n".join([header] + [r for _, r in sorted(rows)]) + "\n")


async def test_streams_of_one_two_and_three_metrics_share_one_learning_daemon(bootstrap, tmp_path):
    """Streams of 1 and 2 metrics trained from one file (the first's rows leave m1 empty) and one
    of 3 trained apart into the same directory: one daemon serves them all from one topic (batch
    rows as long as the widest window), with learning on, and decides exactly as offline scoring
    of the two files; a sample of the wrong width for its stream is a dead letter."""
    files = {"mixed": {"cpu": 1, "pump": 2}, "db": {"db": 3}}
    for name, widths in files.items():
        metrics_csv(tmp_path / f"{name}-history.csv", widths)
        aemon.fit_series(
            tmp_path / f"{name}-history.csv",
            train_fraction=TRAIN / N,
            epochs=10,
            adaptive_window=100,
            **LEARN,
        ).save(tmp_path / "m")
    loaded = aemon.load(tmp_path / "m", device="cpu")
    shapes = {s: loaded.detector_for(s).input_shape for s in ("cpu", "pump", "db")}
    assert shapes == {"cpu": (3, 8), "pump": (4, 8), "db": (5, 8)}  # values and the clock
    t = topics(2)
    await make_topics(bootstrap, t)
    offline_events, scored = [], {}
    async with running(settings(bootstrap, tmp_path / "m", t)) as svc:
        wide = orjson.dumps({"stream": "pump", "values": [1.0, 2.0, 3.0]})
        await produce(bootstrap, t["input_topic"], [(b"pump", wide, None)], total=1, progress=False)
        for name, widths in files.items():
            rest = tmp_path / f"{name}-rest.csv"
            metrics_csv(rest, widths, start=TRAIN)
            timeline = loaded.timeline(read_samples(rest))
            offline_events += timeline.events
            scored.update(
                zip(zip(timeline.stream, timeline.seq, strict=True), timeline.score, strict=True)
            )
            await replay(rest, t["input_topic"], bootstrap, samples=True, progress=False)
        await until(lambda: svc.totals.windows >= len(scored), 90, "every window decided")
        assert counter(svc, "aemon_invalid_messages_total", reason="wrong_length") == 1
        assert counter(svc, "aemon_model_updates_total") > 0
    assert {e["stream"] for e in offline_events} == {"cpu", "pump", "db"}  # each shift: an event
    alerts, scores = await read_back(bootstrap, t)
    assert same_events(offline_events, alerts) == []
    mine = {(d["stream"], d["seq"]): d["score"] for d in scores}
    np.testing.assert_allclose([mine[k] for k in scored], list(scored.values()), rtol=1e-4)
    dead = await read_all(bootstrap, t["dlq_topic"])
    assert [dict(r.headers)["reason"] for r in dead] == [b"wrong_length"]


@pytest.fixture(scope="module")
def learning(tmp_path_factory):
    """The same streams, with models that keep learning."""
    return trained(tmp_path_factory.mktemp("learning"), **LEARN)


def updates_in(windows: int, delay: int = 30) -> int:
    """Updates a stream of ``windows`` windows starts: each once its last training window is in."""
    every = LEARN["learn_every"]
    return (windows + delay) // every


async def test_models_that_keep_learning_decide_in_the_daemon_as_offline(bootstrap, learning):
    models, rest, offline = learning
    t = topics(2)
    await make_topics(bootstrap, t)
    # two learning processes: which one trains an update changes nothing
    async with running(settings(bootstrap, models, t, learn_processes=2)) as svc:
        await replay(rest, t["input_topic"], bootstrap, samples=True, progress=False)
        await until(
            lambda: counter(svc, "aemon_windows_scored_total") >= len(offline),
            90,
            "every window decided",
        )
        want = len(STREAMS) * updates_in(len(offline) // len(STREAMS))
        await until(lambda: counter(svc, "aemon_model_updates_total") >= want, 60, "updates")
        updates = counter(svc, "aemon_model_updates_total")
    assert updates == want  # each update once, none for windows never read
    assert_decided_as_offline(await read_back(bootstrap, t), offline)


async def test_a_restarted_daemon_finds_the_updates_it_kept_and_trains_none_twice(
    bootstrap, learning
):
    models, rest, offline = learning
    t = topics(2)
    await make_topics(bootstrap, t)
    msgs = list(sample_messages(read_samples(rest)))
    half = len(msgs) // 2  # interleaved: about half of every stream's samples, then the rest
    first, second = msgs[:half], msgs[half:]
    per_stream = [sum(key == s.encode() for key, *_ in first) for s in STREAMS]
    first_windows = sum(n - 7 for n in per_stream)  # windows of 8 samples, stride 1
    first_updates = sum(updates_in(n - 7) for n in per_stream)
    async with running(settings(bootstrap, models, t)) as svc:
        await produce(bootstrap, t["input_topic"], first, total=len(first), progress=False)
        await until(
            lambda: counter(svc, "aemon_windows_scored_total") >= first_windows, 90, "first half"
        )
        # the updates the first half's windows start may still train once its windows are
        # scored (the stop would wait for them: the next test); here they are done first
        await until(
            lambda: counter(svc, "aemon_model_updates_total") >= first_updates, 60, "its updates"
        )
    trained = counter(svc, "aemon_model_updates_total")
    want = len(STREAMS) * updates_in(len(offline) // len(STREAMS))
    async with running(settings(bootstrap, models, t)) as svc:  # the same group: a restart
        await produce(bootstrap, t["input_topic"], second, total=len(second), progress=False)
        deadline = time.monotonic() + 90
        while len(await decided(bootstrap, t)) < len(offline):
            assert time.monotonic() < deadline, "windows undecided after the restart"
            await asyncio.sleep(0.5)
        # the last updates (for windows still to come) may train after the last window decided
        await until(
            lambda: counter(svc, "aemon_model_updates_total") >= want - trained, 60, "the rest"
        )
        trained_again = counter(svc, "aemon_model_updates_total")
        restored = counter(svc, "aemon_model_updates_restored_total")
        held = counter(svc, "aemon_learned_models_bytes")
    # The restart re-read what its decisions depend on (here from each stream's start) and
    # found every update those windows needed kept: each update trained once in all.
    assert trained == first_updates and restored > 0
    assert held > 1000 * restored  # their weights (kilobytes each), held for the streams it owns
    assert trained + trained_again == want
    assert_decided_as_offline(await read_back(bootstrap, t), offline)
    # kept alongside the input: a stream's updates in the partition of its input's partition
    inputs = {r.key: r.partition for r in await read_all(bootstrap, t["input_topic"])}
    kept = await read_all(bootstrap, t["learned_topic"])
    assert kept and all(r.partition == inputs[r.key.split(b"\x1f")[1]] % 2 for r in kept)
    assert {r.partition for r in kept} == {0, 1}


async def stopped_as_updates_start(bootstrap, tmp_path, epochs: int, shutdown_timeout_s: float):
    """A daemon stopped (SIGTERM) as each stream's first update starts training (its last
    training window is the last one read), its updates trained for ``epochs``: the daemon, the
    seconds its stop took, and the streams whose updates are in the learned-models topic."""
    fit_series_models(tmp_path, tmp_path / "m", **{**LEARN, "learn_epochs": epochs})
    series_csv(tmp_path / "rest.csv", start=TRAIN)
    last = LEARN["learn_every"] - LEARN["learn_delay"]  # update 1 starts at this many windows
    msgs = list(sample_messages(read_samples(tmp_path / "rest.csv")))[: len(STREAMS) * (last + 7)]
    t = topics(1)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, tmp_path / "m", t, shutdown_timeout_s=shutdown_timeout_s)
    async with running(s) as svc:
        await produce(bootstrap, t["input_topic"], msgs, total=len(msgs), progress=False)
        await until(lambda: svc.totals.windows >= windows_in(msgs), 60, "every window decided")
        assert windows_in(msgs) == len(STREAMS) * last
        assert counter(svc, "aemon_model_updates_total") == 0  # the stop comes as they train
        began = time.monotonic()
    records = await read_all(bootstrap, t["learned_topic"])
    kept = sorted(r.key.split(b"\x1f")[1] for r in records if not r.key.startswith(ANCHORS))
    return svc, time.monotonic() - began, kept


async def test_a_stop_keeps_the_updates_still_training(bootstrap, tmp_path):
    """The drain waits for the updates training at a stop and keeps them in the learned-models
    topic, so that a restart finds them (before, they were trained to the end, dropped, and
    trained again after the restart)."""
    # an update trains for most of a second
    svc, _, kept = await stopped_as_updates_start(bootstrap, tmp_path, 100, 30)
    assert counter(svc, "aemon_model_updates_total") == len(STREAMS)
    assert kept == sorted(s.encode() for s in STREAMS)


async def test_a_stop_whose_time_is_up_does_not_wait_for_the_updates_still_training(
    bootstrap, tmp_path
):
    """Updates that cannot finish within ``shutdown_timeout_s`` do not hold the exit (before,
    it waited for the one training and the one queued after it): they are trained again after
    the restart."""
    # an update trains for about ten seconds (two of them held the exit 21.7 s before)
    svc, seconds, kept = await stopped_as_updates_start(bootstrap, tmp_path, 6000, 1)
    assert seconds < 8, f"the stop took {seconds:.1f} s"
    assert counter(svc, "aemon_model_updates_total") == 0 and not kept


async def test_a_partition_that_moves_away_withdraws_its_updates_and_the_kept_one_reads_on(
    bootstrap, tmp_path
):
    """Twelve streams, six on each of two partitions, have their first updates (about a second
    each) sent to a daemon's one learning process; a second replica joins and takes a
    partition. The moved partition's updates still waiting for the process are withdrawn
    (before, they trained for nothing while the streams kept waited behind them; how many
    still wait by then depends on the machine's speed, so the count is the unit test's); the
    kept partition, held over the rebalance, is read on from where it was (before, every
    partition was read again from its commit, as after a restart) and its updates go on: each
    trained once."""
    names = [f"s{k}" for k in range(40)]
    on = {p: [n for n in names if partition_of(n) == p][:6] for p in (0, 1)}
    widths = {n: 1 for n in sorted(on[0] + on[1])}
    metrics_csv(tmp_path / "history.csv", widths)
    learn = {**LEARN, "learn_epochs": 600}
    aemon.fit_series(
        tmp_path / "history.csv", train_fraction=TRAIN / N, epochs=5, members=1, **learn
    ).save(tmp_path / "m")
    metrics_csv(tmp_path / "rest.csv", widths, start=TRAIN)
    last = LEARN["learn_every"] - LEARN["learn_delay"]  # update 1 starts at this many windows
    msgs = list(sample_messages(read_samples(tmp_path / "rest.csv")))[: len(widths) * (last + 7)]
    t = topics(2)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, tmp_path / "m", t, shutdown_timeout_s=1)
    async with running(s) as a:
        assert a.learners is not None
        await produce(bootstrap, t["input_topic"], msgs, total=len(msgs), progress=False)
        await until(lambda: a.totals.windows >= len(widths) * last, 60, "every window decided")
        assert a.learners.training  # the streams' first updates, in the learning process
        async with running(s) as b:
            await until(lambda: counter(a, "aemon_assigned_partitions") == 1, 60, "a move")
            (kept,) = [tp.partition for tp in a.ledger.assigned]
            moved = [j for p, j in a.learners.training.values() if p != kept and not j.cancelled()]
            assert all(job.running() or job.done() for job in moved)  # none still waits
            await until(lambda: counter(b, "aemon_assigned_partitions") == 1, 60, "b's")
            await until(lambda: not a.learners.training, 60, "a's updates trained")
            # b reads its partition from the commit, at the streams' start (their history, H
            # windows, is longer); a reads on from where it was, reading nothing again
            await until(lambda: b.totals.windows >= 6 * last, 60, "b's partition read")
            assert a.totals.windows == len(widths) * last and b.totals.windows == 6 * last
    records = await read_all(bootstrap, t["learned_topic"])
    learned = [r.key.split(b"\x1f")[1].decode() for r in records if not r.key.startswith(ANCHORS)]
    assert sorted(n for n in learned if n in on[kept]) == sorted(on[kept])  # each once


async def test_a_learning_model_swapped_in_lets_go_of_the_updates_of_the_one_it_replaced(
    bootstrap, learning, tmp_path
):
    """A stream's model that keeps learning replaced by another (a changed detector.json):
    the updates of the replaced model stay in the learned-models topic until it is compacted,
    but the daemon lets go of those it held, and holds, of the records it read, exactly the
    latest of each key of the models it serves (what ``aemon_learned_models_bytes`` counts)."""
    models, rest, _ = learning
    root = tmp_path / "m"
    shutil.copytree(models, root)
    fit_series_models(tmp_path, tmp_path / "other", seed=1, **LEARN)  # another version
    msgs = list(sample_messages(read_samples(rest)))
    half = len(msgs) // 2
    t = topics(1)
    await make_topics(bootstrap, t)

    async def held_of_served(svc) -> tuple[int, set[bytes]]:
        """What the daemon should hold of the topic (the latest record of each key of a model
        it serves), and the versions of the records in the topic."""
        latest = {r.key: r.value for r in await read_all(bootstrap, t["learned_topic"])}
        served = {v.encode() for v in svc.models.versions}
        return sum(len(v) for k, v in latest.items() if version_of(k) in served), {
            version_of(k) for k in latest
        }

    async with running(settings(bootstrap, root, t, watch_model=True)) as svc:
        await produce(bootstrap, t["input_topic"], msgs[:half], total=half, progress=False)
        await until(lambda: counter(svc, "aemon_model_updates_total") >= 6, 90, "updates")
        before = (await swap_in(bootstrap, svc, t, tmp_path / "other", root)).encode()
        after = svc.models.detectors[svc.models.index(A)].version.encode()
        tail = msgs[half:]
        await produce(bootstrap, t["input_topic"], tail, total=len(tail), progress=False)
        await until(lambda: svc.totals.windows >= windows_in(msgs), 90, "every window decided")
        deadline = time.monotonic() + 30
        while True:  # until what it holds is what it read of the models it serves
            want, versions = await held_of_served(svc)
            held = counter(svc, "aemon_learned_models_bytes")
            if {before, after} <= versions and held == want:
                break
            assert time.monotonic() < deadline, f"held {held:g} bytes, of the served {want}"
            await asyncio.sleep(0.5)
    assert before.decode() not in svc.models.versions and want > 0


async def swap_in(bootstrap: str, svc, t: dict[str, str], models: Path, root: Path) -> str:
    """Copy stream A's model of ``models`` over the one in ``root`` (the running daemon's
    watched directory) and wait until a batch swaps it in (messages for a stream without a
    model carry the batches); A's model version before the swap."""
    before = svc.models.detectors[svc.models.index(A)].version
    shutil.copytree(catalog(models)[A], catalog(root)[A], dirs_exist_ok=True)
    stranger = [(b"x", orjson.dumps({"stream": "no-such", "seq": 0, "value": 1.0}), None)]
    deadline = time.monotonic() + 30
    while svc.models.detectors[svc.models.index(A)].version == before:
        assert time.monotonic() < deadline, "the model watch never swapped A's model"
        await produce(bootstrap, t["input_topic"], stranger, total=1, progress=False)
        await asyncio.sleep(0.5)
    return before


def partition_of(stream: str) -> int:
    """The partition of a two-partition topic that ``produce`` sends ``stream``'s samples to
    (aiokafka's default partitioner of their key)."""
    return DefaultPartitioner()(stream.encode(), [0, 1], [0, 1])


def windows_in(msgs: list) -> int:
    """Windows of 8 samples (stride 1) the messages ``msgs`` make, each stream counted alone."""
    return sum(max(0, sum(key == s.encode() for key, *_ in msgs) - 7) for s in STREAMS)


async def test_a_restart_without_seq_decides_as_offline(bootstrap, learning):
    """The restart above with samples that carry no ``seq`` (as Telegraf and
    prometheus-kafka-adapter send them), each their stream's next: the anchors kept with the
    commit let the restarted daemon count each stream on from where it was. Meanwhile a daemon
    of another input, whose streams have the same names but began later, shares the
    learned-models topic: it decides every window of its own input, and keeps the anchors of
    its count at a later commit than the first's, yet the restart counts on from its own
    (before anchors were kept per group and input, the second daemon took the first's and
    skipped windows)."""
    models, rest, offline = learning
    t = topics(1)
    await make_topics(bootstrap, t)
    msgs = list(sample_messages(read_samples(rest), with_seq=False))
    assert all("seq" not in orjson.loads(value) for _, value, _ in msgs)
    cut = len(msgs) * 4 // 5  # past the windows a restart re-reads (every + delay + span)
    async with running(settings(bootstrap, models, t)) as svc:
        await produce(bootstrap, t["input_topic"], msgs[:cut], total=cut, progress=False)
        await until(
            lambda: counter(svc, "aemon_windows_scored_total") >= windows_in(msgs[:cut]),
            90,
            "first part",
        )
    # the restart re-reads from the middle of each stream, not from its start
    mine = (await committed(bootstrap, t["group_id"], t["input_topic"], 1))[0]
    assert mine > 0
    other = topics(1) | {"learned_topic": t["learned_topic"]}
    await make_topics(bootstrap, other)
    later = msgs[len(msgs) // 20 :]  # the same streams from a later sample: counted otherwise
    async with running(settings(bootstrap, models, other)) as svc:
        await produce(bootstrap, other["input_topic"], later, total=len(later), progress=False)
        await until(
            lambda: counter(svc, "aemon_windows_scored_total") >= windows_in(later),
            90,
            "every window of the other input (counted from the first's anchors, it skips some)",
        )
    theirs = (await committed(bootstrap, other["group_id"], other["input_topic"], 1))[0]
    assert theirs > mine  # their anchors are the newer (and lie past where the restart reads)
    async with running(settings(bootstrap, models, t)) as svc:
        rest_msgs = msgs[cut:]
        await produce(bootstrap, t["input_topic"], rest_msgs, total=len(rest_msgs), progress=False)
        deadline = time.monotonic() + 90
        while sum((await decided(bootstrap, t)).values()) < len(offline):
            assert time.monotonic() < deadline, "windows undecided after the restart"
            await asyncio.sleep(0.5)
    assert_decided_as_offline(await read_back(bootstrap, t), offline)


async def read_back(bootstrap: str, t: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """The alerts and score records a daemon published on ``t``'s topics."""
    alerts = await read_all(bootstrap, t["alerts_topic"])
    scores = await read_all(bootstrap, t["scores_topic"])
    return [orjson.loads(r.value) for r in alerts], [orjson.loads(r.value) for r in scores]


def assert_decided_as_offline(published: tuple[list[dict], list[dict]], offline) -> None:
    alerts, scores = published
    assert same_events(offline.events, alerts) == []
    mine = {(d["stream"], d["seq"]): d["score"] for d in scores}
    got = np.array([mine[(s, q)] for s, q in zip(offline.stream, offline.seq, strict=True)])
    np.testing.assert_allclose(got, offline.score, rtol=1e-4, atol=1e-6)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("with_seq", [True, False], ids=["seq", "no-seq"])
async def test_a_replica_killed_while_models_learn_is_taken_over_and_decides_as_offline(
    bootstrap, learning, tmp_path, with_seq
):
    """Also with samples that carry no seq: the survivor counts the victim's streams on from
    the anchors the victim kept with its last commit."""
    models, rest, offline = learning
    t = topics(2)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, models, t, max_batch=32)
    msgs = list(sample_messages(read_samples(rest), with_seq=with_seq))
    pair = [Daemon(s, tmp_path / f"r{k}.log") for k in range(2)]

    def owned() -> list[float]:
        return [d.metric("aemon_assigned_partitions") for d in pair]

    for d in pair:
        await d.wait_ready()
    await until(lambda: owned() == [1, 1], 60, lambda: f"one partition each {owned()}")
    feeding = asyncio.create_task(
        produce(bootstrap, t["input_topic"], msgs, total=len(msgs), rate=150, progress=False)
    )
    # Kill once both replicas have committed past their streams' start: the survivor then
    # re-reads the victim's partition from there, rebuilding the learned models it needs. (30 s
    # alone; it passed 60 s once beside the other worker's tests, hence 120.)
    deadline = time.monotonic() + 120
    while min((await committed(bootstrap, t["group_id"], t["input_topic"], 2)).values()) == 0:
        assert time.monotonic() < deadline, "no commit past the streams' start"
        await asyncio.sleep(0.2)
    victim = max(pair, key=lambda d: d.metric("aemon_model_updates_total"))
    survivor = pair[1 - pair.index(victim)]
    learned = victim.metric("aemon_model_updates_total")
    learning_process = children(victim.proc.pid)  # and multiprocessing's resource tracker
    assert learned > 0 and learning_process
    victim.kill()
    await until(lambda: survivor.metric("aemon_assigned_partitions") == 2, 60, "takeover")
    await until(lambda: not any(map(alive, learning_process)), 10, "no orphaned learner")
    await feeding
    try:
        deadline = time.monotonic() + 120
        while len(await decided(bootstrap, t)) < len(offline):
            assert time.monotonic() < deadline, "windows undecided after the takeover"
            await asyncio.sleep(0.5)
        warm = survivor.metric("aemon_warmup_windows_total")
        restored = survivor.metric("aemon_model_updates_restored_total")
    finally:
        survivor.proc.send_signal(signal.SIGTERM)
        assert survivor.proc.wait(20) == 0
    assert learned > 0 and warm > 0  # re-read what the victim's learned models depended on
    assert restored > 0  # and found updates the victim had kept in the learned-models topic
    daemon = [orjson.loads(r.value) for r in await read_all(bootstrap, t["alerts_topic"])]
    assert same_events(offline.events, daemon) == []  # none lost, none invented


async def test_a_replica_joining_mid_stream_moves_one_partition_and_both_decide_as_offline(
    bootstrap, learning, caplog
):
    """A daemon has decided the first half of three learning streams on two partitions when a
    second replica joins: the partition it keeps is read on from where it was, not again from
    its commit; the moved one is read from its commit by the newcomer, which rebuilds its
    streams' state and models; every event and score equals offline scoring's."""
    caplog.set_level(logging.INFO, "aemon.serve")
    models, rest, offline = learning
    t = topics(2)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, models, t, max_batch=32)
    msgs = list(sample_messages(read_samples(rest)))
    half = len(msgs) // 2
    first, after = msgs[:half], msgs[half:]
    async with running(s) as a:
        await produce(bootstrap, t["input_topic"], first, total=len(first), progress=False)
        await until(lambda: a.totals.windows >= windows_in(first), 90, "the first half decided")
        async with running(s) as b:

            def moved() -> bool:
                return [counter(d, "aemon_assigned_partitions") for d in (a, b)] == [1, 1]

            await until(moved, 60, "one partition each")
            (kept,) = [tp.partition for tp in a.ledger.assigned]
            await produce(bootstrap, t["input_topic"], after, total=len(after), progress=False)
            deadline = time.monotonic() + 120
            while len(await decided(bootstrap, t)) < len(offline):
                assert time.monotonic() < deadline, "windows undecided after the move"
                await asyncio.sleep(0.5)
    mine = {n for n in STREAMS if partition_of(n) == kept}
    later = sum(k.decode() in mine for k, *_ in after)  # a's windows after the move: one each
    assert mine and a.totals.windows == windows_in(first) + later  # none read twice
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("assigned")]
    assert "assigned 1 partition(s) (1 read on from where they were)" in said
    assert_decided_as_offline(await read_back(bootstrap, t), offline)


A, STOP, AGAIN = "cpu-a", 240, 400  # A stops mid level shift, sends again from its row 400


@pytest.mark.parametrize(
    ("with_seq", "by_itself"),
    [(True, False), (False, False), (False, True)],
    ids=["seq", "no-seq", "no-seq-by-itself"],
)
async def test_a_stream_that_stopped_is_ended_frees_the_commit_and_starts_afresh(
    bootstrap, series, tmp_path, with_seq, by_itself
):
    """A stream that stops holds its partition's commit where it stopped; its end marker (`aemon
    end`'s) resolves its open event at its last window, frees the commit, and its later
    samples, counted from 0 again, are a new stream: they decide as offline scoring decides
    them alone, also after restarts that re-read its end or start after it, while the other
    streams decide as offline throughout."""
    models, rest, offline = series
    frame = pd.read_csv(rest)
    rows = {s: frame[frame.stream == s].reset_index(drop=True) for s in STREAMS}

    def msg(stream: str, k: int, seq: int) -> tuple[bytes, bytes, None]:
        r = rows[stream].iloc[k]
        doc = {"stream": stream, "seq": seq, "ts": float(r.timestamp), "value": float(r.value)}
        if not with_seq:
            del doc["seq"]
        return stream.encode(), orjson.dumps(doc), None

    def part(first: int, stop: int, with_a: bool) -> list:
        """Rows first..stop-1 of the other streams, with A's beside them until A stops."""
        out = []
        for k in range(first, stop):
            if with_a and k < STOP:
                out.append(msg(A, k, k))
            out += [msg(s, k, k) for s in STREAMS if s != A]
        return out

    # A's two lives in one sample CSV: its end after row STOP - 1, then seq from 0 again
    lives = rows[A].iloc[[*range(STOP), *range(AGAIN, len(rows[A]))]].reset_index(drop=True)
    lives["seq"] = [*range(STOP), *range(len(rows[A]) - AGAIN)]
    lives["end"] = (lives.index == STOP - 1).astype(int)
    lives[["timestamp", "stream", "seq", "end", "value"]].to_csv(tmp_path / "a.csv", index=False)
    t_a = aemon.load(models, device="cpu").timeline(read_samples(tmp_path / "a.csv"))
    (ended,) = [e for e in t_a.events if e.get("ended")]  # open when A stops
    assert ended["resolved_seq"] == STOP - 1
    others = [e for e in offline.events if e["stream"] != A]
    expected = [*t_a.events, *others]

    t = topics(1)
    await make_topics(bootstrap, t)
    first = part(0, 520, with_a=True)
    a_last = max(i for i, (key, *_) in enumerate(first) if key == A.encode())
    windows = t_a.seq.index(STOP - 1) + 1  # A's first life
    windows += sum(s != A and q < 520 for s, q in zip(offline.stream, offline.seq, strict=True))
    if by_itself:  # the others' samples after A's last over 1.9 s: A silent for more than 1 s
        async with running(settings(bootstrap, models, t, end_silent_after_s=1.0)) as svc:
            head, tail = first[: a_last + 1], first[a_last + 1 :]
            await produce(bootstrap, t["input_topic"], head, total=len(head), progress=False)
            await produce(
                bootstrap, t["input_topic"], tail, total=len(tail), rate=300, progress=False
            )
            await until(lambda: counter(svc, "aemon_streams_ended_total") == 1, 30, "A ended")
            await until(lambda: counter(svc, "aemon_windows_scored_total") >= windows, 60, "all")
    else:
        async with running(settings(bootstrap, models, t)) as svc:
            await produce(bootstrap, t["input_topic"], first, total=len(first), progress=False)
            await until(lambda: counter(svc, "aemon_windows_scored_total") >= windows, 60, "all")
            held = (await committed(bootstrap, t["group_id"], t["input_topic"], 1))[0]
            assert held <= a_last  # A's windows' history and open event hold it
            with pytest.raises(ConfigError, match=r"--partition 1: in-\S+ has partitions 0 to 0"):
                await end_streams(bootstrap, t["input_topic"], [A], partition=1)
            with pytest.raises(AemonError, match=f"topic {t['input_topic']}x does not exist"):
                await end_streams(bootstrap, t["input_topic"] + "x", [A])  # and is not created
            assert await end_streams(bootstrap, t["input_topic"], [A]) == {A: 0}
            await until(lambda: counter(svc, "aemon_streams_ended_total") == 1, 30, "A ended")
    (marker,) = [r for r in await read_all(bootstrap, t["input_topic"]) if b'"end"' in r.value]
    assert orjson.loads(marker.value) == {"stream": A, "end": True} | (
        {"after": a_last} if by_itself else {}
    )
    # stopped (its drain commits every partition): A holds nothing back any more
    assert (await committed(bootstrap, t["group_id"], t["input_topic"], 1))[0] > a_last
    second = part(520, 700, with_a=False)  # the others go on: the commit passes A's end
    async with running(settings(bootstrap, models, t)):
        await produce(bootstrap, t["input_topic"], second, total=len(second), progress=False)
        deadline = time.monotonic() + 60
        while not {(s, 699) for s in STREAMS if s != A} <= set(await decided(bootstrap, t)):
            assert time.monotonic() < deadline, "part two undecided"
            await asyncio.sleep(0.5)
    assert (await committed(bootstrap, t["group_id"], t["input_topic"], 1))[0] > marker.offset
    # so the next restart re-reads nothing of A: it counts A from 0 as the first one did,
    # not on from an anchor kept before A's end
    third = [msg(A, k, k - AGAIN) for k in range(AGAIN, len(rows[A]))]
    everything = len(offline) - sum(s == A for s in offline.stream) + len(t_a)
    async with running(settings(bootstrap, models, t)):
        await produce(bootstrap, t["input_topic"], third, total=len(third), progress=False)
        deadline = time.monotonic() + 60
        while len(scored := await scores_by_time(bootstrap, t)) < everything:
            assert time.monotonic() < deadline, f"{everything - len(scored)} windows undecided"
            await asyncio.sleep(0.5)
    alerts, _ = await read_back(bootstrap, t)
    assert same_events(expected, alerts) == []
    assert [e["event_id"] for e in alerts if e.get("ended")] == [ended["event_id"]]
    for timeline in (t_a, offline):
        want = [
            (s, q, ts, sc)
            for s, q, ts, sc in zip(
                timeline.stream, timeline.seq, timeline.end, timeline.score, strict=True
            )
            if (s == A) == (timeline is t_a)
        ]
        got = np.array([scored[(s, q, ts)] for s, q, ts, _ in want])
        np.testing.assert_allclose(got, [sc for *_, sc in want], rtol=1e-4, atol=1e-6)
    # what `aemon record` makes of the input topic, its end included, scores offline to the
    # daemon's events, all streams at once
    recording = Recording()
    for r in await read_all(bootstrap, t["input_topic"]):
        recording.add(r.value, r.timestamp, r.key)
    recording.write(tmp_path / "recorded.csv")
    again = aemon.load(models, device="cpu").timeline(read_samples(tmp_path / "recorded.csv"))
    assert same_events(again.events, alerts) == [] and len(again) == everything


@pytest.mark.parametrize("which", ["series", "learning"])
async def test_a_threshold_set_while_the_daemon_runs_judges_the_next_windows_as_offline(
    bootstrap, which, request, tmp_path
):
    """A stream's threshold set with ``set_threshold`` and saved into the watched models
    directory: from the swap on, that stream's windows are judged at it, with the score history
    kept (the same weights score as before) and, for a model that keeps learning, its learner
    too, exactly as offline scoring with the new model judges them; the other streams'
    decisions do not change."""
    models, rest, offline = request.getfixturevalue(which)
    root = tmp_path / "m"
    shutil.copytree(models, root)
    changed = aemon.load(models, device="cpu")
    changed.set_threshold(A, 1.02 * changed.thresholds[A])  # its level shift scores up to 1.06x
    changed.save(tmp_path / "other")
    reference = aemon.load(tmp_path / "other", device="cpu").timeline(read_samples(rest))
    msgs = list(sample_messages(read_samples(rest)))
    cut = 3 * 150  # every stream's row 150: before the level shift, no event open
    t = topics(1)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, root, t, watch_model=True)) as svc:
        await produce(bootstrap, t["input_topic"], msgs[:cut], total=cut, progress=False)
        await until(lambda: svc.totals.windows >= windows_in(msgs[:cut]), 60, "first part")
        await swap_in(bootstrap, svc, t, tmp_path / "other", root)
        tail = msgs[cut:]
        await produce(bootstrap, t["input_topic"], tail, total=len(tail), progress=False)
        await until(lambda: svc.totals.windows >= windows_in(msgs), 90, "every window decided")
    alerts, scores = await read_back(bootstrap, t)
    judged = {(d["stream"], d["seq"]): (d["threshold"], d["is_anomaly"]) for d in scores}
    after = [
        (q, thr, above)
        for s, q, thr, above in zip(
            reference.stream, reference.seq, reference.threshold, reference.above, strict=True
        )
        if s == A and q >= 150
    ]
    got = np.array([judged[(A, q)] for q, *_ in after], dtype=float)
    np.testing.assert_allclose(got[:, 0], [thr for _, thr, _ in after], rtol=1e-4)
    assert got[:, 1].tolist() == [float(above) for *_, above in after]
    floor = 1.02 * aemon.load(models, device="cpu").thresholds[A]
    assert np.isclose(got[:, 0], floor, rtol=1e-6).sum() > 10  # the new threshold binds
    assert any(above for *_, above in after)  # the level shift, judged at it
    mine, want = (
        [e for e in x if e["stream"] == A and e["start_seq"] >= 150]
        for x in (alerts, reference.events)
    )
    assert want and same_events(want, mine) == []  # the events it opened since
    others = [e for e in offline.events if e["stream"] != A]
    assert same_events(others, [e for e in alerts if e["stream"] != A]) == []


async def scores_by_time(bootstrap: str, t: dict[str, str]) -> dict[tuple[str, int, float], float]:
    """Each decided window's score by stream, seq and time (a stream that ended counts its seq
    from 0 again)."""
    out = {}
    for r in await read_all(bootstrap, t["scores_topic"]):
        doc = orjson.loads(r.value)
        out[(doc["stream"], doc["seq"], doc["ts"])] = doc["score"]
    return out


async def test_a_model_swapped_in_mid_event_resolves_it_under_the_id_it_opened_with(
    bootstrap, series, tmp_path
):
    """A stream's model replaced (a changed detector.json) while its event is open: the event
    resolves under the id its open message has (the opening model's), so that `aemon notify`
    and anyone deduplicating by id match the two."""
    models, rest, _ = series
    root = tmp_path / "m"
    shutil.copytree(models, root)
    fit_series_models(tmp_path, tmp_path / "other", learn=False, seed=1)  # another version
    samples = read_samples(rest)
    msgs = list(sample_messages(samples))
    cut = 3 * 250  # every stream's row 250: its level shift's events open (rows 200-280)
    t = topics(1)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, root, t, watch_model=True)) as svc:
        await produce(bootstrap, t["input_topic"], msgs[:cut], total=cut, progress=False)
        await until(lambda: counter(svc, "aemon_events_open") == 3, 60, "three events open")
        before = await swap_in(bootstrap, svc, t, tmp_path / "other", root)
        tail = msgs[cut:]
        await produce(bootstrap, t["input_topic"], tail, total=len(tail), progress=False)
        await until(lambda: counter(svc, "aemon_events_open") == 0, 60, "every event resolved")
    alerts, _ = await read_back(bootstrap, t)
    opened = {e["event_id"] for e in alerts if e["state"] == "open"}
    resolved = [e for e in alerts if e["state"] == "resolved"]
    assert {e["stream"] for e in resolved} == set(STREAMS)
    assert [e for e in resolved if e["event_id"] not in opened] == []
    swapped = [e for e in resolved if e["stream"] == A and e["model_version"] != before]
    assert swapped  # A's first event resolved by the model swapped in


CUT, STOP_AT = 150, 230  # every stream's rows: A's new model swapped in, the daemon stopped


async def swapped_at_cut(bootstrap: str, svc, t: dict[str, str], other: Path, root: Path, msgs):
    """Stream A's model of ``other`` swapped into the running daemon's ``root`` once every
    stream's rows before CUT are decided, so that it judges A from its row CUT on."""
    cut = len(STREAMS) * CUT
    await produce(bootstrap, t["input_topic"], msgs[:cut], total=cut, progress=False)
    await until(lambda: svc.totals.windows >= windows_in(msgs[:cut]), 60, "rows before the swap")
    await swap_in(bootstrap, svc, t, other, root)


async def went_on(bootstrap: str, models: Path, other: Path, msgs, root: Path):
    """What a daemon that A's new model is swapped into at row CUT, never stopped, publishes:
    (its topics, alerts, score records)."""
    shutil.copytree(models, root)
    t = topics(1)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, root, t, watch_model=True)) as svc:
        await swapped_at_cut(bootstrap, svc, t, other, root, msgs)
        tail = msgs[len(STREAMS) * CUT :]
        await produce(bootstrap, t["input_topic"], tail, total=len(tail), progress=False)
        await until(lambda: svc.totals.windows >= windows_in(msgs), 90, "every window decided")
    return (t, *await read_back(bootstrap, t))


def assert_decided_as(want: tuple[list[dict], list[dict]], got: tuple[list[dict], list[dict]]):
    """Every event, and every window's verdict, threshold and score (each copy of a window
    decided twice), of ``got`` as of ``want``."""
    assert same_events(want[0], got[0]) == []
    judged = {(d["stream"], d["seq"]): d for d in want[1]}
    assert {(d["stream"], d["seq"]) for d in got[1]} == set(judged)
    for d in got[1]:
        w = judged[(d["stream"], d["seq"])]
        assert d["is_anomaly"] == w["is_anomaly"]
        assert d["threshold"] == pytest.approx(w["threshold"], rel=1e-4)
        assert d["score"] == pytest.approx(w["score"], rel=1e-4, abs=1e-6)


async def test_a_restart_after_a_retrained_model_swapped_in_decides_as_the_daemon_that_went_on(
    bootstrap, learning, tmp_path
):
    """A stream's model replaced by one of other weights that keeps learning (retrained,
    another seed), then the daemon restarted within the history its decisions depend on (its
    commit still before the swap): the restart resumes the stream at the swap point kept in the
    learned-models topic and decides every window and event as the daemon that went on. Before,
    it rebuilt the new model's score history and learner from windows the replaced model had
    judged, and decided otherwise until those had passed."""
    models, rest, _ = learning
    other = tmp_path / "other"
    fit_series_models(tmp_path, other, seed=1, **LEARN)
    msgs = list(sample_messages(read_samples(rest)))
    t, *want = await went_on(bootstrap, models, other, msgs, tmp_path / "a")
    swaps = [r for r in await read_all(bootstrap, t["learned_topic"]) if r.key.startswith(b"swap")]
    assert len(swaps) == 1 and A.encode() in swaps[0].key  # A's model, swapped in at its row CUT
    assert {e["stream"] for e in want[0] if e["start_seq"] > CUT} == set(STREAMS)
    root, cut, stop = tmp_path / "b", len(STREAMS) * CUT, len(STREAMS) * STOP_AT
    shutil.copytree(models, root)
    t = topics(1)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, root, t, watch_model=True)
    async with running(s) as svc:
        await swapped_at_cut(bootstrap, svc, t, other, root, msgs)
        part = msgs[cut:stop]
        await produce(bootstrap, t["input_topic"], part, total=len(part), progress=False)
        await until(lambda: svc.totals.windows >= windows_in(msgs[:stop]), 90, "rows to the stop")
    # its commit before the swap (the swap's first window comes after the first CUT rows)
    assert min((await committed(bootstrap, s.group_id, s.input_topic, 1)).values()) < cut
    async with running(s) as svc:
        tail = msgs[stop:]
        await produce(bootstrap, t["input_topic"], tail, total=len(tail), progress=False)
        deadline = time.monotonic() + 90
        while len(await decided(bootstrap, t)) < windows_in(msgs):
            assert time.monotonic() < deadline, "windows undecided after the restart"
            await asyncio.sleep(0.5)
        # A's windows before the swap point at least, skipped: decided before the restart
        assert counter(svc, "aemon_warmup_windows_total") >= CUT - 7
    assert_decided_as(want, await read_back(bootstrap, t))


async def test_a_replica_taking_a_swapped_in_models_stream_over_resumes_it_at_the_swap_point(
    bootstrap, learning, tmp_path
):
    """The same across a partition move: two replicas serve a models directory into which A's
    retrained model is copied; both swap it in; the one that owns A's partition is SIGKILLed
    after A's rows to STOP_AT; the survivor reads A's swap point with the partition's anchors
    and decides every window and event as the daemon that went on."""
    models, rest, _ = learning
    other = tmp_path / "other"
    fit_series_models(tmp_path, other, seed=1, **LEARN)
    msgs = list(sample_messages(read_samples(rest)))
    _, *want = await went_on(bootstrap, models, other, msgs, tmp_path / "a")
    root = tmp_path / "b"
    shutil.copytree(models, root)
    t = topics(2)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, root, t, watch_model=True, max_batch=32)
    pair = [Daemon(s, tmp_path / f"r{k}.log") for k in range(2)]
    for d in pair:
        await d.wait_ready()

    def owned() -> list[float]:
        return [d.metric("aemon_assigned_partitions") for d in pair]

    await until(lambda: owned() == [1, 1], 60, lambda: f"one partition each {owned()}")
    cut, stop = len(STREAMS) * CUT, len(STREAMS) * STOP_AT

    async def all_decided(n: int, what: str) -> None:
        deadline = time.monotonic() + 120
        while len(await decided(bootstrap, t)) < n:
            assert time.monotonic() < deadline, f"{what}: windows undecided"
            await asyncio.sleep(0.5)

    await produce(bootstrap, t["input_topic"], msgs[:cut], total=cut, progress=False)
    await all_decided(windows_in(msgs[:cut]), "before the swap")
    shutil.copytree(catalog(other)[A], catalog(root)[A], dirs_exist_ok=True)
    keys = {partition_of(k): k for k in ("x0", "x1", "x2", "x3", "x4", "x5")}  # each partition
    stranger = orjson.dumps({"stream": "no-such", "seq": 0, "value": 1.0})
    deadline = time.monotonic() + 60
    while not all("model swapped in" in d.log.read_text() for d in pair):
        assert time.monotonic() < deadline, "a replica never swapped A's model in"
        strangers = [(keys[p].encode(), stranger, None) for p in (0, 1)]
        await produce(bootstrap, t["input_topic"], strangers, total=2, progress=False)
        await asyncio.sleep(0.5)
    part = msgs[cut:stop]
    await produce(bootstrap, t["input_topic"], part, total=len(part), progress=False)
    await all_decided(windows_in(msgs[:stop]), "before the kill")
    lag = f"aemon_consumer_lag_messages{{partition={partition_of(A)},topic={t['input_topic']}}}"
    (victim,) = [d for d in pair if lag in scrape(d.port)]
    survivor = pair[1 - pair.index(victim)]
    victim.kill()
    await until(lambda: survivor.metric("aemon_assigned_partitions") == 2, 60, "takeover")
    tail = msgs[stop:]
    await produce(bootstrap, t["input_topic"], tail, total=len(tail), progress=False)
    try:
        await all_decided(windows_in(msgs), "after the takeover")
        warm = survivor.metric("aemon_warmup_windows_total")
    finally:
        survivor.proc.send_signal(signal.SIGTERM)
        assert survivor.proc.wait(20) == 0
    assert warm >= CUT - 7  # A's windows before the swap point at least, skipped
    got = await read_back(bootstrap, t)
    assert_decided_as(want, ([e for e in got[0] if e["stream"] in STREAMS], got[1]))
