"""The deploy/prometheus rules under promtool, and a real Prometheus scraping a real daemon."""

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from aemon.replay import replay
from aemon.tools.broker import free_port
from tests.integration.helpers import counter, make_topics, running, settings, topics, until
from tests.integration.tools import ensure

AEMON = str(Path(sys.executable).parent / "aemon")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "aemon.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    return ensure("promtool", "prometheus")


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(promtool, args):
    out = subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_every_alert_has_its_runbook_in_the_readme():
    doc = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    headings = set(re.findall(r"^### (\w+)$", (DEPLOY.parent / "README.md").read_text(), re.M))
    for rule in alerts:
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"README.md#{name.lower()}"
        assert name in headings, f"no '### {name}' runbook in README.md"
    assert {r["alert"] for r in alerts} >= {"AemonDown", "AemonNotifyDown", "AemonNotifyFailing"}


def panel_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]


def api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    doc = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert doc["status"] == "success", doc
    return doc["data"]


async def test_real_prometheus_scrapes_a_live_daemon(promtool, bootstrap, ecg, tmp_path):
    prometheus = ensure("prometheus", "prometheus")
    art, holdout = ecg
    t = topics(2)
    await make_topics(bootstrap, t)
    async with running(settings(bootstrap, art, t)) as svc:
        url = f"http://127.0.0.1:{svc.http_port}/metrics"
        # In a thread: the daemon's HTTP server runs on this very event loop.
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr

        # the notifier beside it, its Alertmanager unreachable (its panel counts failed sends)
        notify_port = free_port()
        argv = [AEMON, "notify", "--alertmanager", "http://127.0.0.1:1", "--resend-s", "1"]
        argv += ["--bootstrap-servers", bootstrap, "--alerts-topic", t["alerts_topic"]]
        argv += ["--group-id", t["group_id"] + "-n", "--metrics-port", str(notify_port)]
        notifier = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        notify_url = f"http://127.0.0.1:{notify_port}/metrics"

        def notify_metrics() -> bytes:
            try:
                return urllib.request.urlopen(notify_url, timeout=5).read()
            except OSError:
                return b""

        await until(lambda: bool(notify_metrics()), 30, "the notifier's /metrics")
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=notify_metrics(), capture_output=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

        shutil.copy(RULES / "alerts.yml", tmp_path / "alerts.yml")
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n"
            "  - job_name: aemon\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{svc.http_port}']}}]\n"
            "  - job_name: aemon-notify\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{notify_port}']}}]\n"
        )
        port = free_port()
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        try:
            feeding = asyncio.create_task(
                replay(holdout, t["input_topic"], bootstrap, rate=100, progress=False)
            )

            def answers(query: str) -> bool:
                try:
                    return bool(api(port, "query", query=query)["result"])
                except OSError:
                    return False

            await until(lambda: counter(svc, "aemon_windows_scored_total") > 300, 60, "replay")
            await until(
                lambda: answers("sum(rate(aemon_windows_scored_total[1m])) > 0"),
                60,
                "Prometheus to see windows being scored",
            )
            await until(lambda: answers("model:aemon_anomaly_ratio:rate5m"), 30, "recording rules")
            await until(  # a rate needs two scrapes: of the notifier too, not only the daemon
                lambda: answers('count_over_time(up{job="aemon-notify"}[1m]) >= 2'),
                30,
                "Prometheus to scrape the notifier twice",
            )
            empty = [
                (title, q)
                for title, q in panel_queries()
                if not api(port, "query", query=q, time=str(time.time()))["result"]
            ]
            assert not empty, f"panels without data: {empty}"
            groups = api(port, "rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            assert len(rules) == 26
            bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            assert not bad, bad
            feeding.cancel()
        finally:
            server.terminate()
            server.wait(10)
            notifier.terminate()
            assert notifier.wait(30) == 0
