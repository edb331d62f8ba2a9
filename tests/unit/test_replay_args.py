"""Replay and group-reset arguments: parsed and checked before anything connects (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_events.agent_runtime.errors import ConfigError
from agent_events.cli import main as cli_main
from agent_events.cli._common import format_columns
from agent_events.cli.groups import parse_topic_scope, strategy_from_flags
from agent_events.cli.replay import parse_store, spec_from_flags
from agent_events.consumers.groups import ResetStrategy
from agent_events.consumers.replay import (
    FromBeginning,
    FromOffsets,
    FromShift,
    FromTime,
    ReplaySpec,
    UntilEnd,
    UntilOffsets,
    UntilTime,
    parse_moment,
    parse_offsets,
)

# A closed port: any test that reached the broker would fail with "unavailable", not pass.
NO_BROKER = ["--bootstrap-servers", "127.0.0.1:9", "--connect-timeout", "0.5"]


def test_offsets_parse_as_one_for_all_or_per_partition() -> None:
    assert parse_offsets(["100"], "--from-offset") == 100
    assert parse_offsets(["0:100", "2:7"], "--from-offset") == {0: 100, 2: 7}


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        (["x"], "not a whole number"),
        (["-3"], "must be >= 0"),
        (["0:1", "0:2"], "given twice"),
        (["0:1", "5"], "PARTITION:OFFSET"),
        (["a:1"], "not a whole number"),
    ],
)
def test_bad_offsets_are_config_errors(values: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_offsets(values, "--from-offset")


def test_times_with_a_zone_keep_it_and_naive_times_are_local() -> None:
    assert parse_moment("2026-01-02T03:04:05Z", "--from-time") == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    naive = parse_moment("2026-01-02T03:04:05", "--from-time")
    assert naive.tzinfo is not None
    assert naive == datetime(2026, 1, 2, 3, 4, 5).astimezone()


def test_a_time_that_is_not_iso_8601_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_moment("yesterday", "--from-time")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:events.db", "sqlite:///events.db"),
        ("sqlite:/tmp/events.db", "sqlite:////tmp/events.db"),
        ("sqlite:///events.db", "sqlite:///events.db"),
        ("postgresql://u:p@127.0.0.1:5432/db", "postgresql://u:p@127.0.0.1:5432/db"),
    ],
)
def test_store_urls_are_the_store_services(url: str, expected: str) -> None:
    assert parse_store(url) == expected


def test_an_unknown_store_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_store("mysql://somewhere/db")


def test_flags_build_the_spec_they_describe() -> None:
    spec = spec_from_flags(
        topic="agent.events",
        from_offset=["0:5"],
        until_offset=["0:9"],
        session=None,
        types=["agent_completed"],
        agents=["a1", "a2"],
        count=3,
    )
    assert spec.start == FromOffsets({0: 5})
    assert spec.stop == UntilOffsets({0: 9})
    assert spec.event_types == frozenset({"agent_completed"})
    assert spec.agent_ids == frozenset({"a1", "a2"})
    assert spec.count == 3
    defaults = spec_from_flags(topic="t")
    assert defaults.start == FromBeginning()
    assert defaults.stop == UntilEnd()
    assert spec_from_flags(topic="t", shift=-5).start == FromShift(5)
    timed = spec_from_flags(
        topic="t", from_time="2026-01-01T00:00:00Z", until_time="2026-01-02T00:00:00Z"
    )
    assert isinstance(timed.start, FromTime)
    assert isinstance(timed.stop, UntilTime)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"from_beginning": True, "shift": -1}, "conflict"),
        ({"from_offset": ["1"], "from_time": "2026-01-01T00:00:00Z"}, "conflict"),
        ({"until_end": True, "until_offset": ["4"]}, "conflict"),
        ({"shift": 5}, "--shift -N"),
        ({"from_time": "2999-01-01T00:00:00Z"}, "in the future"),
        (
            {"from_time": "2026-01-02T00:00:00Z", "until_time": "2026-01-01T00:00:00Z"},
            "not after",
        ),
        ({"from_offset": ["0:9"], "until_offset": ["0:4"]}, "before start offset"),
        ({"from_offset": ["3:1"], "partitions": [0, 1]}, "not among the chosen"),
        ({"session": ""}, "empty"),
    ],
)
def test_contradictory_or_impossible_flags_are_config_errors(
    flags: dict[str, object], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        spec_from_flags(topic="t", **flags)  # type: ignore[arg-type]


def test_spec_values_are_checked_when_built_in_code() -> None:
    with pytest.raises(ConfigError):
        ReplaySpec("")
    with pytest.raises(ConfigError):
        ReplaySpec("t", count=0)
    with pytest.raises(ConfigError):
        FromShift(0)
    with pytest.raises(ConfigError, match="timezone"):
        FromTime(datetime(2026, 1, 1))
    assert ReplaySpec("t", partitions=(2, 0, 2)).partitions == (0, 2)


def test_topic_scopes_parse_like_kafka_consumer_groups() -> None:
    assert parse_topic_scope(["a", "b:2,0"]) == {"a": None, "b": [0, 2]}
    for bad in (["a:"], ["a:x"], ["a", "a"], [":1"]):
        with pytest.raises(ConfigError):
            parse_topic_scope(bad)


def test_exactly_one_reset_strategy_is_taken() -> None:
    assert strategy_from_flags(to_earliest=True) == ResetStrategy("earliest")
    assert strategy_from_flags(shift_by=-3) == ResetStrategy("shift", shift=-3)
    assert strategy_from_flags(to_offset=7) == ResetStrategy("offset", offset=7)
    with pytest.raises(ConfigError, match="missing"):
        strategy_from_flags()
    with pytest.raises(ConfigError, match="conflict"):
        strategy_from_flags(to_latest=True, to_offset=1)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with pytest.raises(ConfigError, match="in the future"):
        strategy_from_flags(to_datetime=future)


def test_columns_are_aligned_and_never_truncated() -> None:
    text = format_columns(("GROUP", "LAG"), [("a-very-long-group-name", None), ("g", 12)])
    assert text.splitlines() == [
        "GROUP                   LAG",
        "a-very-long-group-name  -",
        "g                       12",
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["replay", "-t", "t", "--from-beginning", "--from-offset", "0:1"], "conflict"),
        (["replay", "-t", "t", "--to-file", "x.jsonl", "--to-topic", "u"], "conflict"),
        (["replay", "-t", "t", "--to-topic", "t"], "into itself"),
        (["replay", "-t", "t", "--shift", "3"], "--shift -N"),
        (["replay", "-t", "t", "--from-time", "2999-01-01T00:00:00Z"], "in the future"),
        (["replay", "-t", "t", "--to-store", "mysql://x"], "store url"),
        (["replay", "-t", "t", "--count", "0"], "--count"),
        (["groups", "reset-offsets", "--group", "g", "--all-topics"], "exactly one"),
        (
            ["groups", "reset-offsets", "-g", "g", "--all-topics", "--to-latest", "--topic", "t"],
            "not both",
        ),
        (
            [
                "groups",
                "reset-offsets",
                "-g",
                "g",
                "--topic",
                "t",
                "--to-latest",
                "--dry-run",
                "--execute",
            ],
            "conflict",
        ),
    ],
)
def test_cli_mistakes_exit_2_with_one_line_before_connecting(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main([*args, *NO_BROKER])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert "unavailable" not in err.lower()


def test_shift_takes_a_negative_number_as_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    # "--shift -5" must reach the command as -5 (and then fail only on the missing broker).
    spec = spec_from_flags(topic="t", shift=-5)
    assert spec.start == FromShift(5)
    code = cli_main(["replay", "-t", "t", "--shift", "-5", "--dry-run", *NO_BROKER])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--shift" not in err
