"""LoggingHandler: structured records for every event, details for errors."""

from __future__ import annotations

import logging

import pytest

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import LoggingHandler

LOGGER = "test.events"


async def test_event_is_logged_with_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    event = SystemEvent(
        event_type=EventType.AGENT_STARTED, agent_id="chatbot", user_id="u1", session_id="s1"
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        async with EventBus() as bus:
            await bus.subscribe(EventType.ANY, LoggingHandler(logging.getLogger(LOGGER)))
            await bus.publish(event)
            await bus.join()
    [record] = caplog.records
    assert record.getMessage() == "Event: agent_started, Agent: chatbot, User: u1"
    assert record.__dict__["session_id"] == "s1"
    assert record.__dict__["event_id"] == str(event.event_id)


async def test_error_event_is_logged_once_at_error_with_its_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = SystemEvent(
        event_type=EventType.ERROR_OCCURRED,
        agent_id="chatbot",
        error_message="boom",
        error_type="ValueError",
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await LoggingHandler(logging.getLogger(LOGGER))(event)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Error in chatbot: boom"
    assert record.__dict__["error_type"] == "ValueError"


async def test_log_error_ignores_other_events(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await LoggingHandler(logging.getLogger(LOGGER)).log_error(
            SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a")
        )
    assert caplog.records == []
