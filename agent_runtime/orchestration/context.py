"""The per-execution input of an agent: :class:`AgentContext`."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import JsonValue

__all__ = ["AgentContext"]


@dataclass(slots=True)
class AgentContext:
    """One request to an agent: the task, who asked, in which session.

    Middlewares receive the same object in turn and may change it (rewrite ``task``,
    add ``instructions``, put keys in ``metadata``); the LLM sees the result through
    :meth:`render_prompt`. ``metadata`` must hold JSON values: its keys are copied
    into the metadata of every event of the execution (so a handler can filter on,
    say, ``metadata["tier"]``), except ``model``, ``task`` and ``execution_id``, which
    the executor sets.
    """

    task: str
    user_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, JsonValue] = field(default_factory=dict)
    instructions: list[str] = field(default_factory=list)

    def render_prompt(self) -> str:
        """The text sent to the LLM: each instruction on its own line, then the task."""
        if not self.instructions:
            return self.task
        return "\n".join([*self.instructions, "", self.task])
