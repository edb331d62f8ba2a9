"""What ``agent-events demo`` shows: a live rich layout on a terminal, plain lines otherwise.

Both render one :class:`DemoSnapshot`, taken a few times a second from the running parts:
the events the agents published (and the broker acknowledged), how far each service has
read, and what each computed (per-agent statistics, alerts, stored events).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.subscription import type_label

__all__ = ["DemoSnapshot", "ServiceView", "plain_progress", "plain_summary", "render_live"]


@dataclass(slots=True)
class ServiceView:
    """One in-process service: how many records it finished and what it computed."""

    name: str
    group: str
    done: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    metrics_url: str | None = None


@dataclass(slots=True)
class DemoSnapshot:
    """Everything the view shows at one moment."""

    broker: str
    topic: str
    partitions: int
    elapsed_s: float
    produced_by_type: dict[str, int]
    acknowledged: int
    failed: int
    executions: int
    recent: list[SystemEvent]
    services: list[ServiceView]
    alerts: list[str]
    stopping: str | None = None
    existing: int = 0
    """Records the topic held before the run; the services (new groups) read them too."""

    @property
    def produced(self) -> int:
        return sum(self.produced_by_type.values())

    @property
    def on_topic(self) -> int:
        """What each service has to read: the records from before plus this run's."""
        return self.existing + self.acknowledged


def _ms(value: object) -> str:
    return f"{float(value):.0f}" if isinstance(value, int | float) else "-"


def _header(s: DemoSnapshot) -> Text:
    text = Text()
    text.append("agent-events demo", style="bold")
    text.append(f"  {s.broker}  topic {s.topic} ({s.partitions} partitions)  ")
    text.append(f"{s.elapsed_s:.0f} s", style="cyan")
    text.append(f"  {s.stopping}" if s.stopping else "  Ctrl-C stops", style="dim")
    return text


def _flow_table(s: DemoSnapshot) -> Table:
    table = Table(title="events published by the agents", box=None, expand=True)
    table.add_column("event type")
    table.add_column("count", justify="right")
    for name, count in sorted(s.produced_by_type.items(), key=lambda kv: -kv[1]):
        table.add_row(name, str(count))
    table.add_row(Text("acknowledged by Kafka", style="bold"), str(s.acknowledged))
    if s.failed:
        table.add_row(Text("not acknowledged", style="red"), str(s.failed))
    if s.existing:
        table.add_row(Text("on the topic before this run", style="dim"), str(s.existing))
    return table


def _services_table(s: DemoSnapshot) -> Table:
    table = Table(title="consumer services (one group each)", box=None, expand=True)
    for column in ("service", "group", "read", "behind", "/metrics"):
        table.add_column(column, justify="right" if column in ("read", "behind") else "left")
    for service in s.services:
        behind = max(0, s.on_topic - service.done)
        table.add_row(
            service.name,
            service.group,
            str(service.done),
            Text(str(behind), style="green" if behind == 0 else "yellow"),
            service.metrics_url or "",
        )
    return table


