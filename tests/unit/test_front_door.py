"""`agent_events` is the one front door: a sorted, complete `__all__` that every example uses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import agent_events

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert agent_events.__all__ == sorted(agent_events.__all__)
    missing = [name for name in agent_events.__all__ if not hasattr(agent_events, name)]
    assert not missing


def test_the_user_facing_types_are_at_the_front_door() -> None:
    needed = {
        "App", "EventBus", "SystemEvent", "EventType", "AgentExecutor", "KafkaEventProducer",
        "ProducerConfig", "ConsumerService", "ConsumerConfig", "WindowProcessor",
        "WindowedAggregationConfig", "TumblingWindow", "replay", "redrive", "AgentEventsError",
        "ConfigError", "DecodeError", "BrokerUnavailable", "QueueFull", "HandlerTimeout",
    }  # fmt: skip
    assert needed <= set(agent_events.__all__)


def test_every_error_at_the_front_door_derives_from_the_one_base() -> None:
    errors = [
        value
        for name in agent_events.__all__
        if isinstance(value := getattr(agent_events, name), type) and issubclass(value, Exception)
    ]
    assert len(errors) >= 10
    assert all(issubclass(error, agent_events.AgentEventsError) for error in errors)


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def _imported_from_agent_events(code: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module == "agent_events":
            names.update(alias.name for alias in node.names)
    return names


def test_every_name_the_docs_import_from_the_front_door_exists() -> None:
    used = {
        name
        for doc in DOCS
        for code in _python_blocks(doc)
        for name in _imported_from_agent_events(code)
    }
    assert used, "the docs' examples import from agent_events"
    assert used <= set(agent_events.__all__), used - set(agent_events.__all__)
