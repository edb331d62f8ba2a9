"""EventTracer: per-session lookup and bounded memory."""

from __future__ import annotations

from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.consumers.handlers import EventTracer


def event(session: str | None, event_type: EventType = EventType.AGENT_STARTED) -> SystemEvent:
    return SystemEvent(
        event_type=event_type,
        agent_id="a",
        session_id=session,
        error_message="boom" if event_type is EventType.ERROR_OCCURRED else None,
        error_type="ValueError" if event_type is EventType.ERROR_OCCURRED else None,
    )


async def test_events_of_a_session_can_be_looked_up() -> None:
    tracer = EventTracer()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, tracer.trace)
        for session in ("s1", "s2", "s1", None):
            await bus.publish(event(session))
        await bus.join()
    assert [r["session_id"] for r in tracer.get_events_for_session("s1")] == ["s1", "s1"]
    assert len(tracer.get_trace_log()) == 4
    assert tracer.get_events_for_session("unknown") == []


async def test_error_details_are_part_of_the_record() -> None:
    tracer = EventTracer()
    await tracer(event("s1", EventType.ERROR_OCCURRED))
    assert tracer.get_trace_log()[0]["error"] == {"message": "boom", "type": "ValueError"}


async def test_trace_log_keeps_only_the_newest_events() -> None:
    tracer = EventTracer(max_events=3)
    events = [event("s") for _ in range(10)]
    for e in events:
        await tracer(e)
    assert [r["event_id"] for r in tracer.get_trace_log()] == [str(e.event_id) for e in events[-3:]]


async def test_sessions_beyond_max_sessions_forget_the_least_recent() -> None:
    tracer = EventTracer(max_sessions=2)
    for session in ("s1", "s2", "s1", "s3"):
        await tracer(event(session))
    assert tracer.session_count == 2
    assert tracer.get_events_for_session("s2") == []
    assert len(tracer.get_events_for_session("s1")) == 2


async def test_each_session_keeps_only_its_newest_events() -> None:
    tracer = EventTracer(max_events_per_session=2)
    for _ in range(5):
        await tracer(event("s1"))
    assert len(tracer.get_events_for_session("s1")) == 2
