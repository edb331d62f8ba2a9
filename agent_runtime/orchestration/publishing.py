"""How an execution reports itself: :class:`EventPublisher` and :class:`ExecutionEvents`.

Every event of one execution carries the same ``agent_id``, ``user_id``,
``session_id`` and ``metadata["execution_id"]``, so a consumer can stitch an
execution together from any topic partition or handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable
from uuid import uuid4

from pydantic import JsonValue, ValidationError

from agent_events.agent_runtime.errors import InvalidEventError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.orchestration.context import AgentContext

__all__ = ["EventPublisher", "ExecutionEvents", "describe_error"]


@runtime_checkable
class EventPublisher(Protocol):
    """Where executor and session events go: an ``EventBus`` or anything with its ``publish``."""

    async def publish(self, event: SystemEvent) -> None: ...


class ExecutionEvents:
    """Builds and publishes the events of one execution; does nothing without a publisher.

    Identity (agent, user, session, execution id, model) is fixed when the execution
    starts, so a middleware that edits ``context.session_id`` cannot split one
    execution across sessions. ``task`` and the context's metadata are read when
    each event is published, so events show what middlewares changed.
    """

    def __init__(
        self,
        publisher: EventPublisher | None,
        *,
        agent_id: str,
        model: str,
        context: AgentContext,
    ) -> None:
        self.publisher = publisher
        self.agent_id = agent_id
        self.model = model
        self.context = context
        self.user_id = context.user_id
        self.session_id = context.session_id
        self.execution_id = uuid4().hex

    async def emit(
        self,
        event_type: EventType,
        *,
        extra: Mapping[str, JsonValue] | None = None,
        execution_time_ms: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Publish one event, waiting while the publisher's queue is full (backpressure)."""
        if self.publisher is None:
            return
        metadata: dict[str, JsonValue] = {
            **self.context.metadata,
            "model": self.model,
            "task": self.context.task,
            "execution_id": self.execution_id,
        }
        if extra:
            metadata.update(extra)
        try:
            event = SystemEvent(
                event_type=event_type,
                agent_id=self.agent_id,
                user_id=self.user_id,
                session_id=self.session_id,
                metadata=metadata,
                execution_time_ms=execution_time_ms,
                error_type=type(error).__name__ if error is not None else None,
                error_message=describe_error(error) if error is not None else None,
            )
        except ValidationError as exc:
            raise InvalidEventError(
                f"cannot build the {event_type.value} event of agent {self.agent_id!r}: "
                f"context.metadata and context.task must hold JSON values ({exc.error_count()} "
                "problem(s); first: "
                f"{exc.errors()[0]['msg']})"
            ) from exc
        await self.publisher.publish(event)

    async def middleware_executed(self, name: str, duration_ms: float) -> None:
        await self.emit(
            EventType.MIDDLEWARE_EXECUTED,
            extra={"middleware": name, "duration_ms": duration_ms},
        )

    async def middleware_failed(self, name: str, duration_ms: float, error: Exception) -> None:
        await self.emit(
            EventType.MIDDLEWARE_FAILED,
            extra={"middleware": name, "duration_ms": duration_ms},
            error=error,
        )


def describe_error(error: BaseException) -> str:
    """The exception's message, or its class name when it has none (``TimeoutError()``)."""
    return str(error) or type(error).__name__
