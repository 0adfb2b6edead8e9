"""``aemon notify``: events on the alerts topic fire and resolve alerts in a real Alertmanager,
through the real broker and the installed command; a notifier killed while an event is open
fires it again when it comes back (its commit never passes the event's opening)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from aemon.daemon import alerts
from aemon.replay import produce
from aemon.tools.broker import create_topics, free_port
from tests.integration.helpers import until
from tests.integration.tools import ensure

AEMON = str(Path(sys.executable).parent / "aemon")


@pytest.fixture
def alertmanager(tmp_path):
    binary = ensure("prometheus-alertmanager", "prometheus-alertmanager")
    (tmp_path / "am.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "am.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{url}/-/ready"):
            assert time.monotonic() < deadline and server.poll() is None, "Alertmanager start"
            time.sleep(0.1)  # polling a process's start-up: no event to wait on
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def active(url: str) -> dict[str, dict]:
    """Alertmanager's active alerts by event_id (or alertname/stream for window alerts)."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as r:
        found = json.loads(r.read())
    out = {}
    for a in found:
        key = a["labels"].get("event_id") or f"{a['labels']['alertname']}/{a['labels']['stream']}"
        out[key] = a
    return out


def event(event_id: str, state: str, start: float, **more: object) -> tuple[bytes, bytes, None]:
    doc = {
        "event_id": event_id,
        "state": state,
        "stream": "pump-1",
        "start_seq": 10,
        "start_ts": start,
        "windows_above": 3,
        "peak_score": 0.52,
        "model": "pump-1",
        "model_version": "v1",
        "top_metrics": [{"metric": "pressure", "share": 0.41}],
        **more,
    }
    return b"pump-1", alerts.event_message(doc), None


def notifier(bootstrap: str, topic: str, group: str, url: str, port: int) -> subprocess.Popen:
    argv = [AEMON, "notify", "--alertmanager", url, "--bootstrap-servers", bootstrap]
    argv += ["--alerts-topic", topic, "--group-id", group, "--resend-s", "1", "--label", "team=x"]
    argv += ["--metrics-port", str(port)]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def sample(port: int, name: str) -> float:
    """A series of the notifier's /metrics (0 where absent)."""
    for line in probe(port, "/metrics")[1].splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return await c.committed(TopicPartition(topic, 0))
    finally:
        await c.stop()


async def test_events_fire_and_resolve_in_alertmanager_and_survive_a_kill(bootstrap, alertmanager):
    topic, group = f"alerts-{time.monotonic_ns()}", f"notify-{time.monotonic_ns()}"
    await create_topics(bootstrap, {topic: 1})
    now = time.time()
    window = alerts.alert(
        model="ecg", model_version="v9", stream="beat-3", seq=4, ts=now, score=0.9,
        threshold=0.3, top=[],
    )  # fmt: skip
    first = [event("e1", "open", now - 60), (b"beat-3", window, None)]
    await produce(bootstrap, topic, first, total=2, progress=False)
    port = free_port()
    run = notifier(bootstrap, topic, group, alertmanager, port)
    try:
        await until(lambda: {"e1", "AemonWindowAnomaly/beat-3"} <= set(active(alertmanager)), 30,
                    "e1 and the window alert firing")  # fmt: skip
        e1 = active(alertmanager)["e1"]
        assert e1["labels"] == {
            "alertname": "AemonAnomaly", "severity": "warning", "stream": "pump-1",
            "model": "pump-1", "event_id": "e1", "team": "x",
        }  # fmt: skip
        assert "moved most: pressure 41%" in e1["annotations"]["description"]
        assert e1["status"]["state"] == "active"
        resolved = event("e1", "resolved", now - 60, resolved_ts=now - 1)
        await produce(
            bootstrap, topic, [resolved, event("e2", "open", now)], total=2, progress=False
        )
        await until(lambda: set(active(alertmanager)) & {"e1", "e2"} == {"e2"}, 30,
                    "e1 resolved and e2 firing")  # fmt: skip
        deadline = time.monotonic() + 30  # the commit after e2's send: e2's opening, held
        while await committed(bootstrap, group, topic) != 3:
            assert time.monotonic() < deadline, "the commit held at e2's opening (offset 3)"
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        await until(lambda: "e2" not in active(alertmanager), 30,
                    "Alertmanager resolving e2 once it is no longer sent")  # fmt: skip
        run = notifier(bootstrap, topic, group, alertmanager, port)
        await until(lambda: "e2" in active(alertmanager), 30, "e2 fired again after the restart")
        assert "e1" not in active(alertmanager)
        assert probe(port, "/readyz") == (200, "ready\n") and probe(port, "/healthz")[0] == 200
        assert sample(port, "aemon_notify_open_events") == 1
        assert sample(port, "aemon_notify_alerts_sent_total") >= 1
        assert sample(port, "aemon_notify_send_failures_total") == 0
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert "aemon notify: stopped; Alertmanager took" in err.splitlines()[-1]


async def test_an_alertmanager_that_takes_nothing_is_counted_and_unready(bootstrap):
    topic, group = f"alerts-{time.monotonic_ns()}", f"notify-{time.monotonic_ns()}"
    await create_topics(bootstrap, {topic: 1})
    await produce(bootstrap, topic, [event("e1", "open", time.time())], total=1, progress=False)
    port = free_port()
    run = notifier(bootstrap, topic, group, "http://127.0.0.1:1", port)
    try:
        await until(lambda: sample(port, "aemon_notify_send_failures_total") >= 2, 30,
                    "failed sends counted (and tried again)")  # fmt: skip
        status, says = probe(port, "/readyz")
        assert status == 503 and says.startswith("Alertmanager not taking alerts: ")
        assert sample(port, "aemon_notify_alerts_sent_total") == 0
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert "Alertmanager at http://127.0.0.1:1 did not take 1 alert(s)" in err
