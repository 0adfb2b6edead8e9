"""The Kafka commands ``aemon serve --check`` and the daemon print: what a platform team
pastes to mend a topic."""

from __future__ import annotations

import dataclasses

from aemon.daemon.config import Settings
from aemon.daemon.topic_settings import kafka_command


def test_the_commands_create_or_alter_a_topic_and_name_the_client_settings_of_a_secured_cluster():
    plain = dataclasses.replace(Settings(), bootstrap_servers="k1:9092,k2:9092")
    assert kafka_command(plain, "aemon.learned", 6, cleanup_policy="compact") == (
        "kafka-topics.sh --bootstrap-server k1:9092,k2:9092 --create --topic aemon.learned "
        "--partitions 6 --config cleanup.policy=compact"
    )
    secured = dataclasses.replace(plain, security_protocol="SASL_SSL")
    two = {"cleanup_policy": "compact", "max_message_bytes": 2 << 20}
    assert kafka_command(secured, "aemon.learned", None, **two) == (
        "kafka-configs.sh --bootstrap-server k1:9092,k2:9092 --command-config CLIENT.properties "
        "--alter --entity-type topics --entity-name aemon.learned "
        "--add-config cleanup.policy=compact,max.message.bytes=2097152"
    )
