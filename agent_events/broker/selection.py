"""Which broker kinds this machine can run, and which one ``--kind auto`` means.

Real Apache Kafka wherever a JDK is present (Maven too, unless the jars are cached already);
Tansu otherwise. A Docker engine is only an option for tests and only if it answers at once:
the check returns in milliseconds when no socket exists, and within ``timeout_s`` otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Literal

from agent_events.agent_runtime.errors import ConfigError, ToolMissing
from agent_events.broker.kafka_libs import DEFAULT_KAFKA_VERSION, is_cached
from agent_events.broker.tools import find_java, find_maven, find_tansu

__all__ = [
    "BROKER_KINDS",
    "BrokerKind",
    "docker_engine_answers",
    "kind_unavailable_reason",
    "resolve_kind",
]

log = logging.getLogger(__name__)

BrokerKind = Literal["kafka", "tansu"]
BROKER_KINDS: tuple[BrokerKind, ...] = ("kafka", "tansu")


def kind_unavailable_reason(
    kind: str, *, version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None
) -> str | None:
    """None if ``kind`` can be started here, else the one-line ToolMissing message.

    Blocking (may run ``java -version``): call it through ``asyncio.to_thread`` in async code.
    """
    try:
        if kind == "kafka":
            find_java()
            if not is_cached(version, cache_dir):
                find_maven()
        elif kind == "tansu":
            find_tansu()
        else:
            raise ConfigError(f"unknown broker kind {kind!r}; use one of: kafka, tansu, auto")
    except ToolMissing as exc:
        return str(exc)
    return None


def resolve_kind(kind: str, *, version: str = DEFAULT_KAFKA_VERSION) -> BrokerKind:
    """Map ``auto`` to ``kafka`` if it can run here, else ``tansu`` (logged); check the others.

    Raises ConfigError for an unknown kind and ToolMissing if the chosen kind cannot run.
    """
    if kind == "auto":
        reason = kind_unavailable_reason("kafka", version=version)
        if reason is None:
            return "kafka"
        log.warning("using Tansu instead of Apache Kafka: %s", reason)
        kind = "tansu"
    if kind not in BROKER_KINDS:
        raise ConfigError(f"unknown broker kind {kind!r}; use one of: kafka, tansu, auto")
    reason = kind_unavailable_reason(kind, version=version)
    if reason is not None:
        raise ToolMissing(reason)
    return "kafka" if kind == "kafka" else "tansu"


def docker_engine_answers(timeout_s: float = 1.0) -> bool:
    """True if a Docker engine answers a ping within ``timeout_s`` (False at once without one)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    with contextlib.suppress(Exception):
        client = docker.from_env(timeout=max(1, int(timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    return False
