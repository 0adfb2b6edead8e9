"""Metrics as the agents people run write them to Kafka, through the real broker: Telegraf's
Kafka output (``data_format = "influx"``, its default, or ``"json"``; keyed by ``routing_tag =
"host"``) and Prometheus' remote write through prometheus-kafka-adapter; recorded, trained and
served with no converter between them and aemon, the daemon deciding exactly as offline
scoring. And Prometheus' own history of those series, read from a real Prometheus as the
adapter would have sent it."""

from __future__ import annotations

import asyncio
import math
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime

import numpy as np
import orjson
import pandas as pd
import pytest

import aemon
from aemon.replay import produce
from aemon.tools.benchmark import same_events
from aemon.tools.broker import free_port
from aemon.training.datasets.samples import read_samples
from tests.integration.helpers import (
    counter,
    make_topics,
    read_all,
    running,
    settings,
    topics,
    until,
)
from tests.integration.test_record import record
from tests.integration.tools import ensure

HOSTS = ("web-1", "web-2")
N, TRAIN = 700, 400  # samples a series, the first TRAIN are history
CPU = "cpu,cpu=cpu-total,host=web-1"  # the series key InfluxDB would give it
BCRYPT_SECRET = "$2b$04$hG7jOkLNamwJAUO2oRm0i.0Om6uZKIcAjADkRG9hV0/8hn3BA1sQm"  # of "secret"


def influx(metric: dict) -> bytes:
    """``metric`` as Telegraf's ``influx`` serializer writes it: tags in key order, integers
    with ``i``, strings quoted, nanoseconds."""
    tags = "".join(f",{k}={v}" for k, v in sorted(metric["tags"].items()))
    fields = ",".join(
        f"{k}={v}i" if isinstance(v, int) else f'{k}="{v}"' if isinstance(v, str) else f"{k}={v!r}"
        for k, v in metric["fields"].items()
    )
    return f"{metric['name']}{tags} {fields} {metric['timestamp'] * 10**9}\n".encode()


def metrics(i: int, fmt: str = "json") -> list[tuple[bytes, bytes, None]]:
    """Sample ``i`` (a minute apart) of each host's ``cpu`` and ``mem``, as Telegraf writes
    them in ``fmt``; web-1's CPU is busy from sample 560 to 600."""
    out = []
    for k, host in enumerate(HOSTS):
        busy = 40.0 if host == "web-1" and 560 <= i < 600 else 0.0
        user = 20 + 5 * math.sin(i / 15 + k) + busy + (i * 7919 % 13) / 10
        cpu = {
            "fields": {
                "usage_user": user,
                "usage_system": 5 + (i % 5) / 4,
                "usage_idle": 75 - user,
            },
            "name": "cpu",
            "tags": {"host": host, "cpu": "cpu-total"},
            "timestamp": 1_700_000_000 + 60 * i,
        }
        mem = {
            "fields": {
                "used_percent": 50 + 3 * math.cos(i / 20 + k) + (i * 104729 % 11) / 10,
                "available": 8_000_000_000 - 1_000_000 * (i % 17),  # bytes: 10^8 beside percents
                "uptime_format": "3 days, 4:05",  # text: no metric, left out
            },
            "name": "mem",
            "tags": {"host": host},
            "timestamp": 1_700_000_000 + 60 * i,
        }
        encode = orjson.dumps if fmt == "json" else influx
        out += [(host.encode(), encode(m), None) for m in (cpu, mem)]
    return out


async def record_train_serve(bootstrap, tmp_path, messages) -> tuple:
    """The agent's first TRAIN samples on a topic, recorded with ``aemon record`` and trained on;
    the rest on another topic, served by a daemon and recorded again: (the history read back,
    the events offline scoring of the recorded rest decides, the daemon's events), the two
    checked equal."""
    history, live = topics(2), topics(2)
    await make_topics(bootstrap, history)
    await make_topics(bootstrap, live)

    async def recorded(topic: str, csv) -> None:
        rc, _, err = await record(
            "--topic", topic, "--bootstrap-servers", bootstrap, "--output", str(csv)
        )
        assert rc == 0, err

    old = [m for i in range(TRAIN) for m in messages(i)]
    await produce(bootstrap, history["input_topic"], old, total=len(old), progress=False)
    await recorded(history["input_topic"], tmp_path / "history.csv")
    models = tmp_path / "models"
    aemon.fit_series(tmp_path / "history.csv", epochs=10, progress=False).save(models)
    new = [m for i in range(TRAIN, N) for m in messages(i)]
    async with running(settings(bootstrap, models, live)) as svc:
        await produce(bootstrap, live["input_topic"], new, total=len(new), progress=False)
        await recorded(live["input_topic"], tmp_path / "rest.csv")  # as offline scoring reads it
        offline = aemon.load(models, device="cpu").timeline(read_samples(tmp_path / "rest.csv"))
        await until(lambda: svc.totals.windows >= len(offline), 60, "every window decided")
        assert counter(svc, "aemon_invalid_messages_total", reason="missing_values") == 0
    daemon = [orjson.loads(r.value) for r in await read_all(bootstrap, live["alerts_topic"])]
    assert same_events(offline.events, daemon) == [] and len(daemon) == len(offline.events)
    return read_samples(tmp_path / "history.csv"), daemon


