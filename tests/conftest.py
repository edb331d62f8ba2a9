"""Broker fixtures shared by every integration test (see agent_events.broker.pytest_fixtures).

``broker`` runs each test once per broker kind (``--broker-kinds kafka,tansu``), with
``broker_capabilities``, the ``needs(feature)`` marker, ``kafka_cluster`` (three nodes, started
only when used), ``topic_name`` and ``new_topic``. Tests under ``tests/integration`` are marked
``integration``.
"""

from agent_events.broker.pytest_fixtures import (
    _broker_pool,
    _skip_unless_broker_has,
    broker,
    broker_capabilities,
    kafka_cluster,
    new_topic,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_generate_tests,
    pytest_terminal_summary,
    topic_name,
)

__all__ = [
    "_broker_pool",
    "_skip_unless_broker_has",
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
