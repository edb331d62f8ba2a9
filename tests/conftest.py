"""The broker fixtures every integration test shares: the ``agent_events.broker.pytest_fixtures``
plugin, the same one users get from ``agent-events[testing]``.

``broker`` runs each test once per broker kind (``--broker-kinds kafka,tansu``), with
``broker_capabilities``, the ``needs(feature)`` marker, ``kafka_cluster`` (three nodes, started
only when used), ``topic_name`` and ``new_topic``. Tests under ``tests/integration`` are marked
``integration``. Naming the plugin here loads it when its entry point is not installed (a
source checkout); where it is, pytest sees the same name and loads it once.
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pytest

pytest_plugins = ["agent_events.broker.pytest_fixtures"]


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    """What one fault test injected and counted (``pytest -m faults`` prints them all)."""

    fault: str
    sent: int
    acknowledged: int
    consumed: int
    lost: int
    duplicated: int
    test: str


_FAULTS: list[FaultOutcome] = []

FaultLedger = Callable[..., None]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults-report",
        metavar="PATH",
        default=None,
        help="Write what each fault test counted (sent/acknowledged/consumed/lost/duplicated) "
        "to PATH as JSON.",
    )


@pytest.fixture
def fault_ledger(request: pytest.FixtureRequest) -> FaultLedger:
    """``fault_ledger(fault, sent=, acknowledged=, consumed=, lost=, duplicated=)``: one row of
    the fault report. Tests record before they assert, so a failing run still reports."""

    def record(
        fault: str, *, sent: int, acknowledged: int, consumed: int, lost: int, duplicated: int
    ) -> None:
        _FAULTS.append(
            FaultOutcome(fault, sent, acknowledged, consumed, lost, duplicated, request.node.nodeid)
        )

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _FAULTS:
        return
    columns = ("sent", "acknowledged", "consumed", "lost", "duplicated")
    terminalreporter.section("faults")
    width = max(len(f.fault) for f in _FAULTS)
    terminalreporter.write_line(f"{'fault':<{width}}  " + "  ".join(f"{c:>12}" for c in columns))
    for f in _FAULTS:
        counts = (f.sent, f.acknowledged, f.consumed, f.lost, f.duplicated)
        terminalreporter.write_line(f"{f.fault:<{width}}  " + "  ".join(f"{n:>12}" for n in counts))
    path = config.getoption("--faults-report")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump([asdict(f) for f in _FAULTS], out, indent=2)


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
