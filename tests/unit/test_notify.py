"""``aemon notify``'s mapping: alerts topic records -> Alertmanager alerts, and the commit it
holds while an event is open."""

import orjson

from aemon.core.times import iso
from aemon.daemon import alerts
from aemon.notify import ENDS_AFTER, Notifier

NOW = 1_700_000_000.0


def event(event_id: str, state: str, **more: object) -> bytes:
    doc = {"event_id": event_id, "state": state, "stream": "s", "start_ts": NOW - 600}
    return alerts.event_message({**doc, "model": "m", "windows_above": 2, **more})


def test_an_open_event_fires_holds_the_commit_and_its_resolution_ends_it():
    n = Notifier({"team": "pumps"}, "critical", resend_s=30)
    fired = n.take(0, 5, event("e1", "open", top_metrics=[{"metric": "rpm", "share": 0.5}]), NOW)
    assert fired is not None and fired["labels"] == {
        "team": "pumps",
        "alertname": "AemonAnomaly",
        "severity": "critical",
        "stream": "s",
        "model": "m",
        "event_id": "e1",
    }
    assert fired["startsAt"] == iso(NOW - 600) == "2023-11-14T22:03:20.000000Z"
    assert fired["endsAt"] == iso(NOW + ENDS_AFTER * 30)
    assert "moved most: rpm 50%" in fired["annotations"]["description"]
    assert n.committable(0, 9) == 5 and n.committable(1, 9) == 9  # held at the opening
    assert [a["endsAt"] for a in n.firing(NOW + 100)] == [iso(NOW + 100 + ENDS_AFTER * 30)]
    assert n.firing(NOW + 100, [fired]) == []  # sent this round already
    ended = n.take(0, 9, event("e1", "resolved", resolved_ts=NOW + 50), NOW + 100)
    assert ended is not None and ended["endsAt"] == iso(NOW + 50)
    assert "stream ended" not in ended["annotations"]["description"]
    assert n.committable(0, 10) == 10 and n.firing(NOW) == []
    n.take(0, 11, event("e2", "open"), NOW)
    gone = n.take(0, 12, event("e2", "resolved", resolved_ts=NOW + 60, ended=True), NOW + 90)
    assert gone is not None and gone["endsAt"] == iso(NOW + 60)
    assert "resolved because its stream ended" in gone["annotations"]["description"]


def test_an_open_event_whose_resolution_never_comes_expires_at_its_streams_next():
    """A stream has one event open at a time: opened again under another id (its resolution
    lost: a daemon upgraded mid-event, whose ids differ), the old one is no longer sent on, so
    Alertmanager lets it expire, and no longer holds the commit."""
    n = Notifier({}, "warning", resend_s=30)
    n.take(0, 3, event("old", "open"), NOW)
    n.take(0, 4, event("other", "open", stream="t"), NOW)
    n.take(0, 7, event("new", "open"), NOW)
    firing = sorted(a["labels"]["event_id"] for a in n.firing(NOW + 30))
    assert firing == ["new", "other"] and n.committable(0, 9) == 4


def test_window_alerts_fire_per_stream_and_other_records_are_left_alone():
    n = Notifier()
    window = alerts.alert(
        model="m", model_version="v", stream="b", seq=3, ts=NOW, score=2.0, threshold=1.0, top=[]
    )
    fired = n.take(0, 0, window, NOW)
    assert fired is not None and fired["labels"]["alertname"] == "AemonWindowAnomaly"
    assert "event_id" not in fired["labels"] and n.committable(0, 1) == 1
    score = alerts.score_record("b", 4, NOW, 0.1, False, 0.3, 0.4)
    odd = orjson.dumps({"event_id": "e", "stream": "b", "start_ts": "noon"})
    for record in (b"not json", b"[1]", orjson.dumps({"state": "open"}), score, odd):
        assert n.take(0, 1, record, NOW) is None


def test_partitions_that_move_forget_their_open_events():
    n = Notifier()
    n.take(0, 1, event("a", "open"), NOW)
    n.take(1, 1, event("b", "open"), NOW)
    n.drop([0])
    assert [a["labels"]["event_id"] for a in n.firing(NOW)] == ["b"]
