"""agent_runtime.orchestration: running agents and reporting them on the event bus.

:class:`AgentExecutor` runs middlewares and an LLM call for an :class:`AgentContext`
and publishes the seed's lifecycle events; :class:`SessionManager` publishes the
session and checkpoint events.
"""

from agent_events.agent_runtime.orchestration.config import AgentConfig
from agent_events.agent_runtime.orchestration.context import AgentContext
from agent_events.agent_runtime.orchestration.executor import AgentExecutor
from agent_events.agent_runtime.orchestration.llm import EchoLLMClient, LLMClient
from agent_events.agent_runtime.orchestration.middleware import (
    FailedMiddleware,
    Middleware,
    MiddlewareFunc,
    MiddlewarePipeline,
    middleware_name,
)
from agent_events.agent_runtime.orchestration.publishing import EventPublisher, ExecutionEvents
from agent_events.agent_runtime.orchestration.result import ExecutionResult, FailedStage
from agent_events.agent_runtime.orchestration.sessions import (
    Checkpoint,
    ExpiryReason,
    Session,
    SessionManager,
)

__all__ = [
    "AgentConfig",
    "AgentContext",
    "AgentExecutor",
    "Checkpoint",
    "EchoLLMClient",
    "EventPublisher",
    "ExecutionEvents",
    "ExecutionResult",
    "ExpiryReason",
    "FailedMiddleware",
    "FailedStage",
    "LLMClient",
    "Middleware",
    "MiddlewareFunc",
    "MiddlewarePipeline",
    "Session",
    "SessionManager",
    "middleware_name",
]
