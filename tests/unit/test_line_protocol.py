"""InfluxDB line protocol as Telegraf's Kafka output writes it by default: parsed into the same
sample as the same metric in Telegraf's JSON, escapes and all."""

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aemon.daemon.codec import Limits, decode_sample
from aemon.daemon.invalid import REASONS, Invalid
from aemon.daemon.line_protocol import parse_line

LIM = Limits(max_bytes=4096, max_stream_len=64)


def test_a_line_is_measurement_tags_fields_and_nanoseconds():
    line = parse_line(
        "cpu,host=web-1,cpu=cpu-total usage_user=1.5,usage_idle=98i,up=true,"
        'state="ok, really",n=3u 1700000060000000000\n'
    )
    assert line.measurement == "cpu" and line.tags == {"host": "web-1", "cpu": "cpu-total"}
    assert line.numbers == {"usage_user": 1.5, "usage_idle": 98.0, "n": 3.0}  # no text, no bool
    assert line.ns == 1_700_000_060_000_000_000
    assert parse_line("load value=-1e-3").ns is None  # no timestamp: the record's time


def test_escaped_commas_spaces_and_equals_signs_belong_to_their_names():
    line = parse_line(
        r'disk\ io,path=/mnt/a\ b,label=x\=y,dev=sda\,1 used\ pct=1,note="say \"hi\", ok" 1'
    )
    assert line.measurement == "disk io"
    assert line.tags == {"path": "/mnt/a b", "label": "x=y", "dev": "sda,1"}
    assert line.numbers == {"used pct": 1.0}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cpu", "not MEASUREMENT"),
        ("cpu usage", "is not KEY=VALUE"),
        ("cpu,host usage=1", "tag 'host' is not KEY=VALUE"),
        ("cpu usage=abc", "field 'usage': 'abc' is no value"),
        ("cpu usage=1 soon", "timestamp 'soon' is not an integer"),
        ('cpu note="open', "a string field is not closed"),
        ("cpu a=1 1\ncpu a=2 2", "several lines in one message"),
        ("cpu  a=1", "not MEASUREMENT"),
        ("cpu a=1 " + "9" * 400, "is beyond 64 bits of nanoseconds"),
        ("cpu a=" + "9" * 30 + "i", "field 'a': '9999.*' is no value"),
        ("cpu a=-1u", "field 'a': '-1u' is no value"),
    ],
)
def test_a_line_that_is_not_line_protocol_says_why(text, says):
    with pytest.raises(ValueError, match=says):
        parse_line(text)


def test_the_same_metric_in_line_protocol_and_in_json_is_the_same_sample():
    """Telegraf's ``influx`` (its Kafka output's default) and ``json`` formats of one metric:
    one stream (the series key), the same values by name, the same time; a line that is no
    line protocol is ``not_json`` as before, and one without numbers ``missing_values``."""
    doc = {
        "fields": {"usage_user": 1.5, "usage_idle": 98, "state": "ok"},
        "name": "cpu",
        "tags": {"host": "web-1", "cpu": "cpu-total"},
        "timestamp": 1_700_000_060,
    }
    line = (
        b'cpu,host=web-1,cpu=cpu-total usage_user=1.5,usage_idle=98i,state="ok" 1700000060000000000'
    )
    a, b = decode_sample(orjson.dumps(doc), 0, LIM), decode_sample(line, 0, LIM, b"web-1")
    assert (a.stream, a.names, a.ts) == (b.stream, b.names, b.ts)
    assert b.stream == "cpu,cpu=cpu-total,host=web-1" and (a.values == b.values).all()
    for body, reason in (
        (b"not json", "not_json"),
        (b'cpu state="idle" 1700000060000000000', "missing_values"),
        (b"cpu a=1e39 1700000060000000000", "non_finite"),
        (b"cpu,host=" + b"h" * 64 + b" a=1", "bad_stream"),
    ):
        with pytest.raises(Invalid, match=f"^{reason}"):
            decode_sample(body, 0, LIM)


_LINE_ALPHABET = st.sampled_from(list('cpu,host=w1 a=1.5i"\\\\ tTfu-e9\n{}[]:'))


@given(
    st.binary(max_size=80)
    | st.text(_LINE_ALPHABET, max_size=60).map(str.encode)
    | st.integers().map(lambda n: b"cpu a=1 %d" % n)
    | st.integers().map(lambda n: b"cpu a=%di" % n)
)
@settings(max_examples=400, deadline=None)
def test_any_message_is_a_sample_or_a_reason_never_a_crash(body):
    """Whatever a producer sends to a sample topic, the decoder answers a sample or one of its
    reasons (a dead letter), never another exception that would stop a stage."""
    try:
        s = decode_sample(body, 1_700_000_000_000, LIM, b"k")
    except Invalid as bad:
        assert bad.reason in REASONS
    else:
        assert s.stream and len(s.values) >= 1 and np.isfinite(s.values).all()
