"""Pytest fixtures and hooks that run one behavioural suite on every broker kind.

A pytest plugin: ``pip install agent-events[testing]`` registers it (entry point
``pytest11``, named after this module), so a user's own tests can take ``broker`` and run on a
real local Apache Kafka (and Tansu). ``-p no:agent_events.broker.pytest_fixtures`` turns it
off; without the entry point, ``pytest_plugins = ["agent_events.broker.pytest_fixtures"]`` in a
top-level ``conftest.py`` loads it. Nothing in the product imports this module (or pytest).

Fixtures:

* ``broker`` (session): a :class:`RunningBroker`; every test that uses it (directly or through
  another fixture) runs once per kind in ``--broker-kinds`` (default: every kind this machine
  can run), with ids ``[kafka]`` / ``[tansu]``. The ``kafka`` kind is, in order:
  ``$KAFKA_BOOTSTRAP_SERVERS``, a Docker engine via testcontainers (only if one answers at
  once), or real Apache Kafka started from Maven jars. ``@pytest.mark.broker_kinds("kafka")``
  narrows a test to some kinds.
* ``broker_capabilities``: the broker's :class:`BrokerCapabilities` (probed once per broker).
  ``@pytest.mark.needs("transactions")`` skips a test, with the reason, on a broker that lacks it.
* ``kafka_cluster``: a three-node :class:`KafkaCluster`, started only if a selected test uses
  it; after each test every killed node is restarted, so tests stay independent.
* ``topic_name``: a fresh unique topic name per test; ``new_topic``: an async factory that
  creates a topic and waits until metadata shows all its partitions with leaders.

Brokers come from a :class:`BrokerPool` (private event loop in a thread, so independent of the
tests' loop scope); they are stopped at the end of the session (SIGKILLed at exit otherwise).
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from agent_events.agent_runtime.errors import ToolMissing
from agent_events.broker.broker_pool import BrokerPool, RunningBroker
from agent_events.broker.capabilities import FEATURES, BrokerCapabilities
from agent_events.broker.kafka_cluster import KafkaCluster
from agent_events.broker.selection import (
    BROKER_KINDS,
    docker_engine_answers,
    kind_unavailable_reason,
)
from agent_events.broker.topics import create_topic

__all__ = [
    "NewTopic",
    "RunningBroker",
    "broker",
    "broker_capabilities",
    "kafka_cluster",
    "new_topic",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_generate_tests",
    "pytest_terminal_summary",
    "topic_name",
]

_POOL_KEY = pytest.StashKey["BrokerPool"]()
_KINDS_KEY = pytest.StashKey[dict[str, str | None]]()


# -- hooks -----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--broker-kinds kafka,tansu``: the kinds every ``broker`` test runs on."""
    parser.addoption(
        "--broker-kinds",
        default=None,
        help="comma-separated broker kinds for integration tests (kafka, tansu); "
        "default: every kind this machine can run",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers this plugin reads, so ``--strict-markers`` accepts them."""
    for line in (
        "integration: needs a real Kafka broker",
        "broker_kinds(*kinds): run against each named broker kind (kafka, tansu)",
        "needs(feature): needs a broker feature; skipped, with the reason, where it is missing",
        "cluster: needs the 3-node Apache Kafka cluster (failover tests)",
    ):
        config.addinivalue_line("markers", line)


def _kind_availability(config: pytest.Config) -> dict[str, str | None]:
    """kind -> None if it can run here, else why not (computed once per session)."""
    if _KINDS_KEY not in config.stash:
        found: dict[str, str | None] = {}
        for kind in BROKER_KINDS:
            if kind == "kafka" and (
                os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or docker_engine_answers()
            ):
                found[kind] = None
            else:
                found[kind] = kind_unavailable_reason(kind)
        config.stash[_KINDS_KEY] = found
    return config.stash[_KINDS_KEY]


def _selected_kinds(config: pytest.Config) -> list[str]:
    option = config.getoption("--broker-kinds")
    available = _kind_availability(config)
    if option is None:
        return [kind for kind, reason in available.items() if reason is None]
    kinds = [k.strip() for k in str(option).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in BROKER_KINDS]
    if unknown:
        raise pytest.UsageError(
            f"--broker-kinds: unknown kind(s) {', '.join(unknown)}; use {', '.join(BROKER_KINDS)}"
        )
    return kinds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that needs this plugin's ``broker`` over the selected kinds.

    A test whose ``broker`` is another fixture (a user's own, or another plugin's) is left
    alone.
    """
    if "broker" not in metafunc.fixturenames or not _uses_this_broker(metafunc):
        return
    config = metafunc.config
    selected = kinds = _selected_kinds(config)
    marker = metafunc.definition.get_closest_marker("broker_kinds")
    why_none = "no selected broker kind can run here"
    if marker is not None:
        kinds = [k for k in kinds if k in marker.args]
        why_none = (
            f"runs only on {', '.join(marker.args)}; "
            f"selected kinds: {', '.join(selected) or 'none'}"
        )
    available = _kind_availability(config)
    params = [
        pytest.param(
            kind,
            id=kind,
            marks=[pytest.mark.skip(reason=f"{kind} broker unavailable: {available[kind]}")]
            if available.get(kind)
            else [],
        )
        for kind in kinds
    ]
    if not params:
        params = [
            pytest.param(
                "none",
                id="no-broker",
                marks=[pytest.mark.skip(reason=why_none)],
            )
        ]
    metafunc.parametrize("broker", params, indirect=True, scope="session")


def _uses_this_broker(metafunc: pytest.Metafunc) -> bool:
    # pytest has no public way to ask which fixture a name resolves to.
    definitions = getattr(metafunc, "_arg2fixturedefs", {}).get("broker") or ()
    if not definitions:
        return True
    return getattr(definitions[-1].func, "__module__", None) == __name__


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests in ``tests/integration`` ``integration``; ``kafka_cluster`` users ``cluster``."""
    for item in items:
        parts = item.path.parts
        if any(a == "tests" and b == "integration" for a, b in itertools.pairwise(parts)):
            item.add_marker(pytest.mark.integration)
        if "kafka_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List the brokers the session started and how long each took to become ready."""
    pool = config.stash.get(_POOL_KEY, None)
    if pool is not None and pool.timings:
        terminalreporter.write_sep("-", "brokers")
        for line in pool.timings:
            terminalreporter.write_line(line)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _broker_pool(pytestconfig: pytest.Config) -> Iterator[BrokerPool]:
    pool = BrokerPool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    pytestconfig.stash[_POOL_KEY] = pool
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, _broker_pool: BrokerPool) -> RunningBroker:
    """The broker of this parametrization (``[kafka]`` or ``[tansu]``), started once per session."""
    kind = getattr(request, "param", None)
    if kind not in BROKER_KINDS:
        pytest.skip("this test needs the broker fixture through pytest_generate_tests")
    try:
        return _broker_pool.get(kind)
    except ToolMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture
