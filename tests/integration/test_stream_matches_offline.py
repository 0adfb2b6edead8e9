"""Streaming decides exactly what offline ``aemon score`` decides, through the real broker."""

import orjson
import pytest

import aemon
from aemon.core.table import read_windows
from aemon.daemon.alerts import alert_id
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


@pytest.mark.parametrize("fmt", ["json", "f32"])
async def test_streaming_flags_exactly_what_offline_scoring_flags(bootstrap, ecg, tmp_path, fmt):
    art, holdout = ecg
    t = topics(3)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, art, t, max_batch=64)) as svc:
        sent = await replay(holdout, t["input_topic"], bootstrap, fmt=fmt, progress=False)
        await until(lambda: counter(svc, "aemon_windows_scored_total") >= sent, 60, "all scored")
        assert counter(svc, "aemon_windows_scored_total") == sent == 1000
        assert counter(svc, "aemon_invalid_messages_total", reason="not_json") == 0

    det, table = aemon.load(art, device="cpu"), read_windows(holdout)
    offline = {
        (str(s), int(q)): {"score": repr(float(v)), "is_anomaly": str(int(v > det.threshold))}
        for s, q, v in zip(table.stream, table.seq, det.score(table.values), strict=True)
    }
    flagged = {k for k, r in offline.items() if r["is_anomaly"] == "1"}

    alerts = [orjson.loads(r.value) for r in await read_all(bootstrap, t["alerts_topic"])]
    assert {(a["stream"], a["seq"]) for a in alerts} == flagged
    assert len(alerts) == len(flagged) > 100
    for a in alerts:
        assert a["alert_id"] == alert_id(a["model_version"], a["stream"], a["seq"])
        assert abs(a["score"] - float(offline[(a["stream"], a["seq"])]["score"])) <= 1e-6
        assert len(a["top_contributors"]) == 5 and all(0 <= i < 140 for i in a["top_contributors"])

    scores = [orjson.loads(r.value) for r in await read_all(bootstrap, t["scores_topic"])]
    assert len(scores) == 1000
    worst = max(abs(s["score"] - float(offline[(s["stream"], s["seq"])]["score"])) for s in scores)
    assert worst <= 1e-6
