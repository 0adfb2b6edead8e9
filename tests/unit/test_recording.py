"""``aemon record``'s recording: what the daemon would take for a model trained on each stream's
first sample, as sample CSV rows; the rest counted by the dead-letter reason it would get."""

import orjson
import pytest

from aemon.core.errors import DataError
from aemon.recording import Recording


def msg(**doc: object) -> bytes:
    return orjson.dumps({"ts": 1_700_000_000, **doc})


def test_streams_by_position_and_by_name_keep_their_first_metrics():
    r = Recording()
    assert r.add(msg(stream="one", value=1.5), 0)
    assert r.add(msg(stream="two", values=[1, 2]), 0)
    assert not r.add(msg(stream="two", values=[1, 2, 3]), 0)  # another count: wrong_length
    assert r.add(msg(stream="map", values={"cpu": 0.5, "mem": 2.0}), 0)
    assert r.add(msg(stream="map", values={"mem": 3.0, "cpu": 0.6, "disk": 9.0}), 0)  # extra: out
    assert not r.add(msg(stream="map", values={"cpu": 0.7}), 0)  # mem missing
    assert r.add(msg(stream="one", seq=5, value=2.5), 0)  # a jump: a gap, kept at its seq
    assert not r.add(msg(stream="one", seq=5, value=2.5), 0)  # a repeat
    assert not r.add(b"{", 0)
    assert not r.add(orjson.dumps({"stream": "six", "end": True}), 0)  # no sample: left out
    frame = r.frame()
    ids = ["timestamp", "stream", "seq"]
    assert list(frame.columns) == [*ids, "value", "value0", "value1", "cpu", "mem"]
    assert frame.seq.tolist() == [0, 5, 0, 0, 1]
    assert frame[frame.stream == "map"][["cpu", "mem"]].values.tolist() == [
        [0.5, 2.0],
        [pytest.approx(0.6), 3.0],
    ]
    assert frame[frame.stream == "one"][["value0", "cpu"]].isna().all().all()
    left_out = {"wrong_length": 1, "missing_values": 1, "late_sample": 1, "not_json": 1, "end": 1}
    assert dict(r.refused) == left_out


def test_an_end_marker_is_written_on_its_streams_last_sample_and_the_stream_counts_afresh():
    """After its end marker a stream is a new one to the daemon, its seq (none sent: its count)
    from 0 again: the CSV says so with end = 1 on the sample the marker followed, and keeps the
    seq the daemon windows each sample at. A marker after no sample ends nothing."""
    r = Recording()
    for k in range(3):
        assert r.add(msg(stream="a", seq=k, value=float(k)), 0)
        assert r.add(msg(stream="b", value=float(k)), 0)
    assert r.add(msg(stream="d", value=1.0), 0)
    for stream in "abc":
        assert not r.add(orjson.dumps({"stream": stream, "end": True}), 0)
    assert not r.add(orjson.dumps({"stream": "a", "end": True}), 0)  # twice: ends nothing more
    assert r.add(msg(stream="a", seq=0, value=9.0), 0)
    assert r.add(msg(stream="a", seq=1, value=9.0), 0)
    assert not r.add(msg(stream="a", seq=1, value=9.0), 0)  # a repeat is still one
    assert r.add(msg(stream="b", value=9.0), 0)
    frame = r.frame()
    assert list(frame.columns) == ["timestamp", "stream", "seq", "end", "value"]
    a, b = frame[frame.stream == "a"], frame[frame.stream == "b"]
    assert a.seq.tolist() == [0, 1, 2, 0, 1] and a.end.tolist() == [0, 0, 1, 0, 0]
    assert b.seq.tolist() == [0, 1, 2, 0] and b.end.tolist() == [0, 0, 1, 0]
    assert frame[frame.stream == "d"].end.tolist() == [0]
    assert r.summary()["streams"]["a"]["ended"] == 1
    assert dict(r.refused) == {"end": 2, "late_sample": 1}  # the markers of c and a's second


def test_only_the_streams_asked_for_and_no_metric_named_as_a_csv_column():
    r = Recording()
    assert not r.add(msg(stream="a", value=1), 0, keep={"b"}) and not r.refused
    assert r.add(msg(stream="b", values={"seq": 1.0}), 0, keep={"b"})
    with pytest.raises(DataError, match="stream 'b' sends a metric named 'seq'"):
        r.frame()
