"""The broker fixtures every integration test shares: the ``agent_events.broker.pytest_fixtures``
plugin, the same one users get from ``agent-events[testing]``.

``broker`` runs each test once per broker kind (``--broker-kinds kafka,tansu``), with
``broker_capabilities``, the ``needs(feature)`` marker, ``kafka_cluster`` (three nodes, started
only when used), ``topic_name`` and ``new_topic``. Tests under ``tests/integration`` are marked
``integration``. Naming the plugin here loads it when its entry point is not installed (a
source checkout); where it is, pytest sees the same name and loads it once.
"""

from typing import Any

import pytest

pytest_plugins = ["agent_events.broker.pytest_fixtures"]


@pytest.fixture
def finished_spans() -> Any:
    """Spans recorded by an SDK provider (installed once per process: OpenTelemetry's rule)."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
