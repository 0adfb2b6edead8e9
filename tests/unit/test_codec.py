import numpy as np
import orjson
import pytest

from monitor.codec import (
    REASONS,
    Invalid,
    Limits,
    decode_sample,
    decode_window,
    encode_window,
    f32_headers,
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


def test_f32_window_uses_headers():
    values = np.float32([0.25, -1, 3, 1e-7])
    meta, row = decode(values.astype("<f4").tobytes(), f32_headers("m-1", 7))
    np.testing.assert_array_equal(row, values)
    assert (meta.stream, meta.seq) == ("m-1", 7)


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
        (b'{"stream": "a", "values": [1, 2, null, 4]}', None, "bad_values"),
        (b'{"stream": "a", "values": [1, 2, 3]}', None, "wrong_length"),
        (b'{"stream": "a", "values": [1, 2, 3, 1e300]}', None, "non_finite"),
        (b'{"stream": "a", "seq": true, "values": [1, 2, 3, 4]}', None, "bad_seq"),
        (b'{"stream": "a", "seq": -1, "values": [1, 2, 3, 4]}', None, "bad_seq"),
        (b'{"stream": "a", "ts": "now", "values": [1, 2, 3, 4]}', None, "bad_ts"),
        (b"\x00" * 12, f32_headers("a", 1), "wrong_length"),
        (np.float32([1, np.inf, 0, 0]).tobytes(), f32_headers("a", 1), "non_finite"),
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


def test_samples_take_value_or_values():
    s = decode_sample(b'{"stream": "t", "ts": 5, "value": 1.5}', 0, 1, LIM)
    assert (s.stream, s.seq, s.ts, s.values.tolist()) == ("t", None, 5.0, [1.5])
    s = decode_sample(b'{"stream": "t", "seq": 3, "values": [1, 2]}', 9000, 2, LIM)
    assert (s.seq, s.ts, s.values.tolist()) == (3, 9.0, [1.0, 2.0])
    with pytest.raises(Invalid, match="wrong_length"):
        decode_sample(b'{"stream": "t", "values": [1, 2, 3]}', 0, 2, LIM)
    with pytest.raises(Invalid, match="missing_values"):
        decode_sample(b'{"stream": "t"}', 0, 1, LIM)
