"""Alerts on errors and slow executions (the seed's ``AlertingHandler``), and alert sinks.

Fix of the seed: ``event.execution_time_ms > 5000`` raised ``TypeError`` for a
completion without a duration; such an event is simply not slow. An error event
without ``error_message`` still alerts, with a placeholder message.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.lru import require_positive_int

__all__ = [
    "Alert",
    "AlertSink",
    "AlertingHandler",
    "CollectingAlertSink",
    "LoggingAlertSink",
]


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go: a pager, a chat webhook, a log. The seed's ``alert_service``."""

    async def send_alert(self, severity: str, title: str, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as a sink received it."""

    severity: str
    title: str
    message: str
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))


_LEVELS = {"critical": logging.CRITICAL, "high": logging.ERROR, "error": logging.ERROR}


class LoggingAlertSink:
    """Writes alerts to a logger: ``critical`` -> CRITICAL, ``high``/``error`` -> ERROR, else WARNING."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("agent_events.alerts")

    async def send_alert(self, severity: str, title: str, message: str) -> None:
        self.logger.log(
            _LEVELS.get(severity, logging.WARNING),
            "[%s] %s: %s",
            severity,
            title,
            message,
            extra={"alert_severity": severity, "alert_title": title},
        )


class CollectingAlertSink:
    """Keeps the last ``max_alerts`` alerts in memory: for tests, demos and dashboards."""

    def __init__(self, max_alerts: int = 1000) -> None:
        self.alerts: deque[Alert] = deque(maxlen=require_positive_int("max_alerts", max_alerts))
        self.total = 0

    async def send_alert(self, severity: str, title: str, message: str) -> None:
        self.alerts.append(Alert(severity, title, message))
        self.total += 1


class AlertingHandler:
    """Sends an alert for every error event and for every slow completion.

    ``slow_threshold_ms``: a completion strictly slower than this alerts with
    severity ``warning``; errors alert with severity ``high``. A sink that raises
    makes the handler raise, so a consumer service retries the record.
    """

    def __init__(self, alert_service: AlertSink, slow_threshold_ms: float = 5000) -> None:
        if not isinstance(alert_service, AlertSink):
            raise ConfigError(
                f"alert_service must have an async send_alert(severity, title, message), "
                f"got {alert_service!r}"
            )
        if slow_threshold_ms < 0:
            raise ConfigError(f"slow_threshold_ms must be >= 0, got {slow_threshold_ms!r}")
        self.alert_service = alert_service
        self.slow_threshold_ms = slow_threshold_ms

    async def on_error(self, event: SystemEvent) -> None:
        """Alert on ``ERROR_OCCURRED``; ignores other events."""
        if event.event_type is EventType.ERROR_OCCURRED:
            detail = event.error_message or "(no error message)"
            if event.error_type:
                detail = f"{event.error_type}: {detail}"
            await self.alert_service.send_alert(
                severity="high",
                title=f"Agent Error: {event.agent_id}",
                message=detail,
            )

    async def on_slow_execution(self, event: SystemEvent) -> None:
        """Alert on an ``AGENT_COMPLETED`` slower than the threshold; ignores other events."""
        duration = event.execution_time_ms
        if (
            event.event_type is EventType.AGENT_COMPLETED
            and duration is not None
            and duration > self.slow_threshold_ms
        ):
            await self.alert_service.send_alert(
                severity="warning",
                title=f"Slow Agent: {event.agent_id}",
                message=f"Execution took {duration}ms",
            )

    async def __call__(self, event: SystemEvent) -> None:
        """Both checks: subscribe this one object to ``EventType.ANY``."""
        await self.on_error(event)
        await self.on_slow_execution(event)
