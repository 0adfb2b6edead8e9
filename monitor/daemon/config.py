"""Daemon settings from defaults, a TOML file, ``AEMON_*`` environment variables and flags.

Later sources win: defaults < ``--config FILE`` < environment < command-line flags. Every
problem found is reported at once, one line each.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aemon.core.errors import ConfigError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")


@dataclass(frozen=True)
class Settings:
    """Everything ``aemon serve`` needs. Field docs are the ``--help`` texts."""

    model: str = ""
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "aemon.windows"
    alerts_topic: str = "aemon.alerts"
    dlq_topic: str = "aemon.dlq"
    scores_topic: str = ""
    learned_topic: str = "aemon.learned"
    group_id: str = "aemon"
    client_id: str = "aemon"
    input_kind: str = "auto"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    max_batch: int = 4096
    max_wait_ms: int = 20
    fetch_max_wait_ms: int = 20
    max_message_bytes: int = 1 << 20
    max_stream_id: int = 256
    dlq_max_bytes: int = 256 << 10
    queue_batches: int = 4
    top_k: int = 5
    device: str = "auto"
    torch_threads: int = 1
    learn_processes: int = 1
    amp: bool = False
    watch_model: bool = True
    commit_timeout_s: float = 10.0
    broker_wait_s: float = 300.0
    broker_grace_s: float = 5.0
    shutdown_timeout_s: float = 8.0
    summary_interval_s: float = 60.0
    end_silent_after_s: float = 0.0
    log_format: str = "text"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    auto_offset_reset: str = "earliest"
    idempotent: bool = False
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    def kafka_security(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (SASL/SSL passed through)."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile or None,
                certfile=self.ssl_certfile or None,
                keyfile=self.ssl_keyfile or None,
            )
        if self.security_protocol.startswith("SASL"):
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username or None,
                sasl_plain_password=self.sasl_password or None,
            )
        return kw


FIELDS = {f.name: f for f in fields(Settings)}

HELP = {
    "model": "artifact directory written by 'aemon train', or a directory of them (one per "
    "stream, as 'aemon train series' writes) (required)",
    "bootstrap_servers": "Kafka bootstrap servers, host:port[,host:port]",
    "input_topic": "topic of input windows or samples",
    "alerts_topic": "topic alerts are published to (key = stream id)",
    "dlq_topic": "dead-letter topic for refused messages (original bytes + reason headers)",
    "scores_topic": "optional topic for every window's score (empty: off)",
    "learned_topic": "compacted topic (as many partitions as the input) where models that keep "
    "learning keep their updates, so that a restart or a replica taking a partition over does "
    "not train them again, and where streams without seq keep their anchors and a retrained "
    "model swapped in its streams' swap points (empty, or no such topic: off)",
    "group_id": "consumer group; replicas with the same group share the partitions",
    "client_id": "Kafka client id",
    "input_kind": "'windows' (whole windows), 'samples' (windowed per stream here) or 'auto' "
    "(samples for series models, else windows)",
    "metrics_host": "address of /metrics, /healthz and /readyz",
    "metrics_port": "port of /metrics, /healthz and /readyz (0: any free port)",
    "max_batch": "windows per batch at most, scored, decided, published and committed "
    "together (the CPU scores it in passes of 1,024 windows, 256 for convolutional models; a "
    "GPU takes it whole)",
    "max_wait_ms": "longest a partial batch waits while the scorer is busy (an idle scorer "
    "takes it at once)",
    "fetch_max_wait_ms": "longest the broker may hold a fetch (Apache Kafka answers as soon as "
    "data arrives; the embedded broker holds fetches this long under steady traffic)",
    "max_message_bytes": "larger messages go to the dead-letter topic",
    "max_stream_id": "longest stream id accepted (characters)",
    "dlq_max_bytes": "a dead letter's original bytes are cut to this size (header truncated_from "
    "gives the original size), so that one never exceeds what the broker accepts",
    "queue_batches": "batches queued for scoring at most (bounds memory; overload becomes lag)",
    "top_k": "time steps (or pixels) with the largest error named in each alert",
    "device": "auto (CUDA when present), cpu or cuda[:N]",
    "torch_threads": "CPU threads for scoring (1 leaves the other cores to decoding and Kafka)",
    "learn_processes": "processes that train the updates of models that keep learning, one CPU "
    "thread each (more: a restart's re-read retrains many streams' updates sooner)",
    "amp": "autocast when scoring on CUDA",
    "watch_model": "swap in a model when its detector.json changes (each model on its own)",
    "commit_timeout_s": "give up on an offset commit after this long (it is retried next batch)",
    "broker_wait_s": "at start-up, wait this long for the broker before exiting 2 (0: forever)",
    "broker_grace_s": "the broker may be unreachable this long before /readyz answers 503",
    "shutdown_timeout_s": "SIGTERM: longest drain (finish, publish, commit; updates still "
    "training) before the exit",
    "summary_interval_s": "a summary log line this often (windows/s, anomalies, alerts, dead "
    "letters, lag, models); 0: none",
    "end_silent_after_s": "end a sample stream that sent nothing for this long (its partition's "
    "record time), as 'aemon end' does: the daemon sends its end marker to the input topic "
    "(0: never; then the log names such a stream, which holds its partition's commit back)",
    "log_format": "'text' or 'json' (one JSON object per line)",
    "session_timeout_ms": "consumer group session timeout",
    "heartbeat_interval_ms": "consumer group heartbeat interval",
    "auto_offset_reset": "where a new group starts: earliest or latest",
    "idempotent": "idempotent producer (Apache Kafka; the embedded broker refuses it)",
    "security_protocol": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "sasl_mechanism": "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI",
    "sasl_username": "SASL user name",
    "sasl_password": "SASL password (prefer the AEMON_SASL_PASSWORD variable)",
    "ssl_cafile": "CA bundle for SSL",
    "ssl_certfile": "client certificate for SSL",
    "ssl_keyfile": "client key for SSL",
}


TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def topic_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic name, if it would."""
    if not TOPIC.fullmatch(name) or name in (".", ".."):
        return f"{name!r} is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -, not '.' or '..')"
    return None


