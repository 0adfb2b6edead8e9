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

from aemon.core.catalog import describe_windows
from aemon.core.wording import alike, counted
from aemon.daemon.config import Settings
from aemon.daemon.kafka import Configs, topic_configs
from aemon.daemon.routing import Models
from aemon.daemon.topic_settings import (
    KAFKA_DEFAULT_BYTES,
    in_mib,
    kafka_command,
    largest_update,
    learned_bytes,
    setting_warnings,
    written,
)

BROKER_WAIT_S = 10.0  # at most, for an answer from the broker


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
        configs = await topic_configs(admin, sorted(topics & written(s)))
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
    configs: Configs,
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
            f"the broker's defaults; create it: {kafka_command(s, topic, count)}"
        )
    out.found["outputs"] = ", ".join(
        f"{t}{' (missing)' if k in missing else ''}" for k, t in outputs.items()
    )
    samples = models.windower(s.input_kind) is not None
    out.warnings += setting_warnings(s, models, configs, samples)
    if not samples:  # windows: nothing learns, nothing is counted
        return
    out.found["ending"] = (
        f"a stream silent for {s.end_silent_after_s:g} s is ended (the daemon writes its end "
        f"marker to {s.input_topic})"
        if s.end_silent_after_s
        else "a stream that stops holds its partition's commit until 'aemon end' ends it "
        "(end_silent_after_s 0)"
    )
    learned = partitions.get(s.learned_topic) if s.learned_topic else None
    if not s.learned_topic:
        out.warnings.append(
            "learned_topic is off: after every restart and partition move, models that keep "
            "learning train their updates again, streams whose samples carry no seq are "
            "counted again from where they are re-read, and a retrained model swapped in is "
            "rebuilt from the windows re-read"
        )
    elif learned is None:
        largest = largest_update(models, s)
        need = learned_bytes(largest)
        room = {} if need <= KAFKA_DEFAULT_BYTES else {"max_message_bytes": in_mib(need)}
        create = kafka_command(s, s.learned_topic, count, cleanup_policy="compact", **room)
        out.warnings.append(
            f"learned_topic: {s.learned_topic} does not exist on {where}: learned models and "
            "the anchors of streams without seq are not kept; create it compacted, with the "
            f"input's partition count{_room(largest)}: {create}"
        )
    else:
        policy = configs.get(s.learned_topic, {}).get("cleanup.policy")
        kept = "" if policy is None else f", cleanup.policy {policy}"
        out.found["learned"] = f"{s.learned_topic}, {learned} partition(s){kept}"
        if inputs is not None and learned < inputs:
            out.warnings.append(
                f"learned_topic: {s.learned_topic} has {learned} partition(s), fewer than the "
                f"input's {inputs}: each daemon also holds updates of streams it does not own "
                "(give it the input's partition count)"
            )
