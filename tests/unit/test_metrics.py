import asyncio
import urllib.request

import numpy as np
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from aemon.daemon.health import Health
from aemon.daemon.metrics import ERROR_BUCKETS, BulkHistogram, Metrics, serve_http


def samples(text: str, name: str) -> dict:
    fam = next(f for f in text_string_to_metric_families(text) if f.name == name)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}


def test_bulk_histogram_matches_prometheus_client_histogram():
    from prometheus_client import generate_latest

    values = np.r_[np.random.default_rng(0).lognormal(-3, 2, 5000), ERROR_BUCKETS[:5], 1e9]
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("h", "x", buckets=ERROR_BUCKETS, registry=r1)
    for v in values:
        ref.observe(float(v))
    bulk = BulkHistogram("h", "x", ERROR_BUCKETS, r2)
    bulk.observe_many(values[:100])
    bulk.observe_many(values[100:])
    a = {
        k: v for k, v in samples(generate_latest(r1).decode(), "h").items() if "created" not in k[0]
    }
    b = samples(generate_latest(r2).decode(), "h")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == __import__("pytest").approx(b[k], rel=1e-12), k


def test_every_named_metric_is_exported():
    m = Metrics()
    m.set_models([("ecg", "abc", "dense", 0.5), ("cpu-7", "x1", "dense", 0.2)])
    m.set_models([("ecg", "def", "dense", 0.7)])
    text = m.exposition().decode()
    for name in (
        "aemon_windows_scored_total",
        "aemon_anomalies_total",
        "aemon_alerts_published_total",
        "aemon_invalid_messages_total",
        "aemon_reconstruction_error_bucket",
        "aemon_batch_size_bucket",
        "aemon_scoring_duration_seconds_bucket",
        "aemon_end_to_end_latency_seconds_bucket",
        "aemon_threshold",
        "aemon_last_batch_timestamp_seconds",
        "aemon_events_opened_total",
        "aemon_events_resolved_total",
        "aemon_events_open",
        "aemon_raised_threshold_streams",
        "aemon_warmup_windows_total",
    ):
        assert name in text, name
    assert 'aemon_model_info{family="dense",model="ecg",version="def"} 1.0' in text
    assert 'version="abc"' not in text and "cpu-7" not in text  # models gone are gone
    assert 'aemon_threshold{model="ecg"} 0.7' in text


async def test_http_endpoints():
    m = Metrics()
    clock = [0.0]
    health = Health(grace_s=5, clock=lambda: clock[0])
    server = await serve_http(m, health, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def get(path):
        try:
            r = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
            return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    try:
        assert (await asyncio.to_thread(get, "/healthz"))[0] == 200
        assert await asyncio.to_thread(get, "/readyz") == (503, b"no partition assigned\n")
        health.assigned = True
        assert (await asyncio.to_thread(get, "/readyz")) == (200, b"ready\n")
        health.broker_down()
        clock[0] = 4.9  # within the grace: still ready
        assert (await asyncio.to_thread(get, "/readyz"))[0] == 200
        clock[0] = 6.0
        assert await asyncio.to_thread(get, "/readyz") == (503, b"broker unreachable for 6 s\n")
        assert health.broker_up() == 6.0 and health.outages == 1
        health.failed = "score stage: RuntimeError: boom"
        status, body = await asyncio.to_thread(get, "/healthz")
        assert (status, body) == (500, b"score stage: RuntimeError: boom\n")
        assert (await asyncio.to_thread(get, "/readyz"))[0] == 503
        status, body = await asyncio.to_thread(get, "/metrics")
        assert status == 200 and b"aemon_windows_scored_total" in body
        assert (await asyncio.to_thread(get, "/nope"))[0] == 404
    finally:
        server.close()
        await server.wait_closed()
