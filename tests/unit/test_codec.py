import numpy as np
import orjson
import pytest

from monitor.codec import (
    REASONS,
    Invalid,
    Limits,
    copy_raw,
    decode_sample,
    decode_window,
    encode_window,
    f32_headers,
    non_finite_reason,
    non_finite_rows,
)

LIM = Limits(max_bytes=4096, max_stream_len=16)


def decode(value, headers=None, length=4):
    row = np.zeros(length, dtype=np.float32)
    return decode_window(value, headers, 99, 1_700_000_000_000, row, LIM), row


def test_json_window_fills_the_row_and_falls_back_to_offset_and_kafka_time():
    meta, row = decode(b'{"stream": "p-17", "values": [1, 2.5, -3, 4e-3]}')
    np.testing.assert_array_equal(row, np.float32([1, 2.5, -3, 4e-3]))
    assert (meta.stream, meta.seq, meta.ts) == ("p-17", 99, 1_700_000_000.0)
    meta, _ = decode(encode_window("a", 42, np.ones(4), ts=12.5))
    assert (meta.seq, meta.ts) == (42, 12.5)


def test_f32_windows_use_headers_and_are_copied_in_one_go():
    values = np.float32([[0.25, -1, 3, 1e-7], [1, 2, 3, 4], [5, 6, 7, 8]])
    metas = [
        decode(v.astype("<f4").tobytes(), f32_headers("m-1", 7 + i))[0]
        for i, v in enumerate(values)
    ]
    assert [(m.stream, m.seq) for m in metas] == [("m-1", 7), ("m-1", 8), ("m-1", 9)]
    flat = np.zeros((6, 4), dtype=np.float32)
    copy_raw(flat, [1, 2, 3], [m.raw for m in metas])  # a contiguous run
    np.testing.assert_array_equal(flat[1:4], values)
    copy_raw(flat, [0, 5], [metas[2].raw, metas[0].raw])  # rows with JSON rows between
    np.testing.assert_array_equal(flat[[0, 5]], values[[2, 0]])


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
        (b'{"stream": "a", "ts": "now", "values": [1, 2, 3, 4]}', None, "bad_ts"),
        (b"\x00" * 12, f32_headers("a", 1), "wrong_length"),
        (b"\x00" * 16, [("content-type", b"application/x-aemon-f32")], "bad_stream"),
        (b"\x00" * 16, [*f32_headers("a", 1)[:2], ("seq", b"one")], "bad_f32"),
        (b"1,2,3,4", [("content-type", b"text/csv")], "unknown_content_type"),
    ],
)
def test_every_rejection_has_its_reason(value, headers, reason):
    assert reason in REASONS
    with pytest.raises(Invalid) as exc:
        decode(value, headers)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b'{"stream": "a", "values": [1, 2, 3, 1e300]}', None, "non_finite"),
        (b'{"stream": "a", "values": [1, 2, null, 4]}', None, "bad_values"),
        (np.float32([1, np.inf, 0, 0]).tobytes(), f32_headers("a", 1), "non_finite"),
        (np.float32([1, np.nan, 0, 0]).tobytes(), f32_headers("a", 1), "non_finite"),
    ],
)
def test_non_finite_rows_are_found_per_batch_and_explained(value, headers, reason):
    rows = np.ones((3, 4), dtype=np.float32)
    meta = decode_window(value, headers, 0, 0, rows[1], LIM)  # finiteness is the batch's job
    if meta.raw is not None:
        copy_raw(rows, [1], [meta.raw])
    assert non_finite_rows(rows).tolist() == [1]
    assert non_finite_reason(value).reason == reason
    assert non_finite_rows(np.ones((5, 2, 2), dtype=np.float32)).tolist() == []
    assert non_finite_rows(rows[2:2]).tolist() == []  # a chunk with no good rows


def test_samples_take_value_or_values():
    s = decode_sample(b'{"stream": "t", "ts": 5, "value": 1.5}', 0, 1, LIM)
    assert (s.stream, s.seq, s.ts, s.values.tolist()) == ("t", None, 5.0, [1.5])
    s = decode_sample(b'{"stream": "t", "seq": 3, "values": [1, 2]}', 9000, 2, LIM)
    assert (s.seq, s.ts, s.values.tolist()) == (3, 9.0, [1.0, 2.0])
    with pytest.raises(Invalid, match="wrong_length"):
        decode_sample(b'{"stream": "t", "values": [1, 2, 3]}', 0, 2, LIM)
    with pytest.raises(Invalid, match="missing_values"):
        decode_sample(b'{"stream": "t"}', 0, 1, LIM)
    with pytest.raises(Invalid, match="non_finite"):
        decode_sample(b'{"stream": "t", "value": 1e300}', 0, 1, LIM)
