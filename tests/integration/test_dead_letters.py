"""Malformed messages land in the dead-letter topic with their reason; good ones are scored."""

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer

from aemon.core.table import read_windows
from aemon.daemon.codec import F32_CONTENT_TYPE, encode_end, encode_window, f32_headers
from tests.integration.helpers import (
    counter,
    make_topics,
    read_all,
    running,
    settings,
    topics,
    until,
)

LIMIT = 64 * 1024
CUT = 4096  # dead letters are cut to this many bytes


def bad_messages(row: np.ndarray) -> list[tuple[str, bytes, list | None]]:
    values = row.tolist()
    f32 = row.astype("<f4").tobytes()
    nan = row.copy()
    nan[7] = np.nan
    return [
        ("not_json", b'{"stream": "x", "values": [1, 2', None),
        ("not_object", b"[1, 2, 3]", None),
        ("too_large", orjson.dumps({"stream": "x", "values": [0.5] * 20_000}), None),
        ("bad_stream", orjson.dumps({"stream": "", "values": values}), None),  # (none: the key's)
        ("bad_stream", orjson.dumps({"stream": "s" * 300, "values": values}), None),
        ("missing_values", orjson.dumps({"stream": "x"}), None),
        ("bad_end", encode_end("x"), None),  # a window daemon keeps nothing per stream to end
        ("bad_values", orjson.dumps({"stream": "x", "values": ["a"] * 140}), None),
        ("bad_values", orjson.dumps({"stream": "x", "values": 3.0}), None),
        ("bad_values", orjson.dumps({"stream": "x", "values": [str(v) for v in values]}), None),
        ("bad_values", orjson.dumps({"stream": "x", "values": [True] * 140}), None),
        ("wrong_length", orjson.dumps({"stream": "x", "values": values[:-1]}), None),
        ("non_finite", orjson.dumps({"stream": "x", "values": [1e39] * 140}), None),
        ("bad_seq", orjson.dumps({"stream": "x", "seq": -3, "values": values}), None),
        ("bad_ts", orjson.dumps({"stream": "x", "ts": "noon", "values": values}), None),
        ("bad_f32", f32, [("content-type", F32_CONTENT_TYPE), ("stream", b"x"), ("seq", b"7th")]),
        ("wrong_length", f32[:-4], f32_headers("x", 1)),
        ("non_finite", nan.astype("<f4").tobytes(), f32_headers("x", 2)),
        ("unknown_content_type", b"1,2,3", [("content-type", b"text/csv")]),
    ]


async def test_each_kind_of_bad_message_is_dead_lettered_and_scoring_goes_on(bootstrap, ecg):
    art, holdout = ecg
    rows = read_windows(holdout).values[:40]
    bad = bad_messages(rows[0])
    t = topics(2)
    await make_topics(bootstrap, t)
    s = settings(bootstrap, art, t, max_message_bytes=LIMIT, dlq_max_bytes=CUT)
    async with running(s) as svc:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for i, row in enumerate(rows):
                await producer.send_and_wait(
                    t["input_topic"], encode_window(f"s{i % 4}", i, row), key=f"s{i % 4}".encode()
                )
                if i < len(bad):
                    reason, value, headers = bad[i]
                    await producer.send_and_wait(
                        t["input_topic"], value, key=b"bad", headers=headers
                    )
        finally:
            await producer.stop()
        await until(
            lambda: (
                counter(svc, "aemon_windows_scored_total") >= len(rows)
                and sum(counter(svc, "aemon_invalid_messages_total", reason=r) for r, _, _ in bad)
                >= len(bad)
            ),
            60,
            lambda: (
                f"scored {counter(svc, 'aemon_windows_scored_total')}, invalid "
                + str(
                    {r: counter(svc, "aemon_invalid_messages_total", reason=r) for r, _, _ in bad}
                )
            ),
        )
        assert counter(svc, "aemon_windows_scored_total") == len(rows)
        for reason in {r for r, _, _ in bad}:
            expected = sum(1 for r, _, _ in bad if r == reason)
            assert counter(svc, "aemon_invalid_messages_total", reason=reason) == expected, reason
        assert svc.ready()

    dead = await read_all(bootstrap, t["dlq_topic"])
    assert len(dead) == len(bad)
    by_value = {r.value: dict(r.headers) for r in dead}
    for reason, value, headers in bad:
        h = by_value[value[:CUT]]  # the original bytes, cut to dlq_max_bytes
        if len(value) > CUT:
            assert int(h["truncated_from"]) == len(value)
        else:
            assert "truncated_from" not in h
        assert h["reason"].decode() == reason
        assert h["error"].decode().startswith(reason)
        assert h["source_topic"].decode() == t["input_topic"]
        assert int(h["source_offset"]) >= 0 and int(h["source_partition"]) in (0, 1)
        for k, v in headers or []:
            assert h[k] == v
