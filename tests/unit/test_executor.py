"""Behaviour of AgentExecutor: the events it publishes, its results, its failure handling."""

from __future__ import annotations

import asyncio

import pytest

from agent_events.agent_runtime.errors import AgentEventsError, ConfigError
from agent_events.agent_runtime.event_bus import EventBus, EventType, SystemEvent
from agent_events.agent_runtime.orchestration import (
    AgentConfig,
    AgentContext,
    AgentExecutor,
    EchoLLMClient,
    Middleware,
)

DEADLINE_S = 5.0
CONFIG = AgentConfig(name="my_agent", description="My Agent", model="gpt-3.5-turbo")


class Recorder:
    """Subscribed to ANY: every event the bus delivers, in order."""

    def __init__(self) -> None:
        self.events: list[SystemEvent] = []

    async def __call__(self, event: SystemEvent) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[EventType]:
        return [e.event_type for e in self.events]


class Instruct:
    """A middleware that adds an instruction and a metadata key."""

    def __init__(self, name: str, instruction: str) -> None:
        self.name = name
        self.instruction = instruction

    async def __call__(self, context: AgentContext) -> None:
        context.instructions.append(self.instruction)
        context.metadata[self.name] = True


class Boom:
    name = "boom"

    async def __call__(self, context: AgentContext) -> None:
        raise ValueError("middleware exploded")


class FailingLLM:
    async def complete(self, prompt: str, model: str) -> str:
        raise RuntimeError("model unavailable")


class PromptRecordingLLM:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def complete(self, prompt: str, model: str) -> str:
        self.calls.append((prompt, model))
        return "answer"


class HangingLLM:
    async def complete(self, prompt: str, model: str) -> str:
        await asyncio.Event().wait()
        return "never"


def make_context() -> AgentContext:
    return AgentContext(task="Hello", user_id="user_123", session_id="sess_abc")


async def run_on_bus(executor: AgentExecutor, context: AgentContext | None = None) -> Recorder:
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        executor.set_event_bus(bus)
        async with asyncio.timeout(DEADLINE_S):
            await executor.execute(context or make_context())
            await bus.join()
    return recorder


async def test_success_publishes_started_each_middleware_then_completed() -> None:
    executor = AgentExecutor(
        "my_agent", CONFIG, middlewares=[Instruct("a", "Be brief."), Instruct("b", "Be kind.")]
    )
    recorder = await run_on_bus(executor)
    assert recorder.types == [
        EventType.AGENT_STARTED,
        EventType.MIDDLEWARE_EXECUTED,
        EventType.MIDDLEWARE_EXECUTED,
        EventType.AGENT_COMPLETED,
    ]
    assert [e.metadata["middleware"] for e in recorder.events[1:3]] == ["a", "b"]


async def test_middleware_executed_events_carry_a_non_negative_duration() -> None:
    executor = AgentExecutor("my_agent", CONFIG, middlewares=[Instruct("a", "x")])
    recorder = await run_on_bus(executor)
    duration = recorder.events[1].metadata["duration_ms"]
    assert isinstance(duration, float)
    assert duration >= 0


async def test_middleware_failure_publishes_failed_then_error_and_skips_the_rest() -> None:
    llm = PromptRecordingLLM()
    after = Instruct("after", "never")
    executor = AgentExecutor(
        "my_agent", CONFIG, middlewares=[Instruct("first", "x"), Boom(), after], llm=llm
    )
    recorder = await run_on_bus(executor)
    assert recorder.types == [
        EventType.AGENT_STARTED,
        EventType.MIDDLEWARE_EXECUTED,
        EventType.MIDDLEWARE_FAILED,
        EventType.ERROR_OCCURRED,
    ]
    failed, error = recorder.events[2], recorder.events[3]
    assert failed.metadata["middleware"] == "boom"
    assert (failed.error_type, failed.error_message) == ("ValueError", "middleware exploded")
    assert (error.error_type, error.error_message) == ("ValueError", "middleware exploded")
    assert error.metadata["stage"] == "middleware"
    assert llm.calls == []


async def test_middleware_failure_returns_an_error_result_instead_of_raising() -> None:
    executor = AgentExecutor("my_agent", CONFIG, middlewares=[Boom()])
    result = await executor.execute(make_context())
    assert not result.success
    assert result.output is None
    assert (result.error_type, result.failed_stage, result.failed_middleware) == (
        "ValueError",
        "middleware",
        "boom",
    )
    assert isinstance(result.error, ValueError)