def broker_capabilities(broker: RunningBroker, _broker_pool: BrokerPool) -> BrokerCapabilities:
    """What the broker can do, probed once per broker and session."""
    return _broker_pool.capabilities(broker)


@pytest.fixture(autouse=True)
def _skip_unless_broker_has(request: pytest.FixtureRequest) -> None:
    """Honour ``@pytest.mark.needs(feature, ...)`` on tests that use ``broker``."""
    features = [f for marker in request.node.iter_markers("needs") for f in marker.args]
    if not features or "broker" not in request.fixturenames:
        return
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        pytest.fail(f"needs(): unknown feature(s) {unknown}; known: {', '.join(FEATURES)}")
    running: RunningBroker = request.getfixturevalue("broker")
    caps: BrokerCapabilities = request.getfixturevalue("broker_capabilities")
    for feature in features:
        if not caps.supports(feature):
            pytest.skip(f"{running.kind} broker lacks {FEATURES[feature]}: {caps.reason(feature)}")


@pytest.fixture
def kafka_cluster(_broker_pool: BrokerPool) -> Iterator[KafkaCluster]:
    """Three Kafka nodes (RF 3, min ISR 2), shared by the session; killed nodes restart after."""
    try:
        cluster = _broker_pool.cluster()
    except ToolMissing as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        _broker_pool.heal_cluster()


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test (or earlier run) uses: the test's name plus a random suffix."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-.")[:80]
    return f"{base}-{uuid.uuid4().hex[:8]}"


class NewTopic:
    """Async factory behind the ``new_topic`` fixture; call it inside the test's event loop."""

    def __init__(self, running: RunningBroker, base_name: str) -> None:
        self._broker = running
        self._base = base_name
        self._count = 0

    async def __call__(
        self,
        partitions: int = 3,
        *,
        name: str | None = None,
        replication_factor: int = 1,
        configs: Mapping[str, str] | None = None,
    ) -> str:
        """Create a topic (default: the test's ``topic_name``, then ``-2``, ``-3`` ...) and
        return its name once metadata lists all ``partitions`` with leaders."""
        self._count += 1
        if name is None:
            name = self._base if self._count == 1 else f"{self._base}-{self._count}"
        return await create_topic(
            self._broker.bootstrap_servers,
            name,
            partitions=partitions,
            replication_factor=replication_factor,
            configs=configs,
        )


@pytest.fixture
def new_topic(broker: RunningBroker, topic_name: str) -> NewTopic:
    """``await new_topic(partitions=3)`` -> the name of a topic created on ``broker``."""
    return NewTopic(broker, topic_name)
