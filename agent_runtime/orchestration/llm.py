"""The LLM seam of the executor: the :class:`LLMClient` protocol and an offline default.

The executor only needs "prompt in, text out", so any provider SDK fits behind a
two-line adapter, and tests plug in clients that fail or hang.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["EchoLLMClient", "LLMClient"]


@runtime_checkable
class LLMClient(Protocol):
    """Anything that turns a prompt into a completion for a named model.

    An exception raised here (or a non-``str`` return) ends the execution with an
    ``ERROR_OCCURRED`` event and an error result; it never escapes ``execute``.
    """

    async def complete(self, prompt: str, model: str) -> str: ...


class EchoLLMClient:
    """The default client: deterministic, offline, instant.

    It answers with the model name and the prompt's whitespace-collapsed text, cut to
    ``max_chars``, so an agent runs end to end (events, middlewares, results) with no
    network and the same input always gives the same output.
    """

    def __init__(self, max_chars: int = 200) -> None:
        self.max_chars = max_chars

    async def complete(self, prompt: str, model: str) -> str:
        summary = " ".join(prompt.split())
        if len(summary) > self.max_chars:
            summary = summary[: self.max_chars - 1] + "…"
        return f"[{model}] {summary}"
