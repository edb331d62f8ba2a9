"""What :meth:`AgentExecutor.execute` returns: :class:`ExecutionResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = ["ExecutionResult", "FailedStage"]

FailedStage: TypeAlias = Literal["middleware", "llm"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult:
    """The outcome of one execution, success or failure.

    A failure is reported here (and by an ``ERROR_OCCURRED`` event), not raised:
    ``error_type``/``error_message`` match the event's fields, ``failed_stage`` says
    whether a middleware or the LLM failed, and ``error`` keeps the exception itself.
    """

    execution_id: str
    agent_id: str
    output: str | None
    execution_time_ms: int
    error_type: str | None = None
    error_message: str | None = None
    failed_stage: FailedStage | None = None
    failed_middleware: str | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def success(self) -> bool:
        return self.error_type is None
