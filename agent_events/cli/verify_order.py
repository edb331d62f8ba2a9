"""``agent-events verify-order``: per-session gaps, duplicates and reorders on a topic.

Every record ``KafkaEventProducer`` writes carries ``agent_events.producer_id`` and
``agent_events.sequence`` (1, 2, 3 ... per session key and producer). Reading a topic from
its beginning to its end as it was at the start (a bounded scan: no group, nothing committed)
and following each (producer, session) stream tells:

* **gap**: sequence numbers that never appeared (a lost record);
* **duplicate**: a number seen twice (a retried send written twice);
* **reorder**: a missing number that showed up later, at a higher offset (records swapped).

A record sent back from the dead-letter topic (``agent-events dlq redrive``: it carries
the re-drive count header) repeats a number on purpose: it is counted as a **re-drive**,
not as a duplicate, and does not fail the check.

A stream that starts again at 1 with a different first record is a producer that forgot the
session (its sequence cache is bounded) and is counted as a restart, not as a problem.
Records without the headers are counted and skipped. Exit codes: 0 in order, 1 problems
found, 2 a user mistake.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agent_events.cli._common import (
    AsJson,
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    Topic,
    table_console,
    tool_settings,
)
from agent_events.cli._reader import OffsetSpec, read_records, start_offsets
from agent_events.consumers.intake import is_redrive
from agent_events.consumers.scan import standalone_consumer, topic_partitions
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.headers import PRODUCER_ID_HEADER, SEQUENCE_HEADER, header_value
from agent_events.producers.partitioner import partition_for_key

__all__ = ["OrderChecker", "OrderProblem", "OrderReport", "verify_order", "verify_order_command"]

_MAX_LISTED = 1_000


@dataclass(frozen=True, slots=True)
class OrderProblem:
    """One finding: ``kind`` is ``gap``, ``duplicate`` or ``reorder``."""

    kind: str
    session: str
    producer_id: str
    partition: int
    offset: int
    """Offset of the record that showed it (for a gap: the first record after it)."""
    sequences: tuple[int, int]
    """First and last sequence number concerned (equal for one record)."""

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "session": self.session,
            "producer_id": self.producer_id,
            "partition": self.partition,
            "offset": self.offset,
            "sequences": list(self.sequences),
        }


@dataclass(slots=True)
class _Stream:
    last: int = 0
    first_digest: bytes = b""
    missing: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Missing number -> (partition, offset of the record after the gap)."""


@dataclass(slots=True)
class OrderReport:
    """The result of a scan: counts and the problems found (at most 1,000 listed)."""

    records: int = 0
    unsequenced: int = 0
    redrives: int = 0
    """Records re-driven from the DLQ (a repeat on purpose, not a problem)."""
    restarts: int = 0
    sessions: int = 0
    streams: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[OrderProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.counts

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "unsequenced": self.unsequenced,
            "sessions": self.sessions,
            "streams": self.streams,
            "restarts": self.restarts,
            "gaps": self.counts["gap"],
            "duplicates": self.counts["duplicate"],
            "reorders": self.counts["reorder"],
            "redrives": self.redrives,
            "problems": [p.to_json() for p in self.problems],
        }