def bootstrap_problem(servers: str) -> str | None:
    """Why the Kafka client could not read ``servers`` as ``host[:port][,host[:port]]`` (an IPv6
    address in brackets), if it could not."""
    for part in servers.split(","):
        entry = part.strip()
        if "://" in entry:
            return f"{entry!r}: give host:port without a scheme (security_protocol sets it)"
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket or not host or (rest and not rest.startswith(":")):
                return f"{entry!r} is not [IPv6 address]:port"
            colon, port = rest[:1], rest[1:]
        elif entry.count(":") > 1:
            try:
                ipaddress.IPv6Address(entry)  # an address alone: the default port
            except ValueError:
                return f"{entry!r}: an IPv6 address with a port goes in brackets, [::1]:9092"
            continue
        else:
            host, colon, port = entry.partition(":")
        if not host:
            return f"{servers!r} is not host:port[,host:port]"
        if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
            return f"{entry!r}: the port must be a number from 1 to 65535"
    return None


def check_topic(name: str, setting: str) -> None:
    problem = topic_problem(name)
    if problem:
        raise ConfigError(f"{setting}: {problem}")


def _coerce(name: str, raw: object, problems: list[str], source: str) -> object:
    kind = type(FIELDS[name].default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if name == "bootstrap_servers" and isinstance(raw, list):  # a file's list of brokers
            raw = ",".join(raw) if all(isinstance(v, str) for v in raw) else raw
        if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
            raise ValueError  # True is no number, 2.5 no whole one
        if kind is str and isinstance(raw, os.PathLike):
            return os.fspath(raw)
        if kind is str and not isinstance(raw, str):
            raise ValueError  # a file's number or list is no topic or path
        return kind(raw)
    except (TypeError, ValueError):
        problems.append(f"{source}: {name} must be {kind.__name__}, got {raw!r}")
        return None


def _check(s: Settings, models: bool = True) -> list[str]:
    p: list[str] = []
    if models and not s.model:
        p.append("model: required (an artifact directory written by 'aemon train')")
    elif models and not Path(s.model).is_dir():
        inside = Path(s.model).is_file() and (Path(s.model).parent / "detector.json").is_file()
        hint = f": give the artifact's directory ({Path(s.model).parent})" if inside else ""
        p.append(f"model: {s.model} is not a directory{hint}")
    for name in ("bootstrap_servers", "input_topic", "alerts_topic", "dlq_topic", "group_id"):
        if not getattr(s, name).strip():
            p.append(f"{name}: must not be empty")
    if s.bootstrap_servers.strip() and (problem := bootstrap_problem(s.bootstrap_servers)):
        p.append(f"bootstrap_servers: {problem}")
    for name in ("input_topic", "alerts_topic", "dlq_topic", "scores_topic", "learned_topic"):
        value = getattr(s, name)
        if value.strip() and topic_problem(value):
            p.append(f"{name}: {topic_problem(value)}")
    if s.input_kind not in ("auto", "windows", "samples"):
        p.append(f"input_kind: 'auto', 'windows' or 'samples', got {s.input_kind!r}")
    for name, lo, hi in (
        ("metrics_port", 0, 65535),
        ("max_batch", 1, 1 << 16),
        ("max_wait_ms", 0, 60_000),
        ("fetch_max_wait_ms", 1, 60_000),
        ("max_message_bytes", 64, 1 << 28),
        ("max_stream_id", 1, 1 << 16),
        ("queue_batches", 1, 1024),
        ("top_k", 0, 1 << 16),
        ("torch_threads", 1, 1024),
        ("learn_processes", 1, 1024),
        ("session_timeout_ms", 1000, 600_000),
        ("heartbeat_interval_ms", 100, 600_000),
    ):
        v = getattr(s, name)
        if not lo <= v <= hi:
            p.append(f"{name}: {v} is outside {lo}..{hi}")
    for name, lo, hi in (
        ("commit_timeout_s", 0.01, 3600),
        ("broker_wait_s", 0, 86400),
        ("broker_grace_s", 0, 3600),
        ("shutdown_timeout_s", 0.1, 3600),
        ("summary_interval_s", 0, 86400),
        ("end_silent_after_s", 0, 366 * 86400),
        ("dlq_max_bytes", 1024, 1 << 28),
    ):
        v = getattr(s, name)
        if not lo <= v <= hi:  # also false for NaN
            p.append(f"{name}: {v} is outside {lo:g}..{hi:g}")
    if s.log_format not in ("text", "json"):
        p.append(f"log_format: 'text' or 'json', got {s.log_format!r}")
    if s.heartbeat_interval_ms >= s.session_timeout_ms:
        p.append("heartbeat_interval_ms: must be below session_timeout_ms")
    if s.auto_offset_reset not in ("earliest", "latest"):
        p.append("auto_offset_reset: 'earliest' or 'latest'")
    if s.security_protocol not in SECURITY_PROTOCOLS:
        p.append(f"security_protocol: one of {', '.join(SECURITY_PROTOCOLS)}")
    elif s.security_protocol.startswith("SASL") and s.sasl_mechanism not in SASL_MECHANISMS:
        p.append(f"sasl_mechanism: one of {', '.join(SASL_MECHANISMS)} with {s.security_protocol}")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(s, name) and not Path(getattr(s, name)).is_file():
            p.append(f"{name}: {getattr(s, name)} is not a file")
    return p


def local(model: str | Path, bootstrap: str, prefix: str, **extra: Any) -> Settings:
    """Settings for a run of our own against a (usually embedded) broker: topics and group named
    ``prefix-...-<random>``, any free metrics port, no model watching, and a short group session
    (the embedded broker holds each JoinGroup for half of it). ``extra`` overrides."""
    tag = uuid.uuid4().hex[:8]
    own: dict[str, Any] = {
        "model": str(model),
        "bootstrap_servers": bootstrap,
        "input_topic": f"{prefix}-input-{tag}",
        "alerts_topic": f"{prefix}-alerts-{tag}",
        "dlq_topic": f"{prefix}-dlq-{tag}",
        "learned_topic": f"{prefix}-learned-{tag}",
        "group_id": f"{prefix}-{tag}",
        "metrics_port": 0,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "watch_model": False,
    }
    return dataclasses.replace(Settings(), **{**own, **extra})


# AEMON_* variables that are not settings: the config file's, and the tools' and tests' own.
OTHER_VARIABLES = frozenset(
    {
        "AEMON_CONFIG",
        "AEMON_TEST_BOOTSTRAP",
        "AEMON_SOAK_MINUTES",
        "AEMON_BATCHES",
        "AEMON_OBJECT_STORE_LOG",
    }
)


def _warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """One warning per ``AEMON_*`` variable that names no setting (a typo in a deployment's
    environment would otherwise be ignored without a word), with the nearest setting's name."""
    names = [f"AEMON_{name.upper()}" for name in FIELDS]
    for env in sorted(k for k in environ if k.startswith("AEMON_")):
        if env in OTHER_VARIABLES or env in names:
            continue
        near = difflib.get_close_matches(env, names, 1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        warnings.warn(f"{env} is not a setting and is ignored{hint}", stacklevel=3)


def load(
    flags: dict[str, object] | None = None,
    config_file: str | Path | None = None,
    environ: dict[str, str] | None = None,
    models: bool = True,
) -> Settings:
    """Merge the sources and validate; raise :class:`ConfigError` listing every problem.
    ``models``: the settings serve models (the daemon's); False for a tool that only shares the
    daemon's Kafka settings (``aemon notify``)."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    merged: dict[str, object] = {}
    config_file = config_file or environ.get("AEMON_CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path}: not UTF-8 text (TOML is)") from None
        except OSError as exc:  # a directory, no permission
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        table = doc.get("aemon", doc)
        for key, raw in table.items():
            name = key.replace("-", "_")
            if name not in FIELDS:
                problems.append(f"{path}: unknown setting {key!r}")
                continue
            merged[name] = _coerce(name, raw, problems, str(path))
    _warn_unknown_variables(environ)
    for name in FIELDS:
        env = f"AEMON_{name.upper()}"
        if env in environ:
            merged[name] = _coerce(name, environ[env], problems, env)
    for name, raw in (flags or {}).items():
        if raw is not None:
            merged[name] = _coerce(name, raw, problems, f"--{name.replace('_', '-')}")
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    settings = dataclasses.replace(Settings(), **merged)
    problems = _check(settings, models)
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return settings
