"""Runs an agent and reports every step on the event bus: :class:`AgentExecutor`.

``AgentConfig`` and ``AgentContext`` are importable from here too, since the seed
imports the executor from this module and uses them alongside it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from pydantic import JsonValue

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.events import EventType
from agent_events.agent_runtime.orchestration.config import AgentConfig
from agent_events.agent_runtime.orchestration.context import AgentContext
from agent_events.agent_runtime.orchestration.llm import EchoLLMClient, LLMClient
from agent_events.agent_runtime.orchestration.middleware import MiddlewareFunc, MiddlewarePipeline
from agent_events.agent_runtime.orchestration.publishing import (
    EventPublisher,
    ExecutionEvents,
    describe_error,
)
from agent_events.agent_runtime.orchestration.result import ExecutionResult, FailedStage

__all__ = ["AgentConfig", "AgentContext", "AgentExecutor", "ExecutionResult"]

logger = logging.getLogger(__name__)


class AgentExecutor:
    """Executes one agent: middlewares, then the LLM, publishing each step.

    With an event bus set, one execution publishes, in this order:

    * success: ``AGENT_STARTED``, one ``MIDDLEWARE_EXECUTED`` per middleware,
      ``AGENT_COMPLETED`` (with ``execution_time_ms``);
    * a middleware raised: ``AGENT_STARTED``, ``MIDDLEWARE_EXECUTED`` for those
      before it, ``MIDDLEWARE_FAILED``, ``ERROR_OCCURRED``; later middlewares and
      the LLM do not run;
    * the LLM raised or timed out: ``AGENT_STARTED``, the ``MIDDLEWARE_EXECUTED``
      events, ``ERROR_OCCURRED``.

    ``ERROR_OCCURRED`` carries ``error_type`` (the exception's class name),
    ``error_message`` and ``execution_time_ms``. Each publish is awaited, so a full
    bus slows the agent down instead of growing a queue. Without a bus nothing is
    published. A failing middleware, LLM or event handler never makes ``execute``
    raise; a wrong argument (``ConfigError``), an event that cannot be built
    (``InvalidEventError``), a stopped bus (``BusClosed``) and cancellation do.
    """

    def __init__(
        self,
        agent_id: str,
        config: AgentConfig,
        middlewares: Sequence[MiddlewareFunc] = (),
        llm: LLMClient | None = None,
        event_bus: EventPublisher | None = None,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id:
            raise ConfigError(f"agent_id must be a non-empty string, got {agent_id!r}")
        if not isinstance(config, AgentConfig):
            raise ConfigError(
                f"config must be an AgentConfig(name=..., model=...), got {type(config).__name__}"
            )
        if llm is not None and not callable(getattr(llm, "complete", None)):
            raise ConfigError(f"llm must have an async complete(prompt, model) method, got {llm!r}")
        self.agent_id = agent_id
        self.config = config
        self.llm: LLMClient = llm if llm is not None else EchoLLMClient()
        self._pipeline = MiddlewarePipeline(middlewares)
        self._bus: EventPublisher | None = None
        self.set_event_bus(event_bus)

    @property
    def middleware_names(self) -> tuple[str, ...]:
        return self._pipeline.names

    @property
    def event_bus(self) -> EventPublisher | None:
        return self._bus

    def set_event_bus(self, bus: EventPublisher | None) -> None:
        """Publish later executions' events on ``bus`` (``None``: publish nothing)."""
        if bus is not None and not callable(getattr(bus, "publish", None)):
            raise ConfigError(f"the event bus must have an async publish(event), got {bus!r}")
        self._bus = bus

    async def execute(self, context: AgentContext) -> ExecutionResult:
        """Run the agent on ``context`` and return its result; see the class for events.

        Steps: 1. publish ``AGENT_STARTED``; 2. run the middlewares in order (each may
        change ``context``); 3. call the LLM with ``context.render_prompt()``;
        4. publish ``AGENT_COMPLETED``, or ``ERROR_OCCURRED`` at the first failure;
        5. return the result. ``execution_time_ms`` runs from the call to the result.
        """
        if not isinstance(context, AgentContext):
            raise ConfigError(
                "execute takes an AgentContext(task=..., user_id=..., session_id=...), "
                f"got {type(context).__name__}"
            )
        if not isinstance(context.task, str):
            raise ConfigError(f"context.task must be a string, got {type(context.task).__name__}")
        started = time.perf_counter()
        model = self.config.model
        events = ExecutionEvents(self._bus, agent_id=self.agent_id, model=model, context=context)
        await events.emit(EventType.AGENT_STARTED)

        failed = await self._pipeline.run(context, events)
        if failed is not None:
            return await self._fail(
                events, started, failed.error, stage="middleware", middleware=failed.name
            )

        try:
            output = await self._complete(context.render_prompt(), model)
        except Exception as exc:  # noqa: BLE001 (any LLM failure ends the run as a result)
            return await self._fail(events, started, exc, stage="llm")

        elapsed = _elapsed_ms(started)
        await events.emit(
            EventType.AGENT_COMPLETED,
            extra={"output_chars": len(output)},
            execution_time_ms=elapsed,
        )
        return ExecutionResult(
            execution_id=events.execution_id,
            agent_id=self.agent_id,
            output=output,
            execution_time_ms=elapsed,
        )

    async def _complete(self, prompt: str, model: str) -> str:
        timeout = self.config.llm_timeout
        try:
            async with asyncio.timeout(timeout):
                output = await self.llm.complete(prompt, model)
        except TimeoutError as exc:
            if timeout is None:
                raise
            raise TimeoutError(f"the LLM did not answer within llm_timeout={timeout}s") from exc
        if not isinstance(output, str):
            raise TypeError(
                f"{type(self.llm).__name__}.complete must return str, got {type(output).__name__}"
            )
        return output

    async def _fail(
        self,
        events: ExecutionEvents,
        started: float,
        error: Exception,
        *,
        stage: FailedStage,
        middleware: str | None = None,
    ) -> ExecutionResult:
        elapsed = _elapsed_ms(started)
        logger.warning(
            "agent %s execution %s failed in %s%s: %s: %s",
            self.agent_id,
            events.execution_id,
            stage,
            f" {middleware}" if middleware else "",
            type(error).__name__,
            describe_error(error),
            exc_info=error,
        )
        extra: dict[str, JsonValue] = {"stage": stage}
        if middleware is not None:
            extra["middleware"] = middleware
        await events.emit(
            EventType.ERROR_OCCURRED, extra=extra, execution_time_ms=elapsed, error=error
        )
        return ExecutionResult(
            execution_id=events.execution_id,
            agent_id=self.agent_id,
            output=None,
            execution_time_ms=elapsed,
            error_type=type(error).__name__,
            error_message=describe_error(error),
            failed_stage=stage,
            failed_middleware=middleware,
            error=error,
        )


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))
