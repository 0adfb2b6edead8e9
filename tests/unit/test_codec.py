import dataclasses
import json

import numpy as np
import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from aemon.daemon import codec
from aemon.daemon.codec import (
    End,
    Limits,
    check_length,
    decode_sample,
    decode_windows,
    encode_end,
    encode_window,
    f32_headers,
    non_finite_rows,
)
from aemon.daemon.invalid import REASONS, Invalid

LIM = Limits(max_bytes=4096, max_stream_len=16)


def sample(body: bytes, timestamp_ms: int, channels: int) -> codec.Sample:
    """A sample decoded and checked against a model of ``channels`` metrics, as the intake
    does."""
    got = decode_sample(body, timestamp_ms, LIM)
    check_length(len(got.values), channels)
    return got


def record(value, headers=None, offset=99, timestamp_ms=1_700_000_000_000, key=None):
    headers = tuple(headers or ())
    return ConsumerRecord("t", 0, offset, timestamp_ms, 0, key, value, None, 0, 0, headers)


def decode(value, headers=None, length=4, timestamp_ms=1_700_000_000_000, key=None):
    """One record into a one-row batch: (stream, seq, ts) and the row, or raise its Invalid."""
    rows = np.zeros((1, length), dtype=np.float32)
    got = decode_windows([record(value, headers, timestamp_ms=timestamp_ms, key=key)], rows, LIM)
    if got.refused:
        raise got.refused[0][1]
    return (got.streams[0], got.seqs[0], got.ts[0]), rows[0]


def test_json_window_fills_the_row_and_falls_back_to_offset_and_kafka_time():
    meta, row = decode(b'{"stream": "p-17", "values": [1, 2.5, -3, 4e-3]}')
    np.testing.assert_array_equal(row, np.float32([1, 2.5, -3, 4e-3]))
    assert meta == ("p-17", 99, 1_700_000_000.0)
    meta, _ = decode(encode_window("a", 42, np.ones(4), ts=12.5))
    assert meta == ("a", 42, 12.5)


def test_a_run_of_mixed_records_fills_rows_in_order_and_returns_the_refused():
    values = np.float32([[0.25, -1, 3, 1e-7], [1, 2, 3, 4], [5, 6, 7, 8]])
    records = [
        record(values[0].astype("<f4").tobytes(), f32_headers("m-1", 7), offset=1),
        record(b"{", offset=2),
        record(encode_window("j", 3, values[1]), offset=3),
        record(b"\x00" * 12, f32_headers("m-1", 8), offset=4),
        record(values[2].astype("<f4").tobytes(), [*reversed(f32_headers("m-2", 9))], offset=5),
    ]
    rows = np.full((6, 4), -9, dtype=np.float32)
    got = decode_windows(records, rows, LIM)
    np.testing.assert_array_equal(rows[:3], values)
    assert (rows[3:] == -9).all()  # rows past the kept ones are untouched
    assert [r.offset for r in got.kept] == [1, 3, 5]
    assert (got.streams, got.seqs) == (["m-1", "j", "m-2"], [7, 3, 9])
    assert [(r.offset, bad.reason) for r, bad in got.refused] == [
        (2, "not_json"),
        (4, "wrong_length"),
    ]
    only_f32 = decode_windows([records[0], records[4]], rows, LIM)
    assert only_f32.streams == ["m-1", "m-2"]
    np.testing.assert_array_equal(rows[:2], values[[0, 2]])


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"x" * 5000, None, "too_large"),
        (b"{", None, "not_json"),
        (b'{"stream": "a", "values": [NaN, 1, 2, 3]}', None, "not_json"),
        (b'"text"', None, "not_object"),
        (b'{"values": [1, 2, 3, 4]}', None, "bad_stream"),
        (b'{"stream": 5, "values": [1, 2, 3, 4]}', None, "bad_stream"),
        (orjson.dumps({"stream": "s" * 17, "values": [1, 2, 3, 4]}), None, "bad_stream"),
        (b'{"stream": "a"}', None, "missing_values"),
        (b'{"stream": "a", "values": {"x": 1}}', None, "bad_values"),
        (b'{"stream": "a", "values": [1, 2, 3]}', None, "wrong_length"),
        (b'{"stream": "a", "seq": true, "values": [1, 2, 3, 4]}', None, "bad_seq"),
        (b'{"stream": "a", "seq": -1, "values": [1, 2, 3, 4]}', None, "bad_seq"),
        (b'{"stream": "a", "seq": 9223372036854775808, "values": [1, 2, 3, 4]}', None, "bad_seq"),
        (b'{"stream": "a", "ts": "now", "values": [1, 2, 3, 4]}', None, "bad_ts"),
        # milliseconds sent as seconds (the year 57,970): an event could not be written in ISO
        (b'{"stream": "a", "ts": 1767225600000, "values": [1, 2, 3, 4]}', None, "bad_ts"),
        (b'{"stream": "a", "ts": -1e11, "values": [1, 2, 3, 4]}', None, "bad_ts"),
        (b"\x00" * 12, f32_headers("a", 1), "wrong_length"),
        (b"\x00" * 16, [("content-type", b"application/x-aemon-f32")], "bad_stream"),
        (b"\x00" * 16, [*f32_headers("a", 1)[:2], ("seq", b"one")], "bad_f32"),
        (b"\x00" * 16, [*f32_headers("a", 1)[:2], ("seq", b"-3")], "bad_seq"),
        (b"\x00" * 16, [*f32_headers("a", 1)[:2], ("seq", str(2**63).encode())], "bad_seq"),
        (b"\x00" * 16, [*f32_headers("a", 1)[:1], ("stream", b"\xff")], "bad_f32"),
        (b"1,2,3,4", [("content-type", b"text/csv")], "unknown_content_type"),
    ],
)
def test_every_rejection_has_its_reason(value, headers, reason):
    assert reason in REASONS
    with pytest.raises(Invalid) as exc:
        decode(value, headers)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b'{"stream": "a", "values": [1, 2, 3, 1e300]}', None),
        (np.float32([1, np.inf, 0, 0]).tobytes(), f32_headers("a", 1)),
        (np.float32([1, np.nan, 0, 0]).tobytes(), f32_headers("a", 1)),
    ],
)
def test_non_finite_rows_are_found_per_batch(value, headers):
    rows = np.ones((3, 4), dtype=np.float32)
    got = decode_windows([record(value, headers)], rows[1:2], LIM)  # finiteness: the batch's job
    assert not got.refused
    assert non_finite_rows(rows).tolist() == [1]
    assert non_finite_rows(np.ones((5, 2, 2), dtype=np.float32)).tolist() == []
    assert non_finite_rows(rows[2:2]).tolist() == []  # a chunk with no good rows


