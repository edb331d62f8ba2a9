"""The tool commands without a broker: help, argument errors (one line, exit 2), parsing, and
the order checker behind ``verify-order``."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from agent_events.agent_runtime.errors import ConfigError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.cli import main
from agent_events.cli._reader import OffsetSpec, parse_offset
from agent_events.cli.produce import parse_event_line
from agent_events.cli.verify_order import OrderChecker
from agent_events.producers.headers import PRODUCER_ID_HEADER, SEQUENCE_HEADER
from agent_events.services.tracing import TraceStore

COMMANDS = [
    ["topics"],
    ["topics", "create"],
    ["topics", "list"],
    ["topics", "describe"],
    ["produce"],
    ["tail"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "redrive"],
    ["verify-order"],
    ["trace"],
    ["demo"],
]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_tool_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--help"]) == 0
    assert "Usage: agent-events" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["tail", "--offset", "yesterday"], "yesterday"),
        (["tail", "--count", "0"], "--count"),
        (["tail", "--partition", "-1"], "--partition"),
        (["tail", "--bogus"], "--bogus"),
        (["produce", "/no/such/file.jsonl"], "/no/such/file.jsonl"),
        (["topics", "create", "t", "--partitions", "0"], "--partitions"),
        (["topics", "create", "t", "--topic-config", "retention"], "--topic-config"),
        (["topics", "describe"], "'name'"),
        (["dlq", "show", "0"], "'offset'"),
        (["dlq", "list", "--stage", "lunch"], "--stage"),
        (["dlq", "redrive", "--limit", "0"], "--limit"),
        (["verify-order", "--partition", "x"], "--partition"),
        (["tail", "--bootstrap-servers", "no-port-here"], "bootstrap"),
        (["verify-order", "--config", "/no/such/settings.toml"], "settings.toml"),
        (["trace", "--limit", "0"], "--limit"),
        (["demo", "--duration", "0"], "--duration"),
        (["demo", "--kind", "redpanda"], "--kind"),
        (["demo", "--bootstrap-servers", "no-port-here"], "bootstrap"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: list[str], mentions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert mentions in _one_error_line(capsys.readouterr().err)


def test_bootstrap_servers_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENT_EVENTS_BOOTSTRAP_SERVERS", "not a server list")
    assert main(["tail"]) == 2
    assert "AGENT_EVENTS_BOOTSTRAP_SERVERS" in _one_error_line(capsys.readouterr().err)


def test_an_unreachable_broker_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "list", "-b", "127.0.0.1:1", "--connect-timeout", "0.5"]) == 2
    assert "127.0.0.1:1" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beginning", OffsetSpec("beginning")),
        ("earliest", OffsetSpec("beginning")),
        ("end", OffsetSpec("end")),
        ("42", OffsetSpec("absolute", 42)),
        ("0", OffsetSpec("absolute", 0)),
        ("-10", OffsetSpec("last", 10)),
        ("s@1700000000000", OffsetSpec("timestamp", 1_700_000_000_000)),
    ],
)
def test_kcat_offsets_parse(text: str, expected: OffsetSpec) -> None:
    assert parse_offset(text) == expected
    assert parse_offset(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "-0", "s@", "s@x", "1.5", "--3", "tomorrow"])
def test_bad_offsets_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_offset(text)


def test_a_bad_event_line_names_its_line_number_and_field() -> None:
    with pytest.raises(ConfigError, match=r"^line 7: agent_id: Field required"):
        parse_event_line('{"event_type": "agent_started"}', 7)
    with pytest.raises(ConfigError, match=r"^line 3: not valid JSON"):
        parse_event_line("{nope", 3)
    with pytest.raises(ConfigError, match=r"^line 1: event_type"):
        parse_event_line('{"event_type": "*", "agent_id": "a"}', 1)


def test_produce_dry_run_validates_without_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(
        '{"event_type": "agent_started", "agent_id": "a", "session_id": "s"}\n\n'
        '{"event_type": "agent_completed", "agent_id": "a", "execution_time_ms": 5}\n'
        '{"event_type": "agent_completed"}\n'
    )
    assert main(["produce", str(source), "--dry-run", "-b", "127.0.0.1:1"]) == 2
    assert _one_error_line(capsys.readouterr().err) == "Error: line 4: agent_id: Field required"
    source.write_text(source.read_text().rsplit("\n", 2)[0] + "\n")
    assert main(["produce", str(source), "--dry-run", "--json", "-b", "127.0.0.1:1"]) == 0
    assert '"events": 2' in capsys.readouterr().out


# -- the order checker -------------------------------------------------------------------


@dataclass
class FakeRecord:
    key: bytes
    offset: int
    sequence: int | None
    producer: str = "p1"
    partition: int = 0
    value: bytes = b""
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.value:
            self.value = f"{self.key!r}-{self.sequence}-{self.offset}".encode()
        if self.sequence is not None:
            self.headers = [
                (PRODUCER_ID_HEADER, self.producer.encode()),
                (SEQUENCE_HEADER, str(self.sequence).encode()),
            ]


def _check(*streams: tuple[str, list[int | None]]) -> OrderChecker:
    checker = OrderChecker()
    offset = 0
    for session, sequences in streams:
        for seq in sequences:
            checker.observe(FakeRecord(session.encode(), offset, seq))
            offset += 1
    return checker


def test_sequences_in_order_report_nothing() -> None:
    report = _check(("a", [1, 2, 3]), ("b", [1, 2])).finish()
    assert report.ok
    assert (report.records, report.sessions, report.streams) == (5, 2, 2)


def test_a_missing_sequence_is_a_gap_with_its_range() -> None:
    report = _check(("a", [1, 2, 5, 6])).finish()
    assert report.counts == {"gap": 1}
    (gap,) = report.problems
    assert (gap.kind, gap.session, gap.sequences, gap.offset) == ("gap", "a", (3, 4), 2)


def test_a_repeated_sequence_is_a_duplicate() -> None:
    report = _check(("b", [1, 2, 2, 3])).finish()
    assert report.counts == {"duplicate": 1}
    assert report.problems[0].sequences == (2, 2)


def test_a_late_sequence_is_a_reorder_not_a_gap() -> None:
    report = _check(("c", [1, 3, 2, 4])).finish()
    assert report.counts == {"reorder": 1}
    assert (report.problems[0].sequences, report.problems[0].offset) == ((2, 2), 2)


def test_a_stream_restarting_at_one_with_a_new_record_is_a_restart() -> None:
    checker = OrderChecker()
    checker.observe(FakeRecord(b"s", 0, 1, value=b"first"))
    checker.observe(FakeRecord(b"s", 1, 2))
    checker.observe(FakeRecord(b"s", 2, 1, value=b"another"))
    checker.observe(FakeRecord(b"s", 3, 2))
    checker.observe(FakeRecord(b"s", 4, 1, value=b"another"))  # the same record again
    report = checker.finish()
    assert report.restarts == 1
    assert report.counts == {"duplicate": 1}


def test_streams_of_two_producers_are_checked_apart() -> None:
    checker = OrderChecker()
    for offset, (producer, seq) in enumerate([("p1", 1), ("p2", 1), ("p1", 2), ("p2", 2)]):
        checker.observe(FakeRecord(b"s", offset, seq, producer=producer))
    report = checker.finish()
    assert report.ok
    assert (report.sessions, report.streams) == (1, 2)


def test_records_without_sequence_headers_are_counted_and_skipped() -> None:
    report = _check(("a", [1, None, 2])).finish()
    assert report.ok
    assert report.unsequenced == 1


# -- trace: reads the tracing service's store ----------------------------------------------


def _trace_db(path: Path) -> list[SystemEvent]:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    events = [
        SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="coder", session_id="s1",
                    timestamp=start),
        SystemEvent(event_type=EventType.ERROR_OCCURRED, agent_id="coder", session_id="s1",
                    timestamp=start + timedelta(milliseconds=250), error_type="TimeoutError",
                    error_message="llm too slow", execution_time_ms=250),
        SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="planner", session_id="s2",
                    timestamp=start + timedelta(seconds=1)),
    ]  # fmt: skip

    async def write() -> None:
        async with TraceStore(path) as store:
            for event in reversed(events):  # arrival order does not matter
                await store.add(event)

    asyncio.run(write())
    return events


def test_trace_shows_a_sessions_timeline_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "traces.db"
    events = _trace_db(db)
    assert main(["trace", "s1", "--trace-db", str(db), "--json"]) == 0
    timeline = json.loads(capsys.readouterr().out)
    assert [e["event_id"] for e in timeline["events"]] == [str(e.event_id) for e in events[:2]]
    assert [e["offset_ms"] for e in timeline["events"]] == [0, 250]
    assert main(["trace", "s1", "--trace-db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "error_occurred" in out
    assert "TimeoutError: llm too slow" in out


def test_trace_without_a_session_lists_recent_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "traces.db"
    _trace_db(db)
    assert main(["trace", "--trace-db", str(db), "--json"]) == 0
    sessions = json.loads(capsys.readouterr().out)
    assert [(s["session_id"], s["events"]) for s in sessions] == [("s2", 1), ("s1", 2)]


def test_trace_of_an_unknown_session_exits_1_and_a_missing_store_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "traces.db"
    _trace_db(db)
    assert main(["trace", "nope", "--trace-db", str(db)]) == 1
    assert "no events of session 'nope'" in _one_error_line(capsys.readouterr().err)
    assert main(["trace", "s1", "--trace-db", str(tmp_path / "missing.db")]) == 2
    assert "no trace database" in _one_error_line(capsys.readouterr().err)


def test_produce_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = '{"event_type": "custom", "agent_id": "a"}\n' * 3
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert main(["produce", "-", "--dry-run", "--json", "-b", "127.0.0.1:1"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == 3


def test_tail_json_envelope_writes_metadata_nested_deeper_than_pydantic_serialises() -> None:
    import json
    from types import SimpleNamespace

    from agent_events.agent_runtime.events import EventType, SystemEvent
    from agent_events.cli.tail import envelope
    from agent_events.schemas import decode_event, encode_event

    metadata: dict[str, object] = {"leaf": 1}
    for _ in range(400):
        metadata = {"x": metadata}
    plain = SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", session_id="s")
    event = decode_event(
        encode_event(SystemEvent.model_construct(**{**dict(plain), "metadata": metadata}))
    )
    record = SimpleNamespace(topic="t", partition=0, offset=7, timestamp=1, headers=[], key=b"s")

    line = json.dumps(envelope(record, event, None))

    assert json.loads(line)["payload"]["metadata"] == metadata


@pytest.mark.parametrize(
    ("variable", "value", "mentions"),
    [
        ("AGENT_EVENTS_CONSUMER", "notjson", "AGENT_EVENTS_CONSUMER__NAME=value"),
        ("AGENT_EVENTS_BOOTSTRAP_SERVER", "127.0.0.1:9092", "AGENT_EVENTS_BOOTSTRAP_SERVERS"),
    ],
)
@pytest.mark.parametrize("command", [["consume", "metrics"], ["tail"], ["groups", "list"]])
def test_a_bad_environment_variable_exits_2_with_one_line(
    variable: str,
    value: str,
    mentions: str,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(command) == 2
    assert mentions in _one_error_line(capsys.readouterr().err)


async def test_json_lines_sink_writes_metadata_nested_deeper_than_pydantic_serialises(
    tmp_path: Path,
) -> None:
    import json
    from types import SimpleNamespace

    from agent_events.agent_runtime.events import EventType, SystemEvent
    from agent_events.consumers.replay import JsonLinesSink
    from agent_events.schemas import decode_event, encode_event

    metadata: dict[str, object] = {"leaf": 1}
    for _ in range(400):
        metadata = {"x": metadata}
    plain = SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="a", session_id="s")
    deep = SystemEvent.model_construct(**{**dict(plain), "metadata": metadata})
    event = decode_event(encode_event(deep))
    record = SimpleNamespace(topic="t", partition=0, offset=7, timestamp=1, headers=[], key=b"s")
    sink = JsonLinesSink(tmp_path / "out.jsonl")

    await sink.open()
    await sink.write(record, event)
    await sink.close()

    (line,) = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(line)["payload"]["metadata"] == metadata


HANDLER_MODULES = {
    "exits_on_import": "import sys\nsys.exit(3)\n",
    "factory_raises": "def make():\n    raise RuntimeError('factory broke')\n",
    "enter_raises": (
        "class Handlers:\n"
        "    async def __aenter__(self):\n"
        "        raise OSError('no database')\n"
        "    async def __aexit__(self, *exc):\n"
        "        return None\n"
        "def make():\n"
        "    return Handlers()\n"
    ),
}


@pytest.mark.parametrize(
    ("handler", "mentions"),
    [
        ("exits_on_import:handle", "called sys.exit(3)"),
        ("factory_raises:make", "the factory raised RuntimeError: factory broke"),
        ("enter_raises:make", "entering what the factory returned raised OSError: no database"),
    ],
)
def test_a_router_handler_that_fails_to_load_exits_2_with_one_line(
    handler: str,
    mentions: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, source in HANDLER_MODULES.items():
        (tmp_path / f"{name}_{tmp_path.name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module, _, attribute = handler.partition(":")
    args = ["consume", "router", "--handler", f"{module}_{tmp_path.name}:{attribute}"]
    assert main([*args, "-b", "127.0.0.1:1", "--connect-timeout", "1"]) == 2
    assert mentions in _one_error_line(capsys.readouterr().err)


def test_an_unwritable_store_path_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "sqlite:////proc/agent-events-test/events.db"
    assert main(["consume", "store", "--store-url", url, "-b", "127.0.0.1:1"]) == 2
    assert "cannot open the event store /proc/agent-events-test/events.db" in _one_error_line(
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["broker", "start"], "~/.local/share/agent-events/broker"),
        (["broker", "start"], "--port + 1"),
        (["replay"], "stdout; the default: -"),
        (["groups", "reset-offsets"], "Print the plan only (the default)"),
    ],
)
def test_defaults_written_in_help_texts_are_shown_not_swallowed_as_markup(
    command: list[str],
    shown: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    assert main([*command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert shown in out
