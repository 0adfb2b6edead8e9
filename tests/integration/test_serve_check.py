"""``aemon serve --check``: what start-up would find, against the real broker, without joining
the group, sending anything or creating a topic."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import aemon
from aemon.tools.broker import create_topics
from tests.conftest import samples_csv
from tests.integration.helpers import make_topics, topics

AEMON = str(Path(sys.executable).parent / "aemon")


@pytest.fixture(scope="module")
def learning_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("check")
    series = aemon.fit_series(samples_csv(root / "s.csv", n=200), epochs=1, members=1)
    return series.save(root / "models")


async def existing(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def check(bootstrap: str, models: Path, t: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [AEMON, "serve", "--check", "--model", str(models), "--bootstrap-servers", bootstrap]
    for name in ("input_topic", "alerts_topic", "dlq_topic", "learned_topic", "group_id"):
        argv += [f"--{name.replace('_', '-')}", t[name]]
    return subprocess.run(
        [*argv, "--metrics-port", "0"], capture_output=True, text=True, timeout=60
    )


async def test_a_deployment_that_would_serve_says_what_it_found(bootstrap, learning_models):
    t = topics(3)
    await make_topics(bootstrap, t)
    run = check(bootstrap, learning_models, t)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "aemon serve --check: nothing stops the daemon"
    assert f"1 series model in {learning_models} (8 samples of 1 metric); reads samples" in lines[1]
    input_line = (
        f"  input    {t['input_topic']} on {bootstrap}, 3 partition(s), group {t['group_id']}"
    )
    assert input_line in lines
    assert f"  learned  {t['learned_topic']}, 3 partition(s), cleanup.policy compact" in lines
    assert "  ending   a stream that stops holds its partition's commit until 'aemon end'" in (
        run.stdout
    )


async def test_what_would_stop_it_or_leave_it_short_and_nothing_created(bootstrap, learning_models):
    """No input topic: exit 2, one line. Outputs missing and a learned topic of fewer partitions
    than the input: warnings, exit 0. The check creates none of the topics it found missing."""
    t = topics(3)
    run = check(bootstrap, learning_models, t)
    assert run.returncode == 2
    said = run.stderr.splitlines()
    assert said[-1] == (
        f"aemon: error: input_topic: {t['input_topic']} does not exist on {bootstrap}: the "
        "daemon would have nothing to read"
    )
    assert sum("does not exist" in line for line in said) == 4  # input, alerts, dlq, learned
    assert said[0].endswith(  # each missing topic's line ends with the command that creates it
        f"create it: kafka-topics.sh --bootstrap-server {bootstrap} --create --topic "
        f"{t['alerts_topic']} --partitions PARTITIONS"
    )
    assert said[2].endswith(
        f"--create --topic {t['learned_topic']} --partitions PARTITIONS "
        "--config cleanup.policy=compact"
    )
    named = {t[k] for k in ("input_topic", "alerts_topic", "dlq_topic", "learned_topic")}
    assert not named & await existing(bootstrap)
    await create_topics(bootstrap, {t["input_topic"]: 3, t["learned_topic"]: 1})
    run = check(bootstrap, learning_models, t)
    assert run.returncode == 0, run.stderr
    warned = run.stderr.splitlines()
    assert [w.split(":")[2].strip() for w in warned] == [
        "alerts_topic",
        "dlq_topic",
        "learned_topic",
    ]
    assert "has 1 partition(s), fewer than the input's 3" in warned[2]
    assert f"outputs  {t['alerts_topic']} (missing), {t['dlq_topic']} (missing)" in run.stdout


async def test_topics_that_would_refuse_what_the_daemon_sends_are_named_with_their_mending(
    bootstrap, tmp_path
):
    """A model whose updates outgrow Kafka's default record limit (38 metrics, three members):
    the learned topic's create command makes room for them; a learned topic that is not
    compacted and takes small records, and an alerts topic that takes small records, are one
    warning each with the command that mends it (the embedded broker reports what a topic was
    created with, as Apache Kafka reports every setting)."""
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(300)[:, None] / 6 + np.arange(38)) + 0.05 * rng.standard_normal((300, 38))
    lines = ["timestamp,stream,seq," + ",".join(f"m{i}" for i in range(38))]
    lines += [f"{1_700_000_000 + 60 * i},w,{i}," + ",".join(map(str, x[i])) for i in range(300)]
    (tmp_path / "wide.csv").write_text("\n".join(lines) + "\n")
    models = aemon.fit_series(tmp_path / "wide.csv", epochs=1, members=3).save(tmp_path / "m")
    weights = (models / "w" / "weights.safetensors").stat().st_size
    t = topics(2)
    await create_topics(bootstrap, {t["input_topic"]: 2, t["alerts_topic"]: 1, t["dlq_topic"]: 1})
    run = check(bootstrap, models, t)
    assert run.returncode == 0, run.stderr
    (line,) = run.stderr.splitlines()
    room = re.search(
        rf"records up to ([\d,]+) bytes \(the updates of stream 'w'\): kafka-topics.sh "
        rf"--bootstrap-server \S+ --create --topic {t['learned_topic']} --partitions 2 "
        r"--config cleanup.policy=compact --config max.message.bytes=(\d+)$",
        line,
    )
    assert room, line
    record, limit = int(room[1].replace(",", "")), int(room[2])
    assert 1 << 20 < weights < record < weights + 4096  # the weights, then keys and framing
    assert limit % (1 << 20) == 0 and record <= limit < record + (1 << 20)

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        small = {"max.message.bytes": "40000"}
        deleting = {**small, "cleanup.policy": "delete"}
        await admin.create_topics([NewTopic(t["learned_topic"], 2, 1, topic_configs=deleting)])
        t["alerts_topic"] += "-small"
        await admin.create_topics([NewTopic(t["alerts_topic"], 1, 1, topic_configs=small)])
    finally:
        await admin.close()
    run = check(bootstrap, models, t)
    assert run.returncode == 0, run.stderr
    warned = run.stderr.splitlines()
    mend = f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics"
    assert [w.split(":")[2].strip() for w in warned] == ["alerts_topic", *["learned_topic"] * 2]
    assert "takes record batches of at most 40,000 bytes (max.message.bytes)" in warned[0]
    assert "a burst of alerts and events would be refused, which stops the daemon" in warned[0]
    assert warned[0].endswith(
        f"{mend} --entity-name {t['alerts_topic']} --add-config max.message.bytes=1048576"
    )
    assert "is not compacted (cleanup.policy delete)" in warned[1]
    assert warned[1].endswith(
        f"{mend} --entity-name {t['learned_topic']} --add-config cleanup.policy=compact"
    )
    assert f"less than the updates of stream 'w' ({record:,} bytes)" in warned[2]
    assert warned[2].endswith(f"--add-config max.message.bytes={limit}")
    assert f"  learned  {t['learned_topic']}, 2 partition(s), cleanup.policy delete" in (
        run.stdout.splitlines()
    )
