"""AlertingHandler and its sinks."""

from __future__ import annotations

import logging

import pytest

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import AlertingHandler, CollectingAlertSink, LoggingAlertSink


def error_event(message: str | None = "boom") -> SystemEvent:
    return SystemEvent(
        event_type=EventType.ERROR_OCCURRED,
        agent_id="chatbot",
        error_message=message,
        error_type="ValueError",
    )


def completed(ms: int | None) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED, agent_id="chatbot", execution_time_ms=ms
    )


async def test_error_event_on_bus_sends_a_high_alert() -> None:
    sink = CollectingAlertSink()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, AlertingHandler(sink))
        await bus.publish(error_event())
        await bus.join()
    [alert] = sink.alerts
    assert (alert.severity, alert.title) == ("high", "Agent Error: chatbot")
    assert "boom" in alert.message


async def test_slow_completion_sends_a_warning_alert() -> None:
    sink = CollectingAlertSink()
    await AlertingHandler(sink, slow_threshold_ms=1000)(completed(1500))
    [alert] = sink.alerts
    assert (alert.severity, alert.title, alert.message) == (
        "warning",
        "Slow Agent: chatbot",
        "Execution took 1500ms",
    )


async def test_completion_without_duration_sends_no_alert() -> None:
    sink = CollectingAlertSink()
    await AlertingHandler(sink).on_slow_execution(completed(None))
    assert list(sink.alerts) == []


async def test_completion_exactly_at_the_threshold_is_not_slow() -> None:
    sink = CollectingAlertSink()
    await AlertingHandler(sink, slow_threshold_ms=5000)(completed(5000))
    assert list(sink.alerts) == []


async def test_error_without_message_still_alerts() -> None:
    sink = CollectingAlertSink()
    await AlertingHandler(sink).on_error(error_event(None))
    assert sink.alerts[0].message == "ValueError: (no error message)"


async def test_collecting_sink_keeps_only_the_newest_alerts() -> None:
    sink = CollectingAlertSink(max_alerts=2)
    for i in range(5):
        await sink.send_alert("warning", f"t{i}", "m")
    assert [a.title for a in sink.alerts] == ["t3", "t4"]
    assert sink.total == 5


async def test_logging_sink_logs_high_severity_at_error(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.alerts")
    with caplog.at_level(logging.INFO, logger="test.alerts"):
        await LoggingAlertSink(logger).send_alert("high", "title", "message")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "[high] title: message"


def test_alert_service_without_send_alert_is_rejected() -> None:
    with pytest.raises(ConfigError, match="send_alert"):
        AlertingHandler(object())  # type: ignore[arg-type]


async def test_failing_sink_makes_the_handler_raise() -> None:
    class BrokenSink:
        async def send_alert(self, severity: str, title: str, message: str) -> None:
            raise ConnectionError("pager down")

    with pytest.raises(ConnectionError):
        await AlertingHandler(BrokenSink())(error_event())
