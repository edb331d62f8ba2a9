"""``OrderChecker``: a record re-driven from the DLQ is a re-drive, not a duplicate."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from agent_events.cli.verify_order import OrderChecker
from agent_events.consumers.dlq import redrive_headers
from agent_events.producers.headers import PRODUCER_ID_HEADER, SEQUENCE_HEADER


def record(offset: int, seq: int, *, redriven: bool = False) -> Any:
    headers = [(PRODUCER_ID_HEADER, b"p1"), (SEQUENCE_HEADER, str(seq).encode())]
    if redriven:
        headers = redrive_headers(headers, for_group="store")
    value = f"event {seq}".encode()
    return ConsumerRecord("t", 0, offset, 0, 0, b"s", value, None, 1, len(value), tuple(headers))


def test_a_redriven_record_is_counted_as_a_redrive_and_the_check_passes() -> None:
    checker = OrderChecker()
    for offset, seq in enumerate((1, 2, 3)):
        checker.observe(record(offset, seq))
    checker.observe(record(3, 2, redriven=True))
    report = checker.finish()
    assert (report.ok, report.redrives, report.counts["duplicate"]) == (True, 1, 0)
    assert report.to_json()["redrives"] == 1


def test_a_repeated_record_without_the_redrive_mark_is_still_a_duplicate() -> None:
    checker = OrderChecker()
    for offset, seq in enumerate((1, 2, 2, 3)):
        checker.observe(record(offset, seq))
    report = checker.finish()
    assert (report.ok, report.redrives, report.counts["duplicate"]) == (False, 0, 1)