def _metrics_table(summary: dict[str, Any]) -> Table:
    table = Table(title="metrics service: completions per agent (ms)", box=None, expand=True)
    for column in ("agent", "runs", "avg", "p50", "p95", "max"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for agent, stats in sorted((summary.get("durations_ms") or {}).items()):
        table.add_row(
            agent,
            str(stats.get("count", 0)),
            _ms(stats.get("avg")),
            _ms(stats.get("p50")),
            _ms(stats.get("p95")),
            _ms(stats.get("max")),
        )
    return table


def _alerts_panel(summary: dict[str, Any], alerts: list[str]) -> Panel:
    counts = ", ".join(
        f"{severity} {int(n)}"
        for by_severity in (summary.get("alerts") or {}).values()
        for severity, n in sorted(by_severity.items())
    )
    body = Text(f"delivered: {counts or 'none yet'}\n", style="bold")
    for line in alerts[-5:]:
        body.append(line + "\n", style="red" if line.startswith("[high]") else "yellow")
    threshold = summary.get("slow_threshold_ms")
    return Panel(body, title=f"alerting service (errors, runs over {_ms(threshold)} ms)")


def _recent_table(s: DemoSnapshot) -> Table:
    table = Table(title="latest events", box=None, expand=True)
    for column in ("type", "agent", "session", "ms", "error"):
        table.add_column(column)
    for event in reversed(s.recent):
        table.add_row(
            type_label(event.event_type),
            event.agent_id,
            (event.session_id or "")[:10],
            "" if event.execution_time_ms is None else str(event.execution_time_ms),
            Text(event.error_type or "", style="red"),
        )
    return table


def _summary_of(s: DemoSnapshot, name: str) -> dict[str, Any]:
    return next((v.summary for v in s.services if v.name == name), {})


def render_live(s: DemoSnapshot) -> RenderableType:
    """The terminal view: flow, services, and what each service computed."""
    parts: list[RenderableType] = [_header(s)]
    top = Table.grid(expand=True)
    top.add_column(ratio=1)
    top.add_column(ratio=2)
    top.add_row(_flow_table(s), _recent_table(s))
    parts.append(top)
    if s.services:
        parts.append(_services_table(s))
        store = _summary_of(s, "store")
        bottom = Table.grid(expand=True)
        bottom.add_column(ratio=1)
        bottom.add_column(ratio=1)
        bottom.add_row(_metrics_table(_summary_of(s, "metrics")), _alerts_panel(
            _summary_of(s, "alerting"), s.alerts))  # fmt: skip
        parts.append(bottom)
        parts.append(
            Text(
                f"store service: {store.get('stored', 0)} events stored, "
                f"{store.get('duplicates', 0)} duplicates skipped, "
                f"{store.get('sessions', 0)} sessions projected",
                style="bold",
            )
        )
    return Group(*parts)


def plain_progress(s: DemoSnapshot) -> str:
    """One progress line for a log or a pipe."""
    read = ", ".join(f"{v.name} {v.done}" for v in s.services)
    return f"[{s.elapsed_s:5.1f} s] published {s.produced}, acknowledged {s.acknowledged}" + (
        f"; services read: {read}" if read else ""
    )


def plain_summary(s: DemoSnapshot) -> Iterator[str]:
    """The final report, line by line: what flowed and what each service computed."""
    yield f"agent-events demo: {s.elapsed_s:.1f} s on {s.broker}, topic {s.topic}"
    by_type = ", ".join(f"{k} {v}" for k, v in sorted(s.produced_by_type.items()))
    yield (
        f"flowed: {s.executions} agent executions published {s.produced} events ({by_type}); "
        f"Kafka acknowledged {s.acknowledged}" + (f", {s.failed} failed" if s.failed else "")
    )
    if s.existing and s.services:
        yield (
            f"topic {s.topic} held {s.existing} events before this run; the services read "
            "them too (each is a new group, reading from the earliest offset)"
        )
    for service in s.services:
        yield (
            f"service {service.name} (group {service.group}): read {service.done} events "
            f"of the {s.on_topic} on the topic"
        )
    metrics = _summary_of(s, "metrics")
    for agent, stats in sorted((metrics.get("durations_ms") or {}).items()):
        yield (
            f"metrics: {agent}: {stats.get('count', 0)} runs, avg {_ms(stats.get('avg'))} ms, "
            f"p95 {_ms(stats.get('p95'))} ms, max {_ms(stats.get('max'))} ms"
        )
    if any(v.name == "alerting" for v in s.services):
        alerting = _summary_of(s, "alerting")
        counts = ", ".join(
            f"{severity} {int(n)}"
            for by_severity in (alerting.get("alerts") or {}).values()
            for severity, n in sorted(by_severity.items())
        )
        yield f"alerting: alerts delivered: {counts or 'none'}"
        for line in s.alerts[-3:]:
            yield f"alerting:   {line}"
    if any(v.name == "store" for v in s.services):
        store = _summary_of(s, "store")
        yield (
            f"store: {store.get('stored', 0)} events stored, "
            f"{store.get('duplicates', 0)} duplicates skipped, "
            f"{store.get('sessions', 0)} sessions projected"
        )