@pytest.mark.parametrize(
    "values", ['["1", 2, 3, 4]', "[1, true, 3, 4]", "[false, 0, 0, 0]", "[1, 2, null, 4]"]
)
def test_values_are_json_numbers_only(values):
    got = decode_windows(
        [record(b'{"stream": "a", "values": %s}' % values.encode())], np.ones((1, 4)), LIM
    )
    assert [bad.reason for _, bad in got.refused] == ["bad_values"]
    with pytest.raises(Invalid, match="bad_values"):
        sample(b'{"stream": "t", "values": %s}' % values.encode(), 0, 4)


def test_samples_take_value_or_values():
    s = sample(b'{"stream": "t", "ts": 5, "value": 1.5}', 0, 1)
    assert (s.stream, s.seq, s.ts, s.values.tolist()) == ("t", None, 5.0, [1.5])
    s = sample(b'{"stream": "t", "seq": 3, "values": [1, 2]}', 9000, 2)
    assert (s.seq, s.ts, s.values.tolist()) == (3, 9.0, [1.0, 2.0])
    with pytest.raises(Invalid, match="wrong_length"):
        sample(b'{"stream": "t", "values": [1, 2, 3]}', 0, 2)
    with pytest.raises(Invalid, match="missing_values"):
        sample(b'{"stream": "t"}', 0, 1)
    with pytest.raises(Invalid, match="non_finite"):
        sample(b'{"stream": "t", "value": 1e300}', 0, 1)
    with pytest.raises(
        Invalid, match=r"'ts' 1767225600000\.0 is after the year 5000 .*milliseconds"
    ):
        sample(b'{"stream": "t", "ts": 1767225600000.0, "value": 1}', 0, 1)
    assert sample(b'{"stream": "t", "ts": 1767225600.5, "value": 1}', 0, 1).ts == (1767225600.5)


