import pytest

from aemon.core.errors import ConfigError
from aemon.daemon import config


@pytest.fixture
def model(tmp_path):
    (tmp_path / "m").mkdir()
    return str(tmp_path / "m")


def test_precedence_defaults_file_environment_flags(tmp_path, model):
    toml = tmp_path / "aemon.toml"
    toml.write_text(
        f'[aemon]\nmodel = "{model}"\nmax_batch = 64\ngroup_id = "from-file"\n'
        'input_topic = "file-topic"\n'
    )
    env = {"AEMON_MAX_BATCH": "128", "AEMON_AMP": "true", "AEMON_GROUP_ID": "from-env"}
    s = config.load({"group_id": "from-flag"}, toml, env)
    assert (s.max_batch, s.amp, s.group_id, s.input_topic) == (128, True, "from-flag", "file-topic")
    assert s.alerts_topic == "aemon.alerts"  # default


def test_config_file_may_come_from_the_environment(tmp_path, model):
    toml = tmp_path / "c.toml"
    toml.write_text(f'model = "{model}"\nmetrics-port = 9999\n')
    assert config.load({}, None, {"AEMON_CONFIG": str(toml)}).metrics_port == 9999


def test_every_problem_is_reported_at_once(tmp_path):
    env = {
        "AEMON_MAX_BATCH": "0",
        "AEMON_INPUT_KIND": "frames",
        "AEMON_SECURITY_PROTOCOL": "SASL_SSL",
    }
    with pytest.raises(ConfigError) as exc:
        config.load({"model": str(tmp_path / "absent")}, None, env)
    text = str(exc.value)
    for part in ("model: ", "max_batch: 0 is outside", "input_kind:", "sasl_mechanism:"):
        assert part in text


def test_type_errors_and_unknown_keys(tmp_path, model):
    toml = tmp_path / "c.toml"
    toml.write_text(f'model = "{model}"\nmax_batch = "lots"\ncolour = "blue"\n')
    with pytest.raises(ConfigError) as exc:
        config.load({"amp": "perhaps"}, toml, {})
    text = str(exc.value)
    assert "unknown setting 'colour'" in text
    assert "max_batch must be int, got 'lots'" in text
    assert "--amp: amp must be bool" in text
    with pytest.raises(ConfigError, match="not found"):
        config.load({}, tmp_path / "nope.toml", {})
    toml.write_text("model = [")
    with pytest.raises(ConfigError, match=r"c\.toml"):
        config.load({}, toml, {})


def test_an_environment_variable_that_names_no_setting_is_warned_about(model):
    """A deployment's typo would otherwise leave the default in place without a word."""
    env = {"AEMON_INPUT_TOPIK": "pumps", "AEMON_GROUP_ID": "g", "AEMON_TEST_BOOTSTRAP": "x:1"}
    with pytest.warns(UserWarning) as caught:
        s = config.load({"model": model}, None, env)
    assert (s.input_topic, s.group_id) == (config.Settings().input_topic, "g")
    assert [str(w.message) for w in caught] == [
        "AEMON_INPUT_TOPIK is not a setting and is ignored (did you mean AEMON_INPUT_TOPIC?)"
    ]


def test_sasl_settings_pass_through_to_aiokafka(model):
    s = config.load(
        {
            "model": model,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "u",
        },
        None,
        {"AEMON_SASL_PASSWORD": "p"},
    )
    assert s.kafka_security() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }


def test_the_example_config_loads_and_documents_every_setting_with_its_default(tmp_path):
    import dataclasses
    import re
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[2] / "deploy" / "systemd" / "aemon.toml"
    s = config.load({"model": str(tmp_path)}, path, environ={})  # the flag: a real directory
    assert s.bootstrap_servers == "kafka-1:9092,kafka-2:9092" and s.metrics_host == "0.0.0.0"
    assert s.scores_topic == "aemon.scores" and s.max_batch == config.Settings().max_batch
    text = path.read_text()
    shown = re.findall(r"^#? ?([a-z_]+) = (.+)$", text, re.M)
    assert [name for name, _ in shown] == [f.name for f in dataclasses.fields(config.Settings)]
    commented = tomllib.loads("\n".join(f"{k} = {v}" for k, v in shown if f"\n# {k} =" in text))
    for name, value in commented.items():  # each commented line shows the default
        assert getattr(config.Settings(), name) == value, name


@pytest.mark.parametrize(
    "servers",
    ["kafka:9092", "kafka", "10.0.0.1:9092, 10.0.0.2:9093", "[::1]:9092", "[::1]", "::1"],
)
def test_bootstrap_servers_the_client_reads_pass(servers):
    assert config.bootstrap_problem(servers) is None


@pytest.mark.parametrize(
    ("servers", "why"),
    [
        ("kafka:abc", "the port must be a number from 1 to 65535"),
        ("kafka:0", "the port must be a number from 1 to 65535"),
        ("kafka:70000", "the port must be a number from 1 to 65535"),
        ("kafka:", "the port must be a number from 1 to 65535"),
        ("[::1]:", "the port must be a number from 1 to 65535"),
        ("PLAINTEXT://kafka:9092", "without a scheme"),
        ("kafka:9092,", "is not host:port[,host:port]"),
        (":9092", "is not host:port[,host:port]"),
        ("[::1", "is not [IPv6 address]:port"),
        ("[::1]9092", "is not [IPv6 address]:port"),
        ("fe80::1::2:9092", "an IPv6 address with a port goes in brackets"),
    ],
)
def test_bootstrap_servers_the_client_cannot_read_are_named(servers, why):
    assert why in (config.bootstrap_problem(servers) or "")


def test_a_value_of_another_type_is_refused_not_converted(tmp_path, model):
    """True is no batch size and a number no topic (``int(True)`` and ``str(5)`` would pass);
    a file's list of brokers is the comma-separated setting, a path object a path."""
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'model = "{model}"\nmax_batch = true\ninput_topic = 5\nmax_wait_ms = 2.5\n'
        'bootstrap_servers = ["k1:9092", "k2:9092"]\n'
    )
    with pytest.raises(ConfigError) as exc:
        config.load({"commit_timeout_s": False}, toml, {})
    text = str(exc.value)
    for wrong in (
        "max_batch must be int, got True",
        "input_topic must be str, got 5",
        "max_wait_ms must be int, got 2.5",
        "commit_timeout_s must be float, got False",
    ):
        assert wrong in text
    assert "bootstrap_servers" not in text
    toml.write_text(f'model = "{model}"\nbootstrap_servers = ["k1:9092", "k2:9092"]\n')
    s = config.load({"ssl_cafile": tmp_path / "c.toml"}, toml, {})
    assert s.bootstrap_servers == "k1:9092,k2:9092" and s.ssl_cafile == str(tmp_path / "c.toml")
