"""The tool commands against real brokers, run as the user runs them (``main([...])``).

``topics``, ``produce`` -> ``tail`` round trips, ``verify-order`` on records with crafted
sequence headers, and ``dlq list|show|redrive`` on dead letters written by the real publisher.
Each test runs on Apache Kafka and on Tansu.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker import RunningBroker
from agent_events.cli import main
from agent_events.consumers.dlq import DeadLetter, DeadLetterPublisher
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.headers import PRODUCER_ID_HEADER, SEQUENCE_HEADER
from agent_events.schemas.codec import encode_event

NewTopicFactory = Callable[..., Coroutine[Any, Any, str]]


def _run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    result = main(list(args))
    out, err = capsys.readouterr()
    assert result == code, f"exit {result} for {args}: {err}"
    return out, err


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _events(n: int, sessions: int = 3) -> list[SystemEvent]:
    kinds = [EventType.AGENT_STARTED, EventType.AGENT_COMPLETED, EventType.ERROR_OCCURRED]
    return [
        SystemEvent(
            event_type=kinds[i % 3],
            agent_id=f"agent-{i % 2}",
            session_id=f"session-{i % sessions}",
            metadata={"i": i},
        )
        for i in range(n)
    ]


def test_topics_create_list_and_describe(
    broker: RunningBroker, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    b = ("-b", broker.bootstrap_servers)
    out, _ = _run(capsys, "topics", "create", topic_name, "--partitions", "3", *b, "--json")
    assert json.loads(out) == {"topic": topic_name, "created": True}

    out, _ = _run(capsys, "topics", "list", *b, "--json")
    listed = {row["topic"]: row for row in json.loads(out)}
    assert listed[topic_name]["partitions"] == 3

    out, _ = _run(capsys, "topics", "describe", topic_name, *b, "--json")
    described = json.loads(out)
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert all(p["leader"] is not None and p["leader"] >= 0 for p in described["partitions"])

    _, err = _run(capsys, "topics", "create", topic_name, *b, code=2)
    assert "exists already" in err
    assert len(err.strip().splitlines()) == 1
    out, _ = _run(capsys, "topics", "create", topic_name, "--if-not-exists", *b)
    assert "exists already" in out
    _, err = _run(capsys, "topics", "describe", f"{topic_name}-missing", *b, code=2)
    assert "does not exist" in err


def test_produce_then_tail_round_trips_every_event(
    broker: RunningBroker,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = asyncio.run(new_topic(partitions=3))
    b = ("-b", broker.bootstrap_servers, "-t", topic)
    sent = _events(12)
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(e.model_dump_json() for e in sent) + "\n")

    out, _ = _run(capsys, "produce", str(source), *b, "--json")
    summary = json.loads(out)
    assert summary["events"] == 12
    assert sum(summary["partitions"].values()) == 12

    out, _ = _run(capsys, "tail", *b, "--offset", "beginning", "--count", "12", "--json")
    envelopes = _json_lines(out)
    assert {e["payload"]["event_id"] for e in envelopes} == {str(e.event_id) for e in sent}
    for envelope in envelopes:
        assert set(envelope) >= {"topic", "partition", "offset", "ts", "headers", "key", "payload"}
        assert envelope["topic"] == topic
        assert envelope["key"] == envelope["payload"]["session_id"]
        assert envelope["headers"][SEQUENCE_HEADER].isdigit()
    by_session: dict[str, list[int]] = {}
    for envelope in sorted(envelopes, key=lambda e: (e["partition"], e["offset"])):
        by_session.setdefault(envelope["key"], []).append(envelope["payload"]["metadata"]["i"])
    assert all(seen == sorted(seen) for seen in by_session.values())  # per-session order

    out, _ = _run(capsys, "tail", *b, "-o", "beginning", "-e", "--type", "error_occurred")
    lines = out.splitlines()
    assert len(lines) == 4
    assert all(" error_occurred " in line for line in lines)

    out, _ = _run(capsys, "tail", *b, "-o", "beginning", "-e", "--session", "session-1", "--json")
    assert sorted(e["payload"]["metadata"]["i"] for e in _json_lines(out)) == [1, 4, 7, 10]

    partition = envelopes[0]["partition"]
    out, _ = _run(capsys, "tail", *b, "-o", "-2", "-e", "-p", str(partition), "--json")
    last_two = _json_lines(out)
    assert len(last_two) == 2
    assert {e["partition"] for e in last_two} == {partition}


def test_produce_stops_at_a_bad_line_after_sending_the_ones_before(
    broker: RunningBroker,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = asyncio.run(new_topic(partitions=1))
    good = _events(2)
    source = tmp_path / "events.jsonl"
    source.write_text(
        "\n".join(e.model_dump_json() for e in good) + '\n{"event_type": "agent_started"}\n'
    )
    _, err = _run(
        capsys, "produce", str(source), "-b", broker.bootstrap_servers, "-t", topic, code=2
    )
    assert err.strip().splitlines()[-1] == (
        "Error: line 3: agent_id: Field required; the 2 events before it were sent"
    )
    out, _ = _run(
        capsys, "tail", "-b", broker.bootstrap_servers, "-t", topic, "-o", "beginning", "-e"
    )
    assert len(out.splitlines()) == 2


async def _send_raw(bootstrap: str, topic: str, records: list[tuple[str, str, int]]) -> None:
    """(session, producer id, sequence) records, one acknowledged send at a time (in order)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for session, producer_id, sequence in records:
            event = SystemEvent(event_type=EventType.CUSTOM, agent_id="crafted", session_id=session)
            await producer.send_and_wait(
                topic,
                value=encode_event(event),
                key=session.encode(),
                partition=0,
                headers=[
                    (PRODUCER_ID_HEADER, producer_id.encode()),
                    (SEQUENCE_HEADER, str(sequence).encode()),
                ],
            )
    finally:
        await producer.stop()