class OrderChecker:
    """Follows each (producer, session) sequence; feed records in offset order per partition.

    Memory is a few integers per stream plus the numbers currently missing.
    """

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._report = OrderReport()

    def observe(self, record: Any) -> None:
        """Check one record (an aiokafka ``ConsumerRecord``)."""
        report = self._report
        report.records += 1
        raw_seq = header_value(record.headers, SEQUENCE_HEADER)
        raw_pid = header_value(record.headers, PRODUCER_ID_HEADER)
        if raw_seq is None or raw_pid is None or not raw_seq.isdigit():
            report.unsequenced += 1
            return
        if is_redrive(record.headers):
            report.redrives += 1  # its original was checked where it was first written
            return
        seq = int(raw_seq)
        pid = raw_pid.decode("utf-8", "replace")
        session = record.key.decode("utf-8", "replace") if record.key is not None else ""
        stream = self._streams.get((pid, session))
        if stream is None:
            stream = self._streams[(pid, session)] = _Stream()
        where = (record.partition, record.offset)
        if seq == stream.last + 1:
            stream.last = seq
        elif seq > stream.last + 1:
            for missing in range(stream.last + 1, seq):
                stream.missing[missing] = where
            stream.last = seq
        elif seq in stream.missing:
            del stream.missing[seq]
            self._add("reorder", session, pid, where, seq, seq)
        elif seq == 1 and _digest(record) != stream.first_digest:
            # The producer forgot the session (bounded cache) and counts from 1 again.
            self._report_gaps(pid, session, stream)
            stream.last = 1
            report.restarts += 1
        else:
            self._add("duplicate", session, pid, where, seq, seq)
        if seq == 1:
            stream.first_digest = _digest(record)

    def _add(
        self, kind: str, session: str, pid: str, where: tuple[int, int], first: int, last: int
    ) -> None:
        self._report.counts[kind] += 1
        if len(self._report.problems) < _MAX_LISTED:
            problem = OrderProblem(kind, session, pid, where[0], where[1], (first, last))
            self._report.problems.append(problem)

    def _report_gaps(self, pid: str, session: str, stream: _Stream) -> None:
        """Report the numbers still missing as gaps, consecutive ones merged; forget them."""
        run: list[int] = []
        missing = stream.missing
        for number in sorted(missing):
            if run and (number != run[-1] + 1 or missing[number] != missing[run[0]]):
                self._add("gap", session, pid, missing[run[0]], run[0], run[-1])
                run = []
            run.append(number)
        if run:
            self._add("gap", session, pid, missing[run[0]], run[0], run[-1])
        missing.clear()

    def finish(self) -> OrderReport:
        """The report, with every number still missing reported as a gap."""
        report = self._report
        for (pid, session), stream in self._streams.items():
            self._report_gaps(pid, session, stream)
        report.streams = len(self._streams)
        report.sessions = len({session for _, session in self._streams})
        report.problems.sort(key=lambda p: (p.session, p.producer_id, p.sequences))
        return report


def _digest(record: Any) -> bytes:
    return hashlib.blake2b(record.value or b"", digest_size=8).digest()


async def verify_order(
    conn: KafkaConnectionConfig,
    topic: str,
    *,
    partitions: list[int] | None = None,
    session: str | None = None,
    progress: Progress | None = None,
) -> OrderReport:
    """Scan ``topic`` (or some partitions, or one session's) from beginning to end; check it."""
    checker = OrderChecker()
    async with standalone_consumer(conn) as consumer:
        tps = await topic_partitions(consumer, topic, partitions)
        if session is not None:
            n = len(consumer.partitions_for_topic(topic) or ())
            own = partition_for_key(session.encode(), n)
            tps = [tp for tp in tps if tp.partition == own]
        start = await start_offsets(consumer, tps, OffsetSpec("beginning"), conn.bootstrap_servers)
        task = progress.add_task(f"reading {topic}", total=None) if progress else None
        async for record in read_records(consumer, tps, start, until_end=True):
            if session is not None and record.key != session.encode():
                continue
            checker.observe(record)
            if progress is not None and task is not None:
                progress.advance(task)
    return checker.finish()


def verify_order_command(
    topic: Topic = None,
    bootstrap_servers: BootstrapServers = None,
    config_file: ConfigFile = None,
    partitions: Annotated[
        list[int] | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition (repeatable)."),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Only this session (reads its partition).")
    ] = None,
    as_json: AsJson = False,
    connect_timeout: ConnectTimeout = None,
) -> None:
    """Report per-session gaps, duplicates and reorders from the sequence headers (exit 1 if any).

    Records re-driven from the DLQ are counted as re-drives, not duplicates.
    """
    settings = tool_settings(bootstrap_servers, config_file, connect_timeout, topic=topic)
    conn, topic_name = settings.connection(), settings.topic
    err = Console(stderr=True)
    show_progress = not as_json and sys.stderr.isatty()
    with Progress(console=err, transient=True, disable=not show_progress) as progress:
        report = asyncio.run(
            verify_order(
                conn, topic_name, partitions=partitions, session=session, progress=progress
            )
        )
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        _print_report(topic_name, report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(topic: str, report: OrderReport) -> None:
    console = table_console()
    if report.problems:
        table = Table("SESSION", "PRODUCER", "PARTITION", "OFFSET", "PROBLEM", "SEQUENCE", box=None)
        for p in report.problems:
            first, last = p.sequences
            table.add_row(
                p.session,
                p.producer_id[:12],
                str(p.partition),
                str(p.offset),
                p.kind,
                str(first) if first == last else f"{first}-{last}",
            )
        console.print(table)
    verdict = "in order" if report.ok else "PROBLEMS FOUND"
    console.print(
        f"{topic}: {verdict}: {report.records} records, {report.sessions} sessions, "
        f"{report.counts['gap']} gaps, {report.counts['duplicate']} duplicates, "
        f"{report.counts['reorder']} reorders, {report.redrives} re-drives, "
        f"{report.restarts} restarts, "
        f"{report.unsequenced} without sequence headers",
        markup=False,
        highlight=False,
    )