async def test_llm_failure_publishes_error_occurred_after_the_middlewares() -> None:
    executor = AgentExecutor("my_agent", CONFIG, middlewares=[Instruct("a", "x")], llm=FailingLLM())
    recorder = await run_on_bus(executor)
    assert recorder.types == [
        EventType.AGENT_STARTED,
        EventType.MIDDLEWARE_EXECUTED,
        EventType.ERROR_OCCURRED,
    ]
    error = recorder.events[-1]
    assert (error.error_type, error.error_message) == ("RuntimeError", "model unavailable")
    assert error.metadata["stage"] == "llm"
    assert error.execution_time_ms is not None
    assert error.execution_time_ms >= 0


async def test_llm_failure_returns_an_error_result_instead_of_raising() -> None:
    executor = AgentExecutor("my_agent", CONFIG, llm=FailingLLM())
    result = await executor.execute(make_context())
    assert (result.success, result.failed_stage, result.error_type) == (
        False,
        "llm",
        "RuntimeError",
    )


async def test_slow_llm_past_llm_timeout_ends_in_a_timeout_error_result() -> None:
    config = AgentConfig(name="slow", model="m", llm_timeout=0.05)
    executor = AgentExecutor("slow", config, llm=HangingLLM())
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ERROR_OCCURRED, recorder)
        executor.set_event_bus(bus)
        async with asyncio.timeout(DEADLINE_S):
            result = await executor.execute(make_context())
            await bus.join()
    assert result.error_type == "TimeoutError"
    assert "llm_timeout=0.05" in (result.error_message or "")
    assert [e.error_type for e in recorder.events] == ["TimeoutError"]


async def test_llm_returning_a_non_string_is_an_llm_failure() -> None:
    class NumberLLM:
        async def complete(self, prompt: str, model: str) -> str:
            return 42  # type: ignore[return-value]

    result = await AgentExecutor("a", CONFIG, llm=NumberLLM()).execute(make_context())
    assert (result.failed_stage, result.error_type) == ("llm", "TypeError")


async def test_completed_event_and_result_carry_a_non_negative_execution_time() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.AGENT_COMPLETED, recorder)
        executor.set_event_bus(bus)
        result = await executor.execute(make_context())
        await bus.join()
    (completed,) = recorder.events
    assert completed.execution_time_ms is not None
    assert completed.execution_time_ms >= 0
    assert result.execution_time_ms == completed.execution_time_ms


async def test_every_event_of_an_execution_shares_identity_and_execution_id() -> None:
    executor = AgentExecutor("my_agent", CONFIG, middlewares=[Instruct("a", "x")])
    recorder = await run_on_bus(executor)
    assert {(e.agent_id, e.user_id, e.session_id) for e in recorder.events} == {
        ("my_agent", "user_123", "sess_abc")
    }
    assert len({e.metadata["execution_id"] for e in recorder.events}) == 1
    assert {(e.metadata["model"], e.metadata["task"]) for e in recorder.events} == {
        ("gpt-3.5-turbo", "Hello")
    }


async def test_result_execution_id_matches_the_events() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        executor.set_event_bus(bus)
        result = await executor.execute(make_context())
        await bus.join()
    assert {e.metadata["execution_id"] for e in recorder.events} == {result.execution_id}


async def test_two_executions_get_different_execution_ids() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    first, second = await asyncio.gather(
        executor.execute(make_context()), executor.execute(make_context())
    )
    assert first.execution_id != second.execution_id


async def test_middleware_changes_to_the_context_reach_the_llm_and_the_events() -> None:
    llm = PromptRecordingLLM()
    executor = AgentExecutor(
        "my_agent", CONFIG, middlewares=[Instruct("tone", "Be brief.")], llm=llm
    )
    recorder = await run_on_bus(executor, AgentContext(task="Hello", metadata={"tier": "premium"}))
    assert llm.calls == [("Be brief.\n\nHello", "gpt-3.5-turbo")]
    completed = recorder.events[-1]
    assert (completed.metadata["tier"], completed.metadata["tone"]) == ("premium", True)


async def test_context_metadata_cannot_override_the_executor_keys() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    context = AgentContext(task="Hello", metadata={"model": "spoofed", "execution_id": "x"})
    recorder = await run_on_bus(executor, context)
    assert {e.metadata["model"] for e in recorder.events} == {"gpt-3.5-turbo"}
    assert "x" not in {e.metadata["execution_id"] for e in recorder.events}


