import numpy as np
import orjson

from aemon.daemon import alerts


def test_alert_ids_are_deterministic_and_tell_windows_apart():
    a = alerts.alert_id("v1", "p-17", 42)
    assert a == alerts.alert_id("v1", "p-17", 42) and len(a) == 32
    assert len({a, alerts.alert_id("v2", "p-17", 42), alerts.alert_id("v1", "p-17", 43)}) == 3
    assert alerts.alert_id("v1", "a", 12) != alerts.alert_id("v1", "a1", 2)


def test_contributors_are_indices_into_the_input_shape():
    top = np.array([[5, 0], [139, 7]])
    assert alerts.contributors(top, (140,)) == [[5, 0], [139, 7]]
    top = np.array([[0, 29, 783]])
    assert alerts.contributors(top, (28, 28)) == [[[0, 0], [1, 1], [27, 27]]]
    assert alerts.contributors(np.array([[7]]), (2, 5)) == [[[1, 2]]]
    assert alerts.contributors(np.empty((0, 5), dtype=np.int64), (2, 5)) == []


def test_alert_body_carries_the_contract_fields():
    body = orjson.loads(
        alerts.alert(
            model="ecg",
            model_version="v1",
            stream="p-1",
            seq=3,
            ts=1.5,
            score=0.25,
            threshold=0.1,
            top=[4, 2],
        )
    )
    assert body["alert_id"] == alerts.alert_id("v1", "p-1", 3)
    assert {k: body[k] for k in ("stream", "seq", "ts", "score", "threshold", "model")} == {
        "stream": "p-1",
        "seq": 3,
        "ts": 1.5,
        "score": 0.25,
        "threshold": 0.1,
        "model": "ecg",
    }
    assert body["top_contributors"] == [4, 2] and body["detected_at"] > 0
