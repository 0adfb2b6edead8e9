"""The settings of the topics the daemon writes, against what it sends them.

Kafka refuses a record batch larger than its topic's ``max.message.bytes`` with an error that
retrying cannot mend: on an output topic that stops the daemon (at every restart again), on
the learned-models topic it loses the update (trained again after a restart) or holds a
partition's commit until its anchors are kept. A learned-models topic that is not compacted
keeps every update until its retention deletes it. ``aemon serve --check`` and the daemon's
start say so in one warning each, with the Kafka command that mends it.
"""

from __future__ import annotations

from typing import Any

from aemon.daemon.config import Settings
from aemon.daemon.kafka import BATCH_BYTES, Configs
from aemon.daemon.learning import weights_of
from aemon.daemon.routing import Models

MIB = 1 << 20
KAFKA_DEFAULT_BYTES = 1_048_588  # Apache Kafka's default max.message.bytes
SENT = {"alerts_topic": "alerts and events", "dlq_topic": "dead letters", "scores_topic": "scores"}
# An update's record beside its weights: the stream's name twice (its key, its header) and the
# model's version, the update's number and digest, the header's name and the record's framing.
UPDATE_KEYS_BYTES = 256


def written(s: Settings) -> set[str]:
    """The topics the daemon writes, whose settings matter."""
    return {t for t in (s.alerts_topic, s.dlq_topic, s.scores_topic, s.learned_topic) if t}


def largest_update(models: Models, s: Settings) -> tuple[str, int] | None:
    """The stream of the model that keeps learning with the most weights, and the most bytes
    one of its updates' records takes in the learned-models topic; None when none learns."""
    learning = [(n, models.detectors[i]) for n, i in models.route.items()]
    learning = [(n, d) for n, d in learning if d.learning is not None]
    if not learning:
        return None
    name, det = max(learning, key=lambda nd: sum(p.numel() for p in nd[1].model.parameters()))
    keys = 2 * 4 * s.max_stream_id + UPDATE_KEYS_BYTES  # names of up to 4 UTF-8 bytes a character
    return name, len(weights_of(det.model)) + keys


def learned_bytes(largest: tuple[str, int] | None) -> int:
    """The record batches the learned-models topic must take: the daemon's, or larger updates."""
    return BATCH_BYTES if largest is None else max(BATCH_BYTES, largest[1])


def in_mib(n: int) -> int:
    """``n`` bytes rounded up to whole MiB."""
    return -(-n // MIB) * MIB


def kafka_command(s: Settings, topic: str, partitions: int | str | None, **config: Any) -> str:
    """The Kafka command that creates ``topic`` with ``config`` (``cleanup_policy`` for
    ``cleanup.policy``), or sets ``config`` on it when ``partitions`` is None; with the client
    settings file a secured cluster needs (``CLIENT.properties``: yours)."""
    pairs = [f"{k.replace('_', '.')}={v}" for k, v in config.items()]
    where = f"--bootstrap-server {s.bootstrap_servers}"
    if s.security_protocol != "PLAINTEXT":
        where += " --command-config CLIENT.properties"
    if partitions is None:
        return (
            f"kafka-configs.sh {where} --alter --entity-type topics --entity-name {topic} "
            f"--add-config {','.join(pairs)}"
        )
    settings = "".join(f" --config {pair}" for pair in pairs)
    return f"kafka-topics.sh {where} --create --topic {topic} --partitions {partitions}{settings}"


def _too_small(s: Settings, name: str, configs: Configs, need: int, why: str) -> list[str]:
    """A warning when the topic of setting ``name`` takes record batches of fewer bytes than
    ``need`` (its ``configs`` say so), with ``why`` that matters and the command that mends it."""
    topic = getattr(s, name)
    limit = configs.get(topic, {}).get("max.message.bytes")
    if limit is None or not limit.isdigit() or int(limit) >= need:
        return []
    mend = kafka_command(s, topic, None, max_message_bytes=in_mib(need))
    return [
        f"{name}: {topic} takes record batches of at most {int(limit):,} bytes "
        f"(max.message.bytes), {why}: {mend}"
    ]


def setting_warnings(s: Settings, models: Models, configs: Configs, samples: bool) -> list[str]:
    """What is wrong in the settings ``configs`` of the topics the daemon writes (those that
    exist); ``samples``: the daemon reads raw samples (only then is the learned-models topic
    written)."""
    out: list[str] = []
    for name in SENT:
        if getattr(s, name):
            why = f"less than the daemon's batches of up to {BATCH_BYTES:,} bytes: a burst of "
            why += f"{SENT[name]} would be refused, which stops the daemon (again at each restart)"
            out += _too_small(s, name, configs, BATCH_BYTES, why)
    topic = s.learned_topic
    if not samples or not topic or topic not in configs:
        return out
    policy = configs[topic].get("cleanup.policy")
    if policy is not None and "compact" not in policy.split(","):
        out.append(
            f"learned_topic: {topic} is not compacted (cleanup.policy {policy}): it keeps every "
            "update until its retention deletes it (and with it the updates a restart needs), "
            "and a daemon reads them all for each partition it takes; compact it: "
            + kafka_command(s, topic, None, cleanup_policy="compact")
        )
    largest = largest_update(models, s)
    need = learned_bytes(largest)
    why = f"less than the daemon's batches of up to {need:,} bytes: "
    if largest is not None and largest[1] > BATCH_BYTES:
        why = f"less than the updates of stream {largest[0][:64]!r} ({largest[1]:,} bytes): "
    why += "updates refused are trained again after every restart, and the anchors of a "
    why += "partition of many streams without seq, refused, hold its commit"
    return out + _too_small(s, "learned_topic", configs, need, why)