async def test_handler_raising_on_agent_started_does_not_break_execute() -> None:
    async def broken(event: SystemEvent) -> None:
        raise RuntimeError("handler bug")

    executor = AgentExecutor("my_agent", CONFIG)
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.AGENT_STARTED, broken)
        await bus.subscribe(EventType.ANY, recorder)
        executor.set_event_bus(bus)
        result = await executor.execute(make_context())
        await bus.join()
    assert result.success
    assert recorder.types == [EventType.AGENT_STARTED, EventType.AGENT_COMPLETED]


async def test_without_a_bus_the_executor_runs_and_publishes_nothing() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        result = await executor.execute(make_context())
        await bus.join()
    assert result.success
    assert result.output == "[gpt-3.5-turbo] Hello"
    assert recorder.events == []


async def test_set_event_bus_none_stops_publishing() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    recorder = Recorder()
    async with EventBus() as bus:
        await bus.subscribe(EventType.ANY, recorder)
        executor.set_event_bus(bus)
        executor.set_event_bus(None)
        await executor.execute(make_context())
        await bus.join()
    assert recorder.events == []


async def test_execute_waits_until_the_bus_accepts_each_event() -> None:
    class GatedPublisher:
        def __init__(self) -> None:
            self.gate = asyncio.Event()
            self.published: list[EventType] = []

        async def publish(self, event: SystemEvent) -> None:
            await self.gate.wait()
            self.published.append(event.event_type)

    publisher = GatedPublisher()
    executor = AgentExecutor("my_agent", CONFIG, event_bus=publisher)
    task = asyncio.create_task(executor.execute(make_context()))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    assert publisher.published == []
    publisher.gate.set()
    async with asyncio.timeout(DEADLINE_S):
        result = await task
    assert result.success
    assert publisher.published == [EventType.AGENT_STARTED, EventType.AGENT_COMPLETED]


async def test_default_llm_is_deterministic() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    first = await executor.execute(make_context())
    second = await executor.execute(make_context())
    assert first.output == second.output == "[gpt-3.5-turbo] Hello"


async def test_echo_llm_cuts_long_prompts() -> None:
    output = await EchoLLMClient(max_chars=10).complete("a  b\n" * 20, "m")
    assert output == "[m] a b a b a…"


async def test_plain_async_function_works_as_a_middleware_named_after_it() -> None:
    async def add_tier(context: AgentContext) -> None:
        context.metadata["tier"] = "gold"

    executor = AgentExecutor("my_agent", CONFIG, middlewares=[add_tier])
    recorder = await run_on_bus(executor)
    assert recorder.events[1].metadata["middleware"].endswith("add_tier")  # type: ignore[union-attr]


def test_a_named_middleware_satisfies_the_middleware_protocol() -> None:
    assert isinstance(Instruct("a", "x"), Middleware)


async def test_execute_rejects_a_context_of_the_wrong_type() -> None:
    executor = AgentExecutor("my_agent", CONFIG)
    with pytest.raises(AgentEventsError, match="execute takes an AgentContext"):
        await executor.execute({"task": "Hello"})  # type: ignore[arg-type]


def test_agent_config_rejects_an_empty_model() -> None:
    with pytest.raises(ConfigError, match=r"AgentConfig\.model"):
        AgentConfig(name="a", model="")


def test_agent_config_rejects_a_non_positive_llm_timeout() -> None:
    with pytest.raises(ConfigError, match="llm_timeout"):
        AgentConfig(name="a", model="m", llm_timeout=0)


def test_executor_rejects_a_config_that_is_not_an_agent_config() -> None:
    with pytest.raises(ConfigError, match="AgentConfig"):
        AgentExecutor("a", {"name": "a", "model": "m"})  # type: ignore[arg-type]


async def test_middleware_putting_non_json_metadata_fails_with_a_clear_error() -> None:
    async def bad(context: AgentContext) -> None:
        context.metadata["obj"] = object()  # type: ignore[assignment]

    executor = AgentExecutor("my_agent", CONFIG, middlewares=[bad])
    async with EventBus() as bus:
        executor.set_event_bus(bus)
        with pytest.raises(AgentEventsError, match="must hold JSON values"):
            await executor.execute(make_context())


def test_orchestration_exports_every_name_in_all() -> None:
    import agent_events.agent_runtime.orchestration as orchestration
    import agent_events.agent_runtime.orchestration.executor as executor_module

    assert all(hasattr(orchestration, name) for name in orchestration.__all__)
    assert {"AgentExecutor", "AgentConfig", "AgentContext", "ExecutionResult"} <= set(
        executor_module.__all__
    )
    assert {"SessionManager", "Middleware", "LLMClient"} <= set(orchestration.__all__)
