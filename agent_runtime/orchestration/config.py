"""What a user configures about an agent: :class:`AgentConfig`.

A small immutable object validated when it is built, so a typo in a setting fails at
start-up with :class:`~agent_runtime.errors.ConfigError` rather than mid-execution.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_events.agent_runtime.errors import ConfigError

__all__ = ["AgentConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """The static settings of one agent, as the seed's ``AgentConfig(name=..., model=...)``.

    ``llm_timeout`` (seconds, ``None``: no limit) bounds each LLM call; a call that
    runs past it ends the execution with an error result of type ``TimeoutError``.
    """

    name: str
    model: str
    description: str = ""
    llm_timeout: float | None = None

    def __post_init__(self) -> None:
        for field_name in ("name", "model"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"AgentConfig.{field_name} must be a non-empty string, got {value!r}"
                )
        if not isinstance(self.description, str):
            raise ConfigError(f"AgentConfig.description must be a string, got {self.description!r}")
        timeout = self.llm_timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigError(
                f"AgentConfig.llm_timeout must be a positive number of seconds or None, "
                f"got {timeout!r}"
            )
