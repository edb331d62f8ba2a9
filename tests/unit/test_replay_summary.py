"""The last line of ``agent-events replay``: counts in words that fit them."""

from __future__ import annotations

from agent_events.cli.replay import _summary
from agent_events.consumers.replay import JsonLinesSink, ReplayPlan, ReplayReport, ReplaySpec

PLAN = ReplayPlan(ReplaySpec("agent.events", count=1), (), 6)


def test_one_event_is_singular_and_a_short_replay_shows_no_rate() -> None:
    line = _summary(ReplayReport(PLAN, read=1, delivered=1, elapsed_s=0.05), JsonLinesSink("-"))
    assert line.startswith("replayed 1 event (1 read) from agent.events into standard output")
    assert "/s" not in line


def test_a_long_replay_shows_its_read_rate() -> None:
    report = ReplayReport(PLAN, read=5000, delivered=4000, elapsed_s=2.0, stopped_by="count")
    line = _summary(report, JsonLinesSink("-"))
    assert line.startswith("replayed 4000 events (5000 read)")
    assert "(2,500 records read/s)" in line
    assert line.endswith("(stopped after --count 1)")