def test_a_sample_s_values_by_name_are_taken_in_its_model_s_order():
    """A producer that sends metrics by name (as most do, from a map) cannot send them in the
    wrong order: each goes where the model's training column of that name went; a metric the
    model does not take is left out, one it takes must be there."""
    s = decode_sample(b'{"stream": "m", "values": {"mem": 2e9, "cpu": 0.5, "disk": 7}}', 0, LIM)
    assert s.names == ("mem", "cpu", "disk")
    assert s.in_order(["cpu", "mem"]).tolist() == [0.5, 2e9]
    with pytest.raises(Invalid, match=r"^missing_values: no value for 'net' \(the stream's model"):
        s.in_order(["cpu", "net"])
    with pytest.raises(Invalid, match=r"^bad_values: values by name, but the stream's model"):
        s.in_order(None)
    one = decode_sample(b'{"stream": "m", "values": {"load": 3}}', 0, LIM)
    assert one.in_order(["value"]).tolist() == [3.0]  # one metric, whatever its name
    for body, reason in (
        (b'{"stream": "m", "values": {}}', "missing_values"),
        (b'{"stream": "m", "values": {"cpu": "0.5"}}', "bad_values"),
        (b'{"stream": "m", "values": {"cpu": null, "mem": 1}}', "bad_values"),
        (b'{"stream": "m", "values": {"cpu": 1e39, "mem": 1}}', "non_finite"),
    ):
        with pytest.raises(Invalid, match=f"^{reason}"):
            decode_sample(body, 0, LIM)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"stream": "m", "values": [%s]}' % b", ".join([b"1"] * 37), "wrong_length"),
        (b'{"stream": "m", "values": [%s]}' % b", ".join([b"1"] * 39), "wrong_length"),
        (b'{"stream": "m", "value": 1}', "wrong_length"),  # one value for a 38-metric model
        (b'{"stream": "m", "values": [%s, 1e39]}' % b", ".join([b"1"] * 37), "non_finite"),
        (b'{"stream": "m", "values": [%s, [1]]}' % b", ".join([b"1"] * 37), "bad_values"),
    ],
)
def test_a_sample_of_38_metrics_must_hold_38_finite_numbers(body, reason):
    with pytest.raises(Invalid, match=reason):
        sample(body, 0, 38)
    assert sample(b'{"stream": "m", "values": [%s]}' % b", ".join([b"2"] * 38), 0, 38)


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(width=64) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)
_MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "stream": st.sampled_from(["s", "", "x" * 17]) | _ANY_JSON,
        "values": st.lists(
            st.floats(width=64) | st.integers(-(2**70), 2**70) | _ANY_JSON, max_size=5
        )
        | _ANY_JSON,
        "value": st.floats(width=64) | _ANY_JSON,
        "seq": st.integers(-3, 2**70) | _ANY_JSON,
        "ts": st.floats(width=64) | _ANY_JSON,
        "other": _ANY_JSON,
    },
)


def _outcome(call):
    try:
        got = call()
    except Invalid as bad:
        return bad.reason
    return got


@settings(max_examples=600, deadline=None)
@given(_MESSAGES, st.sampled_from([None, b"", b"k", b"\xff", b"y" * 17]))
def test_the_parsed_path_decides_what_the_checked_path_decides(doc, key):
    body = json.dumps(doc).encode()  # big integers, and NaN / Infinity that JSON refuses
    row_checked = np.zeros(4, np.float32)
    parsed = _outcome(lambda: decode(body, key=key))
    checked = _outcome(lambda: codec._checked_window(body, record(body, key=key), row_checked, LIM))
    if isinstance(parsed, str) or isinstance(checked, str):
        assert parsed == checked
    else:
        assert parsed[0] == checked
        np.testing.assert_array_equal(parsed[1], row_checked)
    parsed = _outcome(lambda: decode_sample(body, 5_000, LIM, key))
    checked = _outcome(lambda: codec._checked_sample(body, 5_000, LIM, key))
    if isinstance(parsed, str) or isinstance(checked, str):
        assert parsed == checked
    else:
        assert (parsed.stream, parsed.seq, parsed.ts) == (checked.stream, checked.seq, checked.ts)
        np.testing.assert_array_equal(parsed.values, checked.values)


