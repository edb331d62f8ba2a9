"""Local broker setup without starting a broker: configs, tool detection, the jar cache."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from agent_events.agent_runtime.errors import ToolMissing
from agent_events.broker import KafkaCluster, ensure_kafka_libs
from agent_events.broker._process import log_tail
from agent_events.broker.kafka_config import (
    FAST_FAILOVER_SETTINGS,
    NodeSpec,
    new_cluster_id,
    render_server_properties,
)
from agent_events.broker.kafka_libs import render_pom
from agent_events.broker.selection import docker_engine_answers
from agent_events.broker.tools import find_java, find_maven


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


@pytest.fixture
def no_tools_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with neither java nor mvn, and no JAVA_HOME."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return empty


def test_cluster_id_is_16_bytes_base64url_never_starting_with_dash() -> None:
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_single_node_config_uses_replication_factor_one_and_its_own_voter() -> None:
    node = NodeSpec(1, 9092, 9093)
    props = _props(render_server_properties(node, [node], Path("/data")))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert "broker.session.timeout.ms" not in props


def test_three_node_config_replicates_three_ways_with_min_isr_two_and_fast_failover() -> None:
    nodes = [NodeSpec(i, 9000 + i, 9100 + i) for i in (1, 2, 3)]
    props = _props(render_server_properties(nodes[1], nodes, Path("/data")))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    )
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    for key, value in FAST_FAILOVER_SETTINGS.items():
        assert props[key] == value


def test_config_overrides_win_over_defaults() -> None:
    node = NodeSpec(1, 9092, 9093)
    text = render_server_properties(node, [node], Path("/d"), {"num.partitions": "7"})
    assert _props(text)["num.partitions"] == "7"


def test_pom_pins_the_requested_kafka_version_and_the_log4j_binding() -> None:
    pom = render_pom("4.0.0")
    assert "<kafka.version>4.0.0</kafka.version>" in pom
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom


def test_missing_java_raises_tool_missing_with_one_line_saying_what_to_install(
    no_tools_on_path: Path,
) -> None:
    with pytest.raises(ToolMissing) as info:
        find_java()
    message = str(info.value)
    assert "\n" not in message
    assert "openjdk-17" in message
    assert "tansu" in message


async def test_kafka_cluster_start_without_java_raises_tool_missing(
    no_tools_on_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ToolMissing, match="Java 17"):
        async with KafkaCluster.single(data_dir=tmp_path / "k", cache_dir=tmp_path / "c"):
            pass


def test_missing_maven_raises_tool_missing_with_one_line(no_tools_on_path: Path) -> None:
    with pytest.raises(ToolMissing) as info:
        find_maven()
    assert "\n" not in str(info.value)
    assert "maven" in str(info.value)


async def test_cached_jars_with_a_stamp_are_used_without_maven(
    no_tools_on_path: Path, tmp_path: Path
) -> None:
    libs = tmp_path / "kafka-9.9.9" / "libs"
    libs.mkdir(parents=True)
    (tmp_path / "kafka-9.9.9" / ".complete").write_text("9.9.9\n")
    found = await ensure_kafka_libs("9.9.9", tmp_path)
    assert found.libs_dir == libs
    assert not found.fetched
    assert found.classpath == f"{libs}/*"


async def test_jars_without_a_stamp_need_maven(no_tools_on_path: Path, tmp_path: Path) -> None:
    (tmp_path / "kafka-9.9.9" / "libs").mkdir(parents=True)
    with pytest.raises(ToolMissing, match="Maven"):
        await ensure_kafka_libs("9.9.9", tmp_path)


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    tail = log_tail(log, 3)
    assert tail.splitlines() == ["line 97", "line 98", "line 99"]


def test_log_tail_of_a_missing_file_says_so(tmp_path: Path) -> None:
    assert "does not exist" in log_tail(tmp_path / "nope.log")


def test_docker_check_is_false_when_the_socket_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    assert docker_engine_answers() is False


_FAKE_MVN = """#!/bin/sh
# Stands in for Maven: records each run, then writes one jar where it was asked to.
PATH=/usr/bin:/bin
echo run >> "{counter}"
sleep 0.5
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
done
mkdir -p "$out" && touch "$out/kafka_2.13-9.9.9.jar"
"""


async def test_concurrent_fetches_of_one_version_run_maven_once(
    no_tools_on_path: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    mvn = no_tools_on_path / "mvn"
    mvn.write_text(_FAKE_MVN.format(counter=counter))
    mvn.chmod(0o755)
    cache = tmp_path / "cache"

    first, second = await asyncio.gather(
        ensure_kafka_libs("9.9.9", cache), ensure_kafka_libs("9.9.9", cache)
    )

    assert counter.read_text().splitlines() == ["run"]
    assert sorted([first.fetched, second.fetched]) == [False, True]
    assert (cache / "kafka-9.9.9" / "libs" / "kafka_2.13-9.9.9.jar").is_file()
    assert "kafka_2.13" in (cache / "kafka-9.9.9" / "pom.xml").read_text()
