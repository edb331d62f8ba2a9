"""Settings: one precedence rule (flags > environment > .env > config file > defaults), Kafka's
names, and one clear ConfigError line for every bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent_events.agent_runtime.errors import ConfigError
from agent_events.settings import AgentEventsSettings, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AGENT_EVENTS_* variable or ./.env of the machine leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("AGENT_EVENTS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_safe_kafka_settings() -> None:
    settings = load_settings()
    consumer = settings.consumer_config("agent-events-metrics")
    producer = settings.producer_config()
    assert consumer.group_id == "agent-events-metrics"
    assert consumer.topics == ["agent.events"]
    assert consumer.dlq_topic == "agent.events.dlq"
    assert consumer.auto_offset_reset == "earliest"
    assert consumer.consumer_kwargs()["enable_auto_commit"] is False
    assert (producer.acks, producer.enable_idempotence) == ("all", True)
    assert settings.metrics_port is None
    assert settings.metrics_host == "127.0.0.1"


def test_flags_beat_environment_which_beats_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "agent-events.toml"
    config.write_text(
        'bootstrap_servers = "file:1"\ntopic = "file.topic"\ngroup_id = "file-group"\n'
        "[alerting]\nslow_threshold_ms = 100\nwebhook_retries = 9\n"
    )
    monkeypatch.setenv("AGENT_EVENTS_BOOTSTRAP_SERVERS", "env:2")
    monkeypatch.setenv("AGENT_EVENTS_TOPIC", "env.topic")
    monkeypatch.setenv("AGENT_EVENTS_ALERTING__SLOW_THRESHOLD_MS", "200")
    settings = load_settings({"bootstrap_servers": "flag:3", "group_id": None}, config)
    assert settings.bootstrap_servers == "flag:3"  # flag
    assert settings.topic == "env.topic"  # environment over file
    assert settings.group_id == "file-group"  # file (a None flag was not given)
    assert settings.alerting.slow_threshold_ms == 200  # nested environment over nested file
    assert settings.alerting.webhook_retries == 9  # the rest of the file's section stays


def test_dotenv_supplies_what_the_environment_lacks_and_beats_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "AGENT_EVENTS_TOPIC=dotenv.topic\nAGENT_EVENTS_GROUP_ID=dotenv-group\nUNRELATED=1\n"
    )
    config = tmp_path / "c.yaml"
    config.write_text("topic: file.topic\ngroup_id: file-group\ndlq_topic: file.dlq\n")
    monkeypatch.setenv("AGENT_EVENTS_GROUP_ID", "env-group")
    settings = load_settings(None, config)
    assert (settings.topic, settings.group_id, settings.dlq_topic) == (
        "dotenv.topic",
        "env-group",
        "file.dlq",
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "c.toml",
            'security_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n[store]\nurl = "postgresql://u@h/db"\n',
        ),
        (
            "c.yaml",
            "security_protocol: SASL_SSL\nsasl_mechanism: PLAIN\nstore:\n  url: postgresql://u@h/db\n",
        ),
        (
            "c.env",
            "AGENT_EVENTS_SECURITY_PROTOCOL=SASL_SSL\nAGENT_EVENTS_SASL_MECHANISM=PLAIN\nAGENT_EVENTS_STORE__URL=postgresql://u@h/db\n",
        ),
    ],
)
def test_every_config_file_format_gives_the_same_settings(
    name: str, content: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(content)
    settings = load_settings(None, path)
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "PLAIN"
    assert settings.store.url == "postgresql://u@h/db"


def test_sasl_settings_reach_every_client_and_the_password_stays_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_EVENTS_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("AGENT_EVENTS_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("AGENT_EVENTS_SASL_PLAIN_USERNAME", "svc")
    monkeypatch.setenv("AGENT_EVENTS_SASL_PLAIN_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    for kwargs in (
        settings.consumer_config("g").consumer_kwargs(),
        settings.producer_config().producer_kwargs(),
        settings.connection().client_kwargs(),
    ):
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert kwargs["sasl_plain_username"] == "svc"
        assert kwargs["sasl_plain_password"] == "hunter2"


def test_group_id_setting_wins_over_the_services_default() -> None:
    settings = load_settings({"group_id": "mine"})
    assert settings.consumer_config("agent-events-metrics").group_id == "mine"


def test_consumer_tuning_reaches_the_consumer_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVENTS_CONSUMER__MAX_RETRIES", "7")
    monkeypatch.setenv("AGENT_EVENTS_CONSUMER__ORDERING", "key")
    config = load_settings().consumer_config("g")
    assert (config.max_retries, config.ordering) == (7, "key")


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (
            {"bootstrap_servers": "localhost"},
            {},
            "bootstrap_servers (AGENT_EVENTS_BOOTSTRAP_SERVERS)",
        ),
        ({}, {"AGENT_EVENTS_METRICS_PORT": "lots"}, "metrics_port (AGENT_EVENTS_METRICS_PORT)"),
        ({}, {"AGENT_EVENTS_CONSUMER__MAX_RETRIES": "-1"}, "consumer.max_retries"),
        ({"security_protocol": "SASL_SSL"}, {}, "needs sasl_mechanism"),
        ({"consumer": {"heartbeat_interval_ms": 20_000}}, {}, "heartbeat_interval_ms"),
        ({"dlq_topic": "agent.events"}, {}, "would loop"),
        ({"alerting": {"log": False}}, {}, "alerting needs a sink"),
        ({"log_level": "LOUD"}, {}, "log_level"),
    ],
)
def test_a_bad_setting_is_one_config_error_line_naming_it(
    flags: dict[str, object], env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(flags)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_a_bad_password_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"sasl_plain_password": 12345})
    assert "12345" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.toml", None, "cannot read config file"),
        ("bad.toml", "x = [", "not valid TOML"),
        ("bad.yaml", "a: [", "not valid YAML"),
        ("list.yaml", "- 1\n- 2\n", "table of settings"),
        ("typo.toml", "topicz = 'x'\n", "topicz"),
        ("typo.env", "AGENT_EVENTS_TOPICZ=x\n", "topicz"),
        ("c.json", "{}", "unknown format"),
    ],
)
def test_a_bad_config_file_is_one_config_error_line(
    name: str, content: str | None, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, path)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_loaded_settings_are_plain_settings_objects() -> None:
    assert type(load_settings()) is AgentEventsSettings


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_accepted_codec_loads_as_installed(codec: str) -> None:
    settings = load_settings({"producer": {"compression_type": codec}})
    assert settings.producer_config().producer_kwargs()["compression_type"] == codec


def test_a_codec_whose_library_is_missing_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiokafka.codec

    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # an installation without cramjam
    with pytest.raises(ConfigError) as caught:
        load_settings({"producer": {"compression_type": "lz4"}})
    assert "compression_type 'lz4' needs its codec library" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert load_settings({"producer": {"compression_type": "gzip"}}).producer.compression_type


def test_each_producer_knob_is_declared_once_and_reaches_the_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_events.producers.config import ProducerConfig, ProducerTuning
    from agent_events.transport import KafkaConnectionConfig

    assert AgentEventsSettings.model_fields["producer"].annotation is ProducerTuning
    assert issubclass(ProducerConfig, ProducerTuning)
    assert issubclass(AgentEventsSettings, KafkaConnectionConfig)
    monkeypatch.setenv("AGENT_EVENTS_PRODUCER__MAX_BATCH_SIZE", "65536")
    monkeypatch.setenv("AGENT_EVENTS_CONNECT_TIMEOUT_S", "4")
    config = load_settings().producer_config()
    assert (config.max_batch_size, config.connect_timeout_s) == (65536, 4.0)


def test_the_connection_of_the_settings_is_only_the_connection() -> None:
    from agent_events.transport import KafkaConnectionConfig

    connection = load_settings({"bootstrap_servers": "h:1", "topic": "t"}).connection()
    assert type(connection) is KafkaConnectionConfig
    assert connection.bootstrap_servers == "h:1"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("AGENT_EVENTS_BOOTSTRAP_SERVER", "did you mean AGENT_EVENTS_BOOTSTRAP_SERVERS?"),
        ("AGENT_EVENTS_CONSUMER__MAX_RETRIEZ", "did you mean AGENT_EVENTS_CONSUMER__MAX_RETRIES?"),
        ("AGENT_EVENTS_TOPIC__NAME", "topic has no sub-settings"),
        ("agent_events_nonsense", "unknown setting agent_events_nonsense"),
    ],
)
def test_a_misspelt_environment_variable_is_refused_like_a_typo_in_a_file(
    variable: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "127.0.0.1:9999")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings(dotenv=None)


def test_variables_read_elsewhere_are_not_taken_for_typos(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENT_EVENTS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AGENT_EVENTS_CONSUMER__MAX_RETRIES", "7")
    assert load_settings(dotenv=None).consumer.max_retries == 7


def test_a_section_variable_that_is_not_json_is_one_line_saying_what_to_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_EVENTS_CONSUMER", "notjson")
    with pytest.raises(ConfigError, match="AGENT_EVENTS_CONSUMER__NAME=value") as caught:
        load_settings(dotenv=None)
    assert "\n" not in str(caught.value)


def test_every_consumer_and_window_knob_is_declared_once() -> None:
    """One declaration (and so one default) per knob; the configs inherit them."""
    from agent_events.consumers.config import ConsumerConfig, ConsumerTuning, GroupMemberTuning
    from agent_events.consumers.windows.config import (
        WindowedAggregationConfig,
        WindowSettings,
        WindowTuning,
    )
    from agent_events.producers.config import ProducerConfig, ProducerTuning
    from agent_events.transport import KafkaConnectionConfig

    family = [
        KafkaConnectionConfig, GroupMemberTuning, ConsumerTuning, ConsumerConfig, WindowTuning,
        WindowSettings, WindowedAggregationConfig, ProducerTuning, ProducerConfig,
        AgentEventsSettings,
    ]  # fmt: skip
    # What a config reads and where it dead-letters: wiring each config names for itself.
    wiring = {"topics", "topic", "group_id", "dlq_topic", "window"}
    declared: dict[str, list[str]] = {}
    for cls in family:
        for name in vars(cls).get("__annotations__", {}):
            if name in cls.model_fields and name not in wiring:
                declared.setdefault(name, []).append(cls.__name__)
    twice = {name: owners for name, owners in declared.items() if len(owners) > 1}
    assert not twice
    assert WindowedAggregationConfig.model_fields["processing_guarantee"].default == "auto"
    assert WindowSettings().processing_guarantee == "auto"


@pytest.mark.parametrize(
    ("model", "options", "extra"),
    [
        ("agent_events.producers.config:ProducerConfig", "ProducerOptions", set()),
        ("agent_events.consumers.config:ConsumerConfig", "ConsumerOptions", set()),
        (
            "agent_events.consumers.windows.config:WindowedAggregationConfig",
            "WindowOptions",
            {"grace"},
        ),
    ],
)
def test_constructor_keywords_are_exactly_the_config_fields(
    model: str, options: str, extra: set[str]
) -> None:
    """The typed ``**options`` of the public constructors name every field, and only those."""
    import importlib
    import typing

    module_name, _, class_name = model.partition(":")
    module = importlib.import_module(module_name)
    fields = set(getattr(module, class_name).model_fields)
    keywords = set(typing.get_type_hints(getattr(module, options)))
    assert keywords == fields | extra


def test_a_misspelt_constructor_keyword_is_refused() -> None:
    from agent_events import ConsumerService

    with pytest.raises(ValueError, match="max_retriez"):
        ConsumerService(group_id="g", max_retriez=3)  # type: ignore[call-arg]


@pytest.mark.slow
def test_mypy_checks_a_users_keyword_arguments(tmp_path: Path) -> None:
    from mypy import api

    user_code = tmp_path / "user_code.py"
    user_code.write_text(
        "from agent_events import ConsumerService, KafkaEventProducer, WindowProcessor\n"
        'ConsumerService(group_id="g", max_retriez=3)\n'
        'WindowProcessor(group_id="g", window="tumbling:60s", max_pending_records="many")\n'
        'KafkaEventProducer(bootstrap_servers="127.0.0.1:9092", linger_ms="soon")\n'
    )
    out, _, status = api.run(["--strict", "--no-error-summary", str(user_code)])
    assert status == 1
    assert 'Unexpected keyword argument "max_retriez" for "ConsumerService"' in out
    assert 'Argument "max_pending_records" to "WindowProcessor"' in out
    assert 'Argument "linger_ms" to "KafkaEventProducer"' in out
