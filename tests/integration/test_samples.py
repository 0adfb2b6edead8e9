"""Sample streams windowed by the daemon decide exactly what offline scoring of the windows does."""

import numpy as np
import orjson
import pandas as pd

import aemon
from aemon.core.table import WindowTable, read_windows, write_windows
from aemon.replay import replay
from tests.integration.helpers import (
    counter,
    make_topics,
    read_all,
    running,
    settings,
    topics,
    until,
)

BEATS = 60
STREAMS = 3


async def test_samples_are_windowed_per_stream_like_the_beats_they_came_from(
    bootstrap, ecg, tmp_path
):
    art, holdout = ecg
    beats = read_windows(holdout).values[:BEATS]
    length = beats.shape[1]
    # Stream k carries beats k, k+3, k+6, ... one sample per message, seq counting its samples.
    rows = []
    for k in range(STREAMS):
        for j, beat in enumerate(beats[k::STREAMS]):
            for i, v in enumerate(beat):
                seq = j * length + i
                rows.append((f"p{k}", seq, 1000.0 + seq / 250, v))
    order = np.argsort([r[2] for r in rows], kind="stable")  # interleave streams by time
    table = WindowTable(
        values=np.array([[rows[i][3]] for i in order], dtype=np.float32),
        stream=np.array([rows[i][0] for i in order]),
        seq=np.array([rows[i][1] for i in order], dtype=np.int64),
        ts=np.array([rows[i][2] for i in order]),
    )
    write_windows(tmp_path / "samples.csv", table)
    frame = pd.read_csv(tmp_path / "samples.csv")
    frame.insert(1, "host", "ward-7")  # a column that is no metric: replay leaves it out
    frame.to_csv(tmp_path / "samples.csv", index=False)

    # Offline truth: the beats themselves, named by the seq of their last sample.
    windows = WindowTable(
        values=beats,
        stream=np.array([f"p{b % STREAMS}" for b in range(BEATS)]),
        seq=np.array([(b // STREAMS) * length + length - 1 for b in range(BEATS)], dtype=np.int64),
    )
    write_windows(tmp_path / "windows.csv", windows)
    det = aemon.load(art, device="cpu")
    offline = {
        (str(s), int(q)): {"score": repr(float(v)), "is_anomaly": str(int(v > det.threshold))}
        for s, q, v in zip(windows.stream, windows.seq, det.score(windows.values), strict=True)
    }

    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, art, t, input_kind="samples")) as svc:
        sent = await replay(
            tmp_path / "samples.csv",
            t["input_topic"],
            bootstrap,
            samples=True,
            progress=False,
            ignore=["host"],
        )
        assert sent == BEATS * length
        await until(lambda: counter(svc, "aemon_windows_scored_total") >= BEATS, 60, "windows")
        assert counter(svc, "aemon_windows_scored_total") == BEATS
        assert counter(svc, "aemon_invalid_messages_total", reason="late_sample") == 0

    scored = {}
    for r in await read_all(bootstrap, t["scores_topic"]):
        doc = orjson.loads(r.value)
        scored[(doc["stream"], doc["seq"])] = doc
    assert set(scored) == set(offline)
    for key, doc in scored.items():
        assert abs(doc["score"] - float(offline[key]["score"])) <= 1e-6
        assert doc["is_anomaly"] == (offline[key]["is_anomaly"] == "1")
