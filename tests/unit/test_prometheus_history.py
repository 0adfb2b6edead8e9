"""Prometheus' history read as prometheus-kafka-adapter's messages, against a fake query API
(injected): every raw sample once, whatever the server's range boundaries, in queries it
accepts. A real Prometheus answers in tests/integration/test_agents.py."""

from __future__ import annotations

import re

import orjson
import pytest

from aemon.core.errors import ConfigError, DataError
from aemon.daemon.codec import Limits, decode_sample
from aemon.prometheus_history import (
    Refused,
    adapter_message,
    external_labels,
    messages,
    shown,
    span,
)

T0 = 1_700_000_000.0
NOW = 1_800_000_000.0


def test_span_takes_durations_times_and_epoch_seconds():
    assert span("15d", "now", NOW) == (NOW - 15 * 86400, NOW)
    assert span("1h30m", "1700003600", NOW) == (T0 - 1800, T0 + 3600)
    assert span("2023-11-14T22:13:20Z", "2023-11-14T23:13:20", NOW) == (T0, T0 + 3600)
    wrong = [("yesterday", "now", "--since"), ("1d", "soon", "--until"), ("nan", "now", "--since")]
    wrong += [("1d", "1700000000000", "--until"), ("inf", "now", "--since")]  # ms: the year 55,000
    for since, until, flag in wrong:
        with pytest.raises(ConfigError, match=flag):
            span(since, until, NOW)
    with pytest.raises(ConfigError, match="not before"):
        span("1800000001", "now", NOW)


def test_a_sample_is_the_adapters_message_the_daemon_decodes():
    labels = {"__name__": "node_load1", "job": "node", "instance": "web-1:9100"}
    sample = decode_sample(adapter_message(labels, 1_700_000_059_999, "0.25"), 0, Limits())
    assert sample.stream == 'node_load1{instance="web-1:9100",job="node"}'
    assert sample.names == ("node_load1",) and list(sample.values) == [0.25]
    assert sample.ts == T0 + 59  # whole seconds, as the adapter writes its RFC 3339 time


class FakePrometheus:
    """Samples every 60 s from T0 of two series; answers ``NAME[Dms]`` at ``time`` with the
    samples in ``[time - D, time]`` (Prometheus 2) or ``(time - D, time]`` (3); refuses ranges
    longer than ``most_ms``."""

    def __init__(
        self, closed_left: bool, most_ms: int = 10**12, refusal: tuple[str, str] = ("", "")
    ) -> None:
        self.closed_left, self.most_ms, self.refusal = closed_left, most_ms, refusal
        self.queries: list[int] = []
        self.series = [
            ({"__name__": "load", "host": h}, [(T0 + 60 * i, f"{i}.5") for i in range(300)])
            for h in ("a", "b")
        ]

    def __call__(self, path: str, params: dict[str, str]) -> dict:
        assert path == "/api/v1/query"
        selector = re.fullmatch(r"load\[(\d+)ms\]", params["query"])
        if selector is None:
            raise Refused("bad_data", "parse error")
        ms = selector[1]
        self.queries.append(int(ms))
        if int(ms) > self.most_ms:
            raise Refused(*self.refusal)
        at = float(params["time"])
        since = at - int(ms) / 1000
        inside = (lambda t: since <= t <= at) if self.closed_left else lambda t: since < t <= at
        result = [
            {"metric": labels, "values": [[t, v] for t, v in values if inside(t)]}
            for labels, values in self.series
        ]
        return {"resultType": "matrix", "result": [r for r in result if r["values"]]}


def by_host(got: list[tuple[bytes, int]]) -> dict[str, list[int]]:
    """Each series' sample times (ms), in the order read."""
    out: dict[str, list[int]] = {}
    for message, ms in got:
        out.setdefault(orjson.loads(message)["labels"]["host"], []).append(ms)
    return out


@pytest.mark.parametrize("closed_left", [True, False], ids=["prometheus-2", "prometheus-3"])
def test_every_sample_once_whatever_the_ranges_boundaries(closed_left):
    fake = FakePrometheus(closed_left)
    read: list[float] = []
    # from one step before the first sample: each hour's edge falls on a sample
    got = list(messages(fake, "load", T0 - 60, T0 + 60 * 299, progress=read.append))
    every = [round((T0 + 60 * i) * 1000) for i in range(300)]
    assert by_host(got) == {"a": every, "b": every}
    assert sum(read) == 60 * 300 and fake.queries == [3_600_000, 7_200_000, 7_200_000]
    later = list(messages(fake, "load", T0, T0 + 600))  # after --since, up to --until
    assert by_host(later)["a"] == every[1:11]


@pytest.mark.parametrize(
    "refusal",
    [
        ("execution", "query processing would load too many samples into memory"),
        ("timeout", "query timed out in expression evaluation"),
    ],
    ids=["too-many-samples", "timeout"],
)
def test_a_server_refusing_so_many_samples_is_asked_for_less(refusal):
    fake = FakePrometheus(True, most_ms=900_000, refusal=refusal)  # 15 minutes a query at most
    read: list[float] = []
    got = list(messages(fake, "load", T0 - 60, T0 + 60 * 299, progress=read.append))
    assert by_host(got)["b"] == [round((T0 + 60 * i) * 1000) for i in range(300)]
    assert sum(read) == 60 * 300
    assert fake.queries[:3] == [3_600_000, 1_800_000, 900_000]
    assert set(fake.queries[3:]) == {900_000}  # never asked for more again


def test_each_query_asks_for_about_as_many_samples():
    fake = FakePrometheus(closed_left=True)  # 2 samples a minute, 120 an hour
    read: list[float] = []
    got = list(messages(fake, "load", T0 - 60, T0 + 60 * 299, read.append, per_query=30))
    assert by_host(got)["a"] == [round((T0 + 60 * i) * 1000) for i in range(300)]
    assert fake.queries[:3] == [3_600_000, 1_800_000, 900_000]  # 120, 60 then 30 samples
    assert set(fake.queries[3:-1]) == {900_000} and sum(read) == 60 * 300


def test_a_selector_prometheus_refuses_is_one_line_naming_it():
    with pytest.raises(DataError, match=r"refused 'rate\(x\)'.*give a series selector"):
        list(messages(FakePrometheus(True), "rate(x)", T0, T0 + 60))


def test_a_password_in_the_url_is_never_shown():
    assert shown("https://me:s3cr3t@prom.example:9090/x") == "https://me@prom.example:9090/x"
    assert shown("http://127.0.0.1:9090") == "http://127.0.0.1:9090"


def test_external_labels_come_from_the_servers_configuration_and_never_replace_a_series_own():
    config = "global:\n  scrape_interval: 1m\n  external_labels:\n    host: edge\n    dc: '1'\n"
    fake = FakePrometheus(closed_left=True)

    def fetch(path: str, params: dict[str, str]) -> dict:
        return {"yaml": config} if path == "/api/v1/status/config" else fake(path, params)

    extra = external_labels(fetch)
    assert extra == {"host": "edge", "dc": "1"}
    got = list(messages(fetch, "load", T0, T0 + 60, extra=extra))
    assert [orjson.loads(m)["labels"] for m, _ in got] == [
        {"__name__": "load", "host": "a", "dc": "1"},  # its own host, the server's dc
        {"__name__": "load", "host": "b", "dc": "1"},
    ]

    def thanos(path: str, params: dict[str, str]) -> dict:
        raise DataError("Prometheus at http://thanos: HTTP 404 Not Found")

    assert external_labels(thanos) == {}
