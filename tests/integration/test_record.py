"""``aemon record``: a topic of samples written back as the sample CSV ``train series`` takes,
decoded as the daemon decodes them, through the real broker and the installed command."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import numpy as np
import orjson

from aemon.replay import produce
from aemon.training.datasets.samples import read_samples
from tests.integration.helpers import make_topics, topics

AEMON = str(Path(sys.executable).parent / "aemon")
N = 120  # samples a stream


def sample(stream: str, i: int, **values: float) -> tuple[bytes, bytes, None]:
    doc = {"stream": stream, "seq": i, "ts": 1_700_000_000 + 60 * i, "values": values}
    return stream.encode(), orjson.dumps(doc), None


def pump(i: int) -> tuple[bytes, bytes, None]:
    return sample("pump", i, flow=math.sin(i / 6), pressure=1e5 + i % 7)


def fan(i: int) -> tuple[bytes, bytes, None]:
    return sample("fan", i, rpm=1200.5 + math.cos(i / 9))


async def record(*argv: str) -> tuple[int, str, str]:
    run = await asyncio.create_subprocess_exec(
        AEMON, "record", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(run.communicate(), 120)
    assert run.returncode is not None
    return run.returncode, out.decode(), err.decode()


async def test_a_recorded_topic_is_the_history_it_was_sent_as_and_trains(bootstrap, tmp_path):
    """Two streams by metric name among messages the
    daemon would refuse: the CSV holds every sample it would take, as sent (float32), in
    order, and what it would not is counted by reason; ``train series`` takes the CSV."""
    t = topics(2)
    await make_topics(bootstrap, t)
    sent = [m for i in range(N) for m in (pump(i), fan(i))]
    bad = [
        (b"pump", b"not json", None),
        pump(N - 1),  # a repeat: late_sample
        sample("pump", N, flow=0.5),  # pressure missing: missing_values
    ]
    await produce(bootstrap, t["input_topic"], sent + bad, total=len(sent) + 3, progress=False)
    out = tmp_path / "history.csv"
    argv = ("--topic", t["input_topic"], "--bootstrap-servers", bootstrap, "--output", str(out))
    rc, stdout, stderr = await record(*argv, "--json")
    assert rc == 0, stderr
    doc = json.loads(stdout)
    assert doc["samples"] == 2 * N
    assert doc["left_out"] == {"late_sample": 1, "missing_values": 1, "not_json": 1}
    assert {s: v["metrics"] for s, v in doc["streams"].items()} == {
        "pump": ["flow", "pressure"],
        "fan": ["rpm"],
    }
    got = read_samples(out)
    for stream, make in (("pump", pump), ("fan", fan)):
        rows = got.rows_of(stream)
        docs = [orjson.loads(make(i)[1]) for i in range(N)]
        want = np.array([list(d["values"].values()) for d in docs], dtype=np.float32)
        cols = [got.channels.index(m) for m in doc["streams"][stream]["metrics"]]
        assert (got.values[np.ix_(rows, cols)].astype(np.float32) == want).all()  # as sent
        assert (got.seq[rows] == np.arange(N)).all()
        assert (got.ts[rows] == [d["ts"] for d in docs]).all()
    some = tmp_path / "fan.csv"
    rc, _, stderr = await record(*argv[:-1], str(some), "--stream", "fan", "--max-samples", "10")
    assert rc == 0 and "recorded 10 samples of 1 stream from" in stderr
    rc, stdout, stderr = await record(*argv[:-1], "-", "--stream", "fan", "--max-samples", "3")
    assert rc == 0 and "-> -" in stderr  # the CSV on standard output, the summary on stderr
    assert stdout.splitlines()[0] == "timestamp,stream,seq,rpm" and len(stdout.splitlines()) == 4
    assert read_samples(some).streams() == ["fan"] and len(read_samples(some)) == 10
    train = await asyncio.create_subprocess_exec(
        AEMON, "train", "series", "--input", str(out), "--out", str(tmp_path / "m"),
        "--epochs", "1", "--members", "1", "--quiet",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(train.communicate(), 120)
    assert train.returncode == 0, err.decode()


async def test_follow_records_samples_as_they_arrive(bootstrap, tmp_path):
    """``--follow`` goes on past the topic's end: half the samples are there at the start, the
    rest arrive while it runs, and it stops at ``--max-samples``."""
    t = topics(1)
    await make_topics(bootstrap, t)
    first, rest = [fan(i) for i in range(N // 2)], [fan(i) for i in range(N // 2, N)]
    await produce(bootstrap, t["input_topic"], first, total=len(first), progress=False)
    out = tmp_path / "history.csv"
    running = asyncio.create_task(
        record(
            "--topic", t["input_topic"], "--bootstrap-servers", bootstrap, "--output", str(out),
            "--follow", "--max-samples", str(N), "--quiet",
        )
    )  # fmt: skip
    await produce(bootstrap, t["input_topic"], rest, total=len(rest), progress=False)
    rc, _, stderr = await asyncio.wait_for(running, 120)
    assert rc == 0, stderr
    assert (read_samples(out).seq == np.arange(N)).all()


async def test_a_topic_with_nothing_to_record_is_one_line_and_exit_2(bootstrap, tmp_path):
    t = topics(1)
    await make_topics(bootstrap, t)
    await produce(bootstrap, t["input_topic"], [(b"k", b"[1, 2]", None)], total=1, progress=False)
    out = tmp_path / "history.csv"
    argv = ("--topic", t["input_topic"], "--bootstrap-servers", bootstrap, "--output", str(out))
    rc, _, stderr = await record(*argv)
    assert rc == 2 and not out.exists()
    assert stderr.strip().splitlines() == [
        f"aemon: error: {t['input_topic']}: no sample to record in 1 messages; left out as the "
        "daemon would: not_object 1"
    ]