def test_verify_order_finds_an_injected_gap_duplicate_and_reorder(
    broker: RunningBroker, new_topic: NewTopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = asyncio.run(new_topic(partitions=1))
    pid = uuid.uuid4().hex
    records = [
        *[("in-order", pid, s) for s in (1, 2, 3)],
        *[("gap", pid, s) for s in (1, 2, 4, 5)],
        *[("duplicate", pid, s) for s in (1, 2, 2, 3)],
        *[("reorder", pid, s) for s in (1, 3, 2, 4)],
    ]
    asyncio.run(_send_raw(broker.bootstrap_servers, topic, records))

    b = ("-b", broker.bootstrap_servers, "-t", topic)
    out, _ = _run(capsys, "verify-order", *b, "--json", code=1)
    report = json.loads(out)
    assert report["records"] == len(records)
    assert (report["gaps"], report["duplicates"], report["reorders"]) == (1, 1, 1)
    found = {(p["kind"], p["session"], tuple(p["sequences"])) for p in report["problems"]}
    assert found == {("gap", "gap", (3, 3)), ("duplicate", "duplicate", (2, 2)),
                     ("reorder", "reorder", (2, 2))}  # fmt: skip

    out, _ = _run(capsys, "verify-order", *b, code=1)
    assert "PROBLEMS FOUND" in out
    assert "1 gaps, 1 duplicates, 1 reorders" in out
    out, _ = _run(capsys, "verify-order", *b, "--session", "in-order", "--json")
    assert json.loads(out)["ok"] is True


def test_verify_order_passes_what_the_producer_wrote(
    broker: RunningBroker,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = asyncio.run(new_topic(partitions=3))
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(e.model_dump_json() for e in _events(60, sessions=7)) + "\n")
    b = ("-b", broker.bootstrap_servers, "-t", topic)
    _run(capsys, "produce", str(source), *b)
    out, _ = _run(capsys, "verify-order", *b, "--json")
    report = json.loads(out)
    assert (report["ok"], report["records"], report["sessions"]) == (True, 60, 7)


async def _dead_letters(bootstrap: str, dlq: str, source: str) -> list[SystemEvent]:
    events = _events(3)
    conn = KafkaConnectionConfig(bootstrap_servers=bootstrap)
    async with DeadLetterPublisher(conn, dlq) as publisher:
        for i, (event, stage) in enumerate(
            zip(events, ["handle", "handle", "decode"], strict=True)
        ):
            try:
                raise (TimeoutError if i == 1 else ValueError)(f"boom {i}")
            except Exception as exc:
                error = exc
            await publisher.publish(
                DeadLetter(
                    topic=source,
                    partition=0,
                    offset=10 + i,
                    key=event.partition_key.encode(),
                    value=encode_event(event) if stage == "handle" else b"\x00garbage",
                    headers=[("event_type", event.event_type.value.encode())],
                    stage=stage,  # type: ignore[arg-type]
                    error=error,
                    consumer_group="store-group",
                    handler="SQLiteEventStore.append" if stage == "handle" else None,
                    retry_count=3,
                )
            )
    return events


def test_dlq_list_show_and_redrive(
    broker: RunningBroker, new_topic: NewTopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    source = asyncio.run(new_topic(partitions=1))
    dlq = asyncio.run(new_topic(partitions=1, name=f"{source}.dlq"))
    events = asyncio.run(_dead_letters(broker.bootstrap_servers, dlq, source))
    b = ("-b", broker.bootstrap_servers, "--dlq-topic", dlq)

    out, _ = _run(capsys, "dlq", "list", *b, "--json")
    letters = _json_lines(out)
    assert [(d["offset"], d["errors"]["stage"]) for d in letters] == [
        (0, "handle"), (1, "handle"), (2, "decode")
    ]  # fmt: skip
    first = letters[0]["errors"]
    assert first["topic"] == source
    assert first["offset"] == "10"
    assert first["consumer.group"] == "store-group"
    assert first["retry.count"] == "3"
    assert first["exception.class.name"] == "builtins.ValueError"
    out, _ = _run(capsys, "dlq", "list", *b)
    assert "ValueError" in out
    assert "3 dead letters" in out

    out, _ = _run(capsys, "dlq", "list", *b, "--exception", "*Timeout*", "--json")
    assert [d["offset"] for d in _json_lines(out)] == [1]

    out, _ = _run(capsys, "dlq", "show", "0", "0", *b, "--json")
    shown = json.loads(out)
    assert shown["payload"]["event_id"] == str(events[0].event_id)
    assert "ValueError: boom 0" in shown["errors"]["exception.stacktrace"]
    assert shown["headers"]["event_type"] == "agent_started"
    out, _ = _run(capsys, "dlq", "show", "0", "2", *b, "--json")
    assert json.loads(out)["payload"] is None
    assert json.loads(out)["decode_error"]
    out, _ = _run(capsys, "dlq", "show", "0", "0", *b)
    assert "__agent_events.errors.exception.message" in out
    assert "Traceback" in out
    _, err = _run(capsys, "dlq", "show", "0", "99", *b, code=2)
    assert "no record at 99" in err

    out, _ = _run(capsys, "dlq", "redrive", *b, "--stage", "handle", "--json")
    assert json.loads(out) == {"matched": 2, "sent": 0, "skipped_without_source": 0,
                               "dry_run": True}  # fmt: skip
    out, _ = _run(capsys, "dlq", "redrive", *b, "--stage", "handle", "--execute", "--json")
    assert json.loads(out)["sent"] == 2

    out, _ = _run(
        capsys, "tail", "-b", broker.bootstrap_servers, "-t", source, "-o", "beginning", "-e",
        "--json",
    )  # fmt: skip
    redriven = _json_lines(out)
    assert [e["payload"]["event_id"] for e in redriven] == [str(e.event_id) for e in events[:2]]
    assert all(e["key"] == e["payload"]["session_id"] for e in redriven)
    assert all(e["headers"]["__agent_events.redrive.for.group"] == "store-group" for e in redriven)
