"""The ``aggregate`` service is wired into the registry, the settings and the CLI."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent_events.cli import main
from agent_events.consumers.windows import WindowProcessor
from agent_events.services import SERVICES, build_service
from agent_events.services.aggregate import AggregateService
from agent_events.settings import load_settings


def test_aggregate_is_a_registered_service_that_builds_a_window_processor() -> None:
    assert "aggregate" in SERVICES
    settings = load_settings(
        {"aggregate": {"window": "hopping:60s/10s", "grace": "10s", "alert_threshold": 10}},
        dotenv=None,
    )
    registry = CollectorRegistry()
    service = build_service("aggregate", settings, registry)
    assert isinstance(service, AggregateService)
    member = service.member(settings.consumer_config(service.default_group))
    assert isinstance(member, WindowProcessor)
    assert str(member.config.definition) == "hopping:1m/10s"
    assert member.config.definition.grace_ms == 10_000
    assert member.config.alert_threshold == 10
    assert member.config.group_id == "agent-events-aggregate"
    names = {family.name for family in registry.collect()}
    assert {
        "agent_events_window_open_windows",
        "agent_events_window_late_events",
        "agent_events_window_last_restore_seconds",
    } <= names


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--window", "weekly:7d"], "unknown window kind"),
        (["--window", "hopping:60s"], "needs a step"),
        (["--grace", "soon"], "not an integer with a unit"),
        (["--key", "agent_id,model"], "key_fields must be some of"),
        (["--guarantee", "maybe"], "guarantee"),
    ],
)
def test_bad_window_options_exit_2_with_one_line(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["consume", "aggregate", "-b", "127.0.0.1:1", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err
