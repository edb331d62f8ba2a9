"""The testcontainers broker runs the same Apache Kafka as compose and the local broker."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent_events.broker.container import KAFKA_IMAGE, kafka_container, kafka_container_env
from agent_events.broker.kafka_libs import DEFAULT_KAFKA_VERSION
from agent_events.broker.selection import docker_engine_answers

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
# Addresses differ by design (compose advertises its own hostname and an external port).
_ADDRESSES = {
    "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_CONTROLLER_QUORUM_VOTERS",
    "KAFKA_NUM_PARTITIONS",
}


def test_the_container_image_is_the_compose_image_and_the_local_broker_version() -> None:
    kafka = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]
    assert KAFKA_IMAGE == kafka["image"] == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"


def test_the_container_has_the_compose_brokers_settings_and_advertises_its_host_port() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]["environment"]
    env = kafka_container_env(41234)
    same = {k: v for k, v in compose.items() if k not in _ADDRESSES and k in env}
    assert same == {k: env[k] for k in same}
    assert set(compose) - set(env) <= _ADDRESSES | {"KAFKA_AUTO_CREATE_TOPICS_ENABLE"}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:41234"


@pytest.mark.skipif(not docker_engine_answers(), reason="needs a Docker engine")
def test_the_container_maps_the_advertised_port() -> None:
    pytest.importorskip("testcontainers", reason="the docker extra is not installed")
    container, bootstrap = kafka_container()
    port = int(bootstrap.rsplit(":", 1)[1])
    assert container.image == KAFKA_IMAGE
    assert container.env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{bootstrap}"
    assert container.ports == {9092: ("127.0.0.1", port)}
