"""``aemon serve --check``: what the daemon would find at start, found without starting it.

It joins no consumer group (a running deployment's partitions do not move) and sends nothing:
the settings and the models are checked as at start, the metrics port is bound and let go, and
the broker is asked which topics exist (never about one that does not: a broker that creates
topics on use would create it). A *problem* stops the daemon or leaves it idle (bad models, a
taken port, no broker, no input topic); a *warning* is what it runs with but should not (an
output topic the broker would have to create on first use, learned models and anchors it
cannot keep, a topic that refuses records the daemon sends it). A warning about a missing or
misconfigured topic ends with the Kafka command that mends it.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from aemon.core.catalog import describe_windows
from aemon.core.wording import alike, counted
from aemon.daemon.config import Settings
from aemon.daemon.kafka import BATCH_BYTES
from aemon.daemon.learning import weights_of
from aemon.daemon.routing import Models

BROKER_WAIT_S = 10.0  # at most, for an answer from the broker
MIB = 1 << 20
KAFKA_DEFAULT_BYTES = 1_048_588  # Apache Kafka's default max.message.bytes
SENT = {"alerts_topic": "alerts and events", "dlq_topic": "dead letters", "scores_topic": "scores"}
# An update's record beside its weights: the stream's name twice (its key, its header) and the
# model's version, the update's number and digest, the header's name and the record's framing.
UPDATE_KEYS_BYTES = 256


@dataclass
class Preflight:
    found: dict[str, str] = field(default_factory=dict)  # what each part is, in words
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _port_problem(host: str, port: int) -> str | None:
    """Why the metrics endpoint could not listen on ``host:port`` (None: it could)."""
    if port == 0:
        return None
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemon's server
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"metrics_port: cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


async def _partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` (which exist)."""
    described = await admin.describe_topics(topics)
    return {t["topic"]: len(t["partitions"]) for t in described}


