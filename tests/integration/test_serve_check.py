"""``aemon serve --check``: what start-up would find, against the real broker, without joining
the group, sending anything or creating a topic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

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
    assert f"  learned  {t['learned_topic']}, 3 partition(s)" in lines
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