def opened_while_busy(events: list[dict], stream: str) -> list[dict]:
    """The events of ``stream`` that opened while its incident (samples 560-600) lasted."""
    return [
        e
        for e in events
        if e["state"] == "open"
        and e["stream"] == stream
        and 560 <= (e["start_ts"] - 1_700_000_000) / 60 < 600
    ]


@pytest.mark.parametrize("fmt", ["influx", "json"])
async def test_telegraf_metrics_are_recorded_trained_and_decided_as_offline(
    bootstrap, tmp_path, fmt
):
    got, daemon = await record_train_serve(bootstrap, tmp_path, lambda i: metrics(i, fmt))
    assert sorted(got.streams()) == sorted(
        f"{m},{tags}host={h}" for m, tags in (("cpu", "cpu=cpu-total,"), ("mem", "")) for h in HOSTS
    )
    assert got.channels == ["usage_user", "usage_system", "usage_idle", "used_percent", "available"]
    rows = got.rows_of(CPU)
    assert len(rows) == TRAIN and (got.ts[rows] == 1_700_000_000 + 60 * np.arange(TRAIN)).all()
    busy = opened_while_busy(daemon, CPU)
    assert len(busy) == 1  # the busy CPU opens one event, named by its series key
    assert busy[0]["top_metrics"][0]["metric"] in ("usage_user", "usage_idle")


def prometheus(i: int) -> list[tuple[bytes, bytes, None]]:
    """Sample ``i`` (a minute apart) of each host's ``node_load1`` as prometheus-kafka-adapter
    writes it (value as text, RFC 3339 time); web-1's load climbs from sample 560 to 600."""
    out = []
    for k, host in enumerate(HOSTS):
        busy = 6.0 if host == "web-1" and 560 <= i < 600 else 0.0
        load = 1 + 0.3 * math.sin(i / 15 + k) + busy + (i * 7919 % 13) / 50
        labels = {"__name__": "node_load1", "instance": f"{host}:9100", "job": "node"}
        when = datetime.fromtimestamp(1_700_000_000 + 60 * i, UTC)
        doc = {
            "timestamp": f"{when:%Y-%m-%dT%H:%M:%SZ}",
            "value": repr(load),
            "name": "node_load1",
            "labels": labels,
        }
        out.append((host.encode(), orjson.dumps(doc), None))
    return out


async def test_prometheus_remote_write_samples_are_recorded_trained_and_decided_as_offline(
    bootstrap, tmp_path
):
    got, daemon = await record_train_serve(bootstrap, tmp_path, prometheus)
    load = 'node_load1{instance="web-1:9100",job="node"}'
    assert sorted(got.streams()) == sorted(load.replace("web-1", h) for h in HOSTS)
    assert got.channels == ["node_load1"] and len(got.rows_of(load)) == TRAIN
    assert len(opened_while_busy(daemon, load)) == 1  # the load's climb opens one event


def openmetrics(docs: list[dict]) -> str:
    """The adapter's samples as OpenMetrics text (``promtool tsdb create-blocks-from``'s input),
    and beside them a series of another metric, which the selector must leave out."""
    lines = ["# TYPE node_load1 gauge"]
    for d in docs:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(d["labels"].items()) if k != "__name__")
        ts = datetime.fromisoformat(d["timestamp"]).timestamp()
        lines.append(f"node_load1{{{labels}}} {d['value']} {ts:.0f}")
    lines.append("# TYPE node_load5 gauge")
    lines += [f'node_load5{{job="node"}} 1 {1_700_000_000 + 60 * i}' for i in range(TRAIN)]
    return "\n".join([*lines, "# EOF", ""])