_F32_HEADER_LAYOUTS = [
    lambda s, q: [("content-type", codec.F32_CONTENT_TYPE), ("stream", s), ("seq", q)],
    lambda s, q: [("seq", q), ("stream", s), ("content-type", codec.F32_CONTENT_TYPE)],
    lambda s, q: [("content-type", codec.F32_CONTENT_TYPE), ("stream", s)],
    lambda s, q: [("content-type", codec.F32_CONTENT_TYPE), ("stream", s), ("stream", q)],
    lambda s, q: [("content-type", b"application/json"), ("stream", s), ("seq", q)],
    lambda s, q: [("content-type", codec.F32_CONTENT_TYPE), ("seq", q), ("seq", q)],
]
_F32_RECORDS = st.builds(
    lambda layout, stream, seq, size, fill, stamp, key: record(
        np.full(size, fill, "<f4").tobytes(), layout(stream, seq), timestamp_ms=stamp, key=key
    ),
    st.sampled_from(_F32_HEADER_LAYOUTS),
    st.sampled_from([b"m-1", b"m-2", b"\xc3\xa9", b"", b"\xff", b"y" * 17]),
    st.sampled_from([b"0", b"7", b"-1", b" 12", b"1_0", b"x", b"9" * 20]),
    st.sampled_from([4, 3]),
    st.sampled_from([0.5, np.inf]),
    st.sampled_from([1_700_000_000_000, -1, 2**62]),
    st.sampled_from([None, b"k"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_F32_RECORDS, min_size=1, max_size=6), st.integers(0, 2**20))
def test_a_run_of_float32_windows_decides_what_each_of_them_decides_alone(records, offset):
    """A run of float32 records as aemon's producers write them is decoded in passes over the
    whole run; any other run record by record. Either way each record gets what it gets alone:
    the same row, stream, seq and times, or the same refusal."""
    records = [dataclasses.replace(r, offset=offset + i) for i, r in enumerate(records)]
    rows = np.zeros((len(records), 4), np.float32)
    run = decode_windows(records, rows, LIM)
    alone = []
    for r in records:
        row = np.zeros((1, 4), np.float32)
        alone.append((decode_windows([r], row, LIM), row[0]))
    kept = [(got, row) for got, row in alone if got.kept]
    assert [r.offset for r in run.kept] == [got.kept[0].offset for got, _ in kept]
    for field in ("streams", "seqs", "ts", "record_ts"):
        assert getattr(run, field) == [getattr(got, field)[0] for got, _ in kept]
    assert [(r.offset, bad.reason, str(bad)) for r, bad in run.refused] == [
        (r.offset, bad.reason, str(bad)) for got, _ in alone for r, bad in got.refused
    ]
    np.testing.assert_array_equal(rows[: len(kept)], np.reshape([row for _, row in kept], (-1, 4)))
    ours = [[k for k, _ in r.headers] == ["content-type", "stream", "seq"] for r in records]
    if len(kept) == len(records) and all(ours):  # taken in passes over the whole run
        assert codec._f32_run(records, rows, 16, LIM, {}) is not None


def test_repeated_keys_nested_lists_and_unknown_keys_decide_as_the_checked_path():
    """What the C parser would read differently (the first of a repeated key, a nested list
    flattened) goes to the checked path; an unknown key is ignored as there."""
    assert decode(b'{"stream": "a", "values": [1, 2, 3, 4], "stream": "b"}')[0][0] == "b"
    assert decode(b'{"stream": "a", "seq": 1, "values": [1, 2, 3, 4], "seq": 2}')[0][1] == 2
    assert decode(b'{"stream": "a", "values": [1, 2, 3, 4], "extra": {"x": [1]}}')[0][0] == "a"
    for nested in (b"[[1], [2], [3], [4]]", b"[1, [2], 3, 4]", b"[1, 2, 3, [4]]"):
        with pytest.raises(Invalid, match="bad_values"):
            decode(b'{"stream": "a", "values": %s}' % nested)
    with pytest.raises(Invalid, match="bad_values"):
        sample(b'{"stream": "a", "values": [[1]]}', 0, 1)
    with pytest.raises(Invalid, match="bad_stream"):
        decode(b'{"stream": {"a": 1}, "values": [1, 2, 3, 4]}')
    assert decode(b'{"stream": "[a]", "values": [1, 2, 3, 4]}')[0][0] == "[a]"
    with pytest.raises(Invalid, match="missing_values"):  # a window's numbers are "values"
        decode(b'{"stream": "a", "value": 1}', length=1)


def test_the_parser_is_reused_across_runs_and_refusals():
    """A refused record leaves nothing of the parser's alive: the next run parses as before."""
    for _ in range(3):
        for bad in (
            b'{"stream": 1, "values": [1, 2, 3, 4]}',
            b'{"stream": "a", "values": [1, true, 3, 4]}',
        ):
            with pytest.raises(Invalid):
                decode(bad)
        assert decode(b'{"stream": "a", "values": [1, 2, 3, 4]}')[0][0] == "a"
    parser = codec._parser()
    for plain in (  # parsed in C, not left to the checked path; other keys are ignored
        b'{"stream": "a", "values": [1, 2, 3, 4]}',
        b'{"stream": "a", "host": "h-1", "meta": {"rack": 3}, "values": [1, 2, 3, 4]}',
    ):
        assert codec._parse(parser, plain, LIM, 4, sample=False) is not None
    assert codec._parse(parser, b'{"stream": "a", "value": 2}', LIM, 1, sample=True) is not None


@pytest.mark.parametrize(
    ("value", "headers"),
    [(b'{"stream": "a", "values": [1, 2, 3, 4]}', None), (b"\x00" * 16, f32_headers("a", 1))],
    ids=["json", "f32"],
)
def test_a_record_timestamp_no_event_could_carry_is_refused(value, headers):
    """A producer may set any record timestamp; one past the year 5000 would end the event that
    carries it in an ISO time that cannot be written."""
    with pytest.raises(Invalid, match=r"record's timestamp .* not between the years 1 and 5000"):
        decode(value, headers, timestamp_ms=2**62)
    assert decode(value, headers, timestamp_ms=0)[0][2] == 0.0


def test_a_message_without_stream_is_its_keys_stream():
    """The contract keys input by stream: a message without ``stream`` (field, or a float32
    window's header) takes its key's; a ``stream`` given wins; no key, or one that is not UTF-8
    text, is bad_stream."""
    body = b'{"seq": 3, "values": [1, 2, 3, 4]}'
    assert decode(body, key=b"pump-7")[0] == ("pump-7", 3, 1_700_000_000.0)
    assert decode(b'{"stream": "a", "values": [1, 2, 3, 4]}', key=b"b")[0][0] == "a"
    f32 = np.ones(4, "<f4").tobytes()
    f32_head = [("content-type", codec.F32_CONTENT_TYPE), ("seq", b"5")]
    assert decode(f32, f32_head, key=b"fan")[0][:2] == ("fan", 5)
    assert decode_sample(b'{"value": 1.5}', 0, LIM, b"host-1").stream == "host-1"
    assert decode_sample(b'{"values": {"cpu": 1}}', 0, LIM, b"host-1").stream == "host-1"
    for key, says in ((None, "no key"), (b"", "no key"), (b"\xff", "not UTF-8")):
        with pytest.raises(Invalid, match=f"bad_stream: .*{says}"):
            decode(body, key=key)
        with pytest.raises(Invalid, match=f"bad_stream: .*{says}"):
            decode_sample(b'{"value": 1.5}', 0, LIM, key)
    with pytest.raises(Invalid, match="bad_stream: stream id longer than 16"):
        decode(body, key=b"k" * 17)


def test_a_telegraf_metric_is_a_sample_of_its_series_by_field_name():
    """What Telegraf's Kafka output writes (``data_format = "json"``): its stream is the series
    key (the name, then the tags in key order), its values the fields that are numbers (text and
    booleans are no metric: left out), its time ``timestamp`` in seconds; the key (Telegraf's
    ``routing_tag``) only places it on a partition."""
    doc = {
        "fields": {"usage_user": 1.5, "usage_idle": 98, "state": "ok", "up": True},
        "name": "cpu",
        "tags": {"host": "web-1", "cpu": "cpu-total"},
        "timestamp": 1_700_000_060,
    }
    wide = Limits(max_bytes=4096, max_stream_len=64)
    s = decode_sample(orjson.dumps(doc), 0, wide, b"web-1")
    assert (s.stream, s.seq, s.ts) == ("cpu,cpu=cpu-total,host=web-1", None, 1_700_000_060.0)
    assert s.names == ("usage_user", "usage_idle") and s.values.tolist() == [1.5, 98.0]
    assert s.in_order(["usage_idle", "usage_user"]).tolist() == [98.0, 1.5]
    bare = decode_sample(orjson.dumps({"fields": {"x": 1}, "name": "up"}), 60_000, LIM)
    assert (bare.stream, bare.ts) == ("up", 60.0)  # no tags; the record's time
    for change, says in (
        (
            {"timestamp": 1_700_000_060_000},
            r"^bad_ts: 'timestamp' 1700000060000 is after .*"
            r"set json_timestamp_units = \"1s\" in Telegraf's output$",
        ),
        ({"fields": {"state": "ok"}}, r"^missing_values: metric 'cpu': no field is a number"),
        ({"fields": {"x": 1e39}}, r"^non_finite"),
        ({"tags": {"host": 1}}, r"^bad_stream: Telegraf metric: 'tags' must be an object of str"),
        ({"name": ""}, r"^bad_stream: Telegraf metric: 'name' must be a non-empty string"),
        ({"tags": {"host": "h" * 64}}, r"^bad_stream: stream id longer than 64"),
    ):
        with pytest.raises(Invalid, match=says):
            decode_sample(orjson.dumps(doc | change), 0, wide)
    ours = decode_sample(orjson.dumps({"stream": "s", "fields": {"a": 1}, "value": 2}), 0, LIM)
    assert (ours.stream, ours.values.tolist()) == ("s", [2.0])  # aemon's own sample


def test_a_prometheus_sample_from_the_kafka_adapter_is_a_sample_of_its_series():
    """What prometheus-kafka-adapter writes of Prometheus' remote write: one sample a message,
    its stream the series as PromQL names it (labels but ``__name__`` in name order), one
    metric (its name), the value as text, the time in RFC 3339 (no zone: UTC)."""
    wide = Limits(max_bytes=4096, max_stream_len=64)
    doc = {
        "timestamp": "2026-01-31T14:05:00Z",
        "value": "0.25",
        "name": "node_load1",
        "labels": {"__name__": "node_load1", "job": "node", "instance": "web-1:9100"},
    }
    s = decode_sample(orjson.dumps(doc), 0, wide, b"web-1")
    assert s.stream == 'node_load1{instance="web-1:9100",job="node"}' and s.seq is None
    assert (s.names, s.values.tolist(), s.ts) == (("node_load1",), [0.25], 1_769_868_300.0)
    same = {"timestamp": "2026-01-31T14:05:00", "value": 0.25}  # no zone; a number
    assert decode_sample(orjson.dumps(doc | same), 0, wide).ts == s.ts
    assert decode_sample(orjson.dumps(doc | {"labels": {}}), 0, wide).stream == "node_load1"
    for change, says in (
        ({"value": "NaN"}, r"^non_finite"),  # Prometheus' staleness marker
        ({"value": "high"}, r"^bad_values: Prometheus sample: 'value' must be a number"),
        ({"value": True}, r"^bad_values"),
        ({"timestamp": "yesterday"}, r"^bad_ts: 'timestamp' 'yesterday' is not an RFC 3339"),
        ({"timestamp": 1_769_868_300}, r"^bad_ts: 'timestamp' '1769868300' is not an RFC 3339"),
        ({"labels": {"job": 1}}, r"^bad_stream: Prometheus sample: 'labels' must be an object"),
        ({"labels": {"job": "x" * 64}}, r"^bad_stream: stream id longer than 64"),
    ):
        with pytest.raises(Invalid, match=says):
            decode_sample(orjson.dumps(doc | change), 0, wide)


def test_an_end_marker_ends_its_stream_and_nothing_else_is_one():
    """``{"stream": .., "end": true}`` alone (its stream, else its key) is a stream's end; an
    ``end`` that is not true, or one beside values, is refused as bad_end, on the fast path as
    on the checked one, never taken as a sample."""
    assert decode_sample(encode_end("web-1"), 0, LIM) == End("web-1")
    assert decode_sample(b'{"end": true}', 0, LIM, b"host-1") == End("host-1")
    assert decode_sample(encode_end("web-1", 41), 0, LIM) == End("web-1", 41)  # the daemon's
    for body, says in (
        (b'{"stream": "a", "end": 1}', "'end' is 1: true ends the stream"),
        (b'{"stream": "a", "end": false}', "'end' is False: true"),
        (b'{"stream": "a", "value": 1.5, "end": true}', "carries no values"),
        (b'{"stream": "a", "values": [1, 2], "end": true}', "carries no values"),
        (b'{"stream": "a", "end": true, "after": -1}', "'after' is -1: an offset"),
        (b'{"stream": "a", "end": true, "after": "4"}', "'after' is '4'"),
        (b'{"stream": "a", "end": true, "after": true}', "'after' is True"),
    ):
        with pytest.raises(Invalid, match=f"bad_end: .*{says}"):
            decode_sample(body, 0, LIM)
    with pytest.raises(Invalid, match="bad_stream"):
        decode_sample(b'{"end": true}', 0, LIM)
    with pytest.raises(Invalid, match="bad_end: end markers end streams of samples, not of wi"):
        decode(encode_end("web-1"))  # a window daemon keeps nothing per stream
    meta, _ = decode(b'{"stream": "w", "seq": 3, "end": 1700000060, "values": [1, 2, 3, 4]}')
    assert meta == ("w", 3, 1_700_000_000.0)  # a window's own "end" field is no marker