async def _configs(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """The settings the broker reports for each of ``topics`` (which exist), by name; none for
    a topic where it reports none (the embedded broker reports only those set at creation) or
    a broker that does not answer the question."""
    if not topics:
        return {}
    asked = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    try:
        answers = await admin.describe_configs(asked)
    except Exception:  # a broker that does not say: nothing to check against
        return {}
    out: dict[str, dict[str, str]] = {}
    for answer in answers:
        for error, _, _, topic, entries in answer.resources:
            if not error:
                out[topic] = {e[0]: e[1] for e in entries if e[1] is not None}
    return out


def _largest_update(models: Models, s: Settings) -> tuple[str, int] | None:
    """The stream of the model that keeps learning with the most weights, and the most bytes
    one of its updates' records takes in the learned-models topic; None when none learns."""
    learning = [(n, models.detectors[i]) for n, i in models.route.items()]
    learning = [(n, d) for n, d in learning if d.learning is not None]
    if not learning:
        return None
    name, det = max(learning, key=lambda nd: sum(p.numel() for p in nd[1].model.parameters()))
    keys = 2 * 4 * s.max_stream_id + UPDATE_KEYS_BYTES  # names of up to 4 UTF-8 bytes a character
    return name, len(weights_of(det.model)) + keys


def _topic_command(
    s: Settings, topic: str, partitions: int | str | None, **config: str | int
) -> str:
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


def _too_small(
    out: Preflight, s: Settings, name: str, configs: dict[str, str], need: int, why: str
) -> None:
    """A warning when the topic of setting ``name`` takes record batches of fewer bytes than
    ``need`` (its ``configs`` say so), with ``why`` that matters and the command that mends it."""
    topic = getattr(s, name)
    limit = configs.get("max.message.bytes")
    if limit is None or not limit.isdigit() or int(limit) >= need:
        return
    mib = -(-need // MIB) * MIB
    out.warnings.append(
        f"{name}: {topic} takes record batches of at most {int(limit):,} bytes "
        f"(max.message.bytes), {why}: {_topic_command(s, topic, None, max_message_bytes=mib)}"
    )


async def check(s: Settings) -> Preflight:
    """Every check ``aemon serve`` would meet with ``s``; raises :class:`AemonError` where the
    models or settings themselves are wrong (as start-up does)."""
    out = Preflight()
    models = Models(s.model, s.device, s.amp)
    windower = models.windower(s.input_kind)
    kinds = "series model" if models.series else "model"
    takes = "samples" if windower is not None else "windows"
    out.found["models"] = (
        f"{counted(len(models.route), kinds)} in {s.model} "
        f"({alike([describe_windows(d.meta) for d in models.detectors])}); reads {takes}"
    )
    port = _port_problem(s.metrics_host, s.metrics_port)
    if port:
        out.problems.append(port)
    else:
        free = f"{s.metrics_port} free" if s.metrics_port else "any free port"
        out.found["metrics"] = f"{s.metrics_host}:{free}"
    admin = AIOKafkaAdminClient(
        bootstrap_servers=s.bootstrap_servers,
        client_id=f"{s.client_id}-check",
        request_timeout_ms=3000,
        **s.kafka_security(),
    )
    try:
        wait = min(s.broker_wait_s or BROKER_WAIT_S, BROKER_WAIT_S)
        await asyncio.wait_for(admin.start(), wait)
        topics = set(await asyncio.wait_for(admin.list_topics(), wait))
        partitions = await _partitions(admin, sorted(topics & _named(s)))
        written = {s.alerts_topic, s.dlq_topic, s.scores_topic, s.learned_topic}
        configs = await _configs(admin, sorted(topics & written))
    except Exception as exc:  # unreachable, refused, timed out: what the daemon would meet
        out.problems.append(f"broker {s.bootstrap_servers}: {exc!r}")
        return out
    finally:
        await admin.close()
    _topics(out, s, models, topics, partitions, configs)
    return out


def _room(largest: tuple[str, int] | None) -> str:
    """Words on the record size a learned-models topic needs, when any model learns."""
    if largest is None:
        return ""
    return f" and records up to {largest[1]:,} bytes (the updates of stream {largest[0][:64]!r})"


def _named(s: Settings) -> set[str]:
    return {t for t in (s.input_topic, s.learned_topic) if t}


def _topics(
    out: Preflight,
    s: Settings,
    models: Models,
    topics: set[str],
    partitions: dict[str, int],
    configs: dict[str, dict[str, str]],
) -> None:
    where = s.bootstrap_servers
    inputs = partitions.get(s.input_topic)
    if inputs is None:
        out.problems.append(
            f"input_topic: {s.input_topic} does not exist on {where}: the daemon would have "
            "nothing to read"
        )
    else:
        out.found["input"] = (
            f"{s.input_topic} on {where}, {inputs} partition(s), group {s.group_id}"
        )
    outputs = {"alerts_topic": s.alerts_topic, "dlq_topic": s.dlq_topic}
    if s.scores_topic:
        outputs["scores_topic"] = s.scores_topic
    missing = {k: t for k, t in outputs.items() if t not in topics}
    count = "PARTITIONS" if inputs is None else inputs  # the input's, when it is there
    for name, topic in missing.items():
        out.warnings.append(
            f"{name}: {topic} does not exist on {where}: the daemon's first send creates it only "
            "where the broker creates topics on use (Kafka's auto.create.topics.enable), with "
            f"the broker's defaults; create it: {_topic_command(s, topic, count)}"
        )
    for name, topic in outputs.items():
        burst = f"less than the daemon's batches of up to {BATCH_BYTES:,} bytes: a burst of "
        burst += f"{SENT[name]} would be refused, which stops the daemon (again at each restart)"
        _too_small(out, s, name, configs.get(topic, {}), BATCH_BYTES, burst)
    out.found["outputs"] = ", ".join(
        f"{t}{' (missing)' if k in missing else ''}" for k, t in outputs.items()
    )
    if models.windower(s.input_kind) is None:  # windows: nothing learns, nothing is counted
        return
    out.found["ending"] = (
        f"a stream silent for {s.end_silent_after_s:g} s is ended (the daemon writes its end "
        f"marker to {s.input_topic})"
        if s.end_silent_after_s
        else "a stream that stops holds its partition's commit until 'aemon end' ends it "
        "(end_silent_after_s 0)"
    )
    learned = partitions.get(s.learned_topic) if s.learned_topic else None
    largest = _largest_update(models, s)
    need = BATCH_BYTES if largest is None else max(BATCH_BYTES, largest[1])
    if not s.learned_topic:
        out.warnings.append(
            "learned_topic is off: after every restart and partition move, models that keep "
            "learning train their updates again and streams whose samples carry no seq are "
            "counted again from where they are re-read"
        )
    elif learned is None:
        room = {} if need <= KAFKA_DEFAULT_BYTES else {"max_message_bytes": -(-need // MIB) * MIB}
        create = _topic_command(s, s.learned_topic, count, cleanup_policy="compact", **room)
        out.warnings.append(
            f"learned_topic: {s.learned_topic} does not exist on {where}: learned models and "
            "the anchors of streams without seq are not kept; create it compacted, with the "
            f"input's partition count{_room(largest)}: {create}"
        )
    else:
        said = configs.get(s.learned_topic, {})
        policy = said.get("cleanup.policy")
        kept = "" if policy is None else f", cleanup.policy {policy}"
        out.found["learned"] = f"{s.learned_topic}, {learned} partition(s){kept}"
        if policy is not None and "compact" not in policy.split(","):
            compact = _topic_command(s, s.learned_topic, None, cleanup_policy="compact")
            out.warnings.append(
                f"learned_topic: {s.learned_topic} is not compacted (cleanup.policy {policy}): "
                "it keeps every update until its retention deletes it (and with it the updates "
                "a restart needs), and a daemon reads them all for each partition it takes; "
                f"compact it: {compact}"
            )
        why = f"less than the daemon's batches of up to {need:,} bytes: "
        if largest is not None and largest[1] > BATCH_BYTES:
            why = f"less than the updates of stream {largest[0][:64]!r} ({largest[1]:,} bytes): "
        why += "updates refused are trained again after every restart, and the anchors of a "
        why += "partition of many streams without seq, refused, hold its commit"
        _too_small(out, s, "learned_topic", said, need, why)
        if inputs is not None and learned < inputs:
            out.warnings.append(
                f"learned_topic: {s.learned_topic} has {learned} partition(s), fewer than the "
                f"input's {inputs}: each daemon also holds updates of streams it does not own "
                "(give it the input's partition count)"
            )