async def test_prometheus_history_is_recorded_as_the_adapter_would_have_sent_it(
    bootstrap, tmp_path
):
    """The same samples (one of them NaN) in a real Prometheus, written as backfilling writes
    them, and on a topic as prometheus-kafka-adapter sends them: ``aemon record --prometheus``
    writes exactly the CSV ``aemon record --topic`` writes and leaves out what it leaves out,
    reading hour by hour with each hour's edge on a sample, from a Prometheus that asks for a
    password (basic authentication) and has an external label (which remote write adds to
    what the adapter sends); ``aemon.read_prometheus`` gives the same rows."""
    sent = [m for i in range(TRAIN) for m in prometheus(i)]
    docs = [orjson.loads(value) for _, value, _ in sent]
    docs[201]["value"] = "NaN"
    (tmp_path / "history.om").write_text(openmetrics(docs))
    for doc in docs:  # remote write adds the server's external label, the query API does not
        doc["labels"]["cluster"] = "lab"
    sent = [(key, orjson.dumps(doc), None) for (key, _, _), doc in zip(sent, docs, strict=True)]
    backfill = [ensure("promtool", "prometheus"), "tsdb", "create-blocks-from", "openmetrics"]
    made = subprocess.run(
        [*backfill, str(tmp_path / "history.om"), str(tmp_path / "tsdb")], capture_output=True
    )
    assert made.returncode == 0, made.stderr
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1m, external_labels: {cluster: lab}}\n"
    )
    (tmp_path / "web.yml").write_text(f"basic_auth_users: {{aemon: '{BCRYPT_SECRET}'}}\n")
    port = free_port()
    server = subprocess.Popen(
        [
            ensure("prometheus", "prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--web.config.file={tmp_path / 'web.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            "--storage.tsdb.retention.time=100y",  # the samples are from 2023
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return urllib.request.urlopen(f"{url}/-/ready", timeout=5).status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking who we are
        except OSError:
            return False

    try:
        await until(ready, 60, "Prometheus to load its blocks")
        first, end = 1_700_000_000, 1_700_000_000 + 60 * TRAIN
        read = ("--query", 'node_load1{job="node"}', "--since", str(first - 60), "--until")
        read += (str(end), "--output", str(tmp_path / "p.csv"), "--json")
        rc, _, err = await record("--prometheus", url, *read)
        assert rc == 2 and err == f"aemon: error: Prometheus at {url}: HTTP 401 Unauthorized\n"
        signed = f"http://aemon:secret@127.0.0.1:{port}"
        rc, out, err = await record("--prometheus", signed, "--header", "X-Scope-OrgID: a", *read)
        assert rc == 0, err
        assert "secret" not in out + err  # the password is never shown
        frame = await asyncio.to_thread(
            aemon.read_prometheus, signed, "node_load1", since=str(first - 60), until=str(end)
        )
    finally:
        server.terminate()
        server.wait(30)
    t = topics(2)
    await make_topics(bootstrap, t)
    await produce(bootstrap, t["input_topic"], sent, total=len(sent), progress=False)
    rc, kafka, err = await record(
        *("--topic", t["input_topic"], "--bootstrap-servers", bootstrap, "--json"),
        *("--output", str(tmp_path / "k.csv")),
    )
    assert rc == 0, err
    # the same rows, each stream's in the same order (the topic's streams come in the order
    # its partitions are read)
    history, recorded = (
        pd.read_csv(tmp_path / f"{name}.csv").sort_values(
            "stream", kind="stable", ignore_index=True
        )
        for name in ("p", "k")
    )
    pd.testing.assert_frame_equal(history, recorded)
    pd.testing.assert_frame_equal(frame, pd.read_csv(tmp_path / "p.csv"), check_dtype=False)
    assert len(history) == 2 * TRAIN - 1
    got, want = orjson.loads(out), orjson.loads(kafka)
    assert got["external_labels"] == {"cluster": "lab"}
    assert 'node_load1{cluster="lab",instance="web-1:9100",job="node"}' in got["streams"]
    assert got["samples"] == want["samples"] == 2 * TRAIN - 1
    assert got["left_out"] == want["left_out"] == {"non_finite": 1}
    assert got["streams"] == want["streams"]
