"""One record, start to finish: decode, dispatch, retry, dead-letter.

For every record, in this order:

0. Skip it, undecoded, if its ``event_type`` header names a type no handler subscribed
   to (a service that counts completions never decodes the other events).
1. Skip it if it is a re-drive meant for another consumer group (that group
   failed it; this one handled it the first time).
2. Decode it; a record that cannot be decoded (tombstone, empty, garbage) goes to
   the DLQ at once (stage ``decode``): retrying cannot fix bytes.

Steps 0 to 2 are :func:`consumers.intake.admit`, shared with the window processor.
3. Dispatch the event to the handlers (``EventBus.dispatch``).
4. Retry only the handlers that failed, with exponential backoff, at most
   ``max_retries`` times (handlers that succeeded are not run again).
5. If some still fail, write the record to the DLQ (stage ``handle``) and wait
   for the acknowledgement.
6. Only then is the record done, and its offset may be committed.

So a record is never lost and never blocks its partition for longer than the
retry budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

from aiokafka.structs import ConsumerRecord

from agent_events.agent_runtime.event_bus import DispatchResult, EventBus
from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers.config import ConsumerConfig
from agent_events.consumers.dlq import DeadLetter
from agent_events.consumers.intake import Skip, Unwanted, admit
from agent_events.schemas.codec import EventCodec
from agent_events.schemas.registry import make_event_codec
from agent_events.transport import backoff_delay

__all__ = [
    "DeadLetterSink",
    "ProcessingObserver",
    "ProcessingStats",
    "RecordProcessor",
    "RecordScope",
]

logger = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information


class DeadLetterSink(Protocol):
    """Where records that cannot be handled go (the DLQ publisher, in production)."""

    async def publish(self, letter: DeadLetter) -> None: ...


@dataclass(slots=True)
class ProcessingStats:
    """What the processor did since start."""

    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    decode_errors: int = 0
    skipped: int = 0
    """Records re-driven for another consumer group."""
    unwanted: int = 0
    """Records of an event type no handler subscribed to (their header says so)."""
    failed_by_handler: dict[str, int] = field(default_factory=dict)


class ProcessingObserver(Protocol):
    """Hooks for metrics: called once per record outcome (Prometheus, tests)."""

    def record_handled(self, record: Record, result: DispatchResult, seconds: float) -> None: ...

    def record_dead_lettered(self, record: Record, reason: str) -> None: ...


@runtime_checkable
class RecordScope(Protocol):
    """An observer that also wraps each record's processing in a context.

    The context is entered before decoding and left after the record is done, in
    the task that runs the handlers, so context variables it sets (a trace span,
    log fields) are seen by every handler.
    """

    def record_scope(self, record: Record) -> AbstractContextManager[object]: ...


class RecordProcessor:
    """Runs the numbered steps of this module's docstring for one record at a time."""

    def __init__(
        self,
        bus: EventBus,
        config: ConsumerConfig,
        dead_letters: DeadLetterSink | None,
        *,
        codec: EventCodec | None = None,
        observer: ProcessingObserver | None = None,
    ) -> None:
        self._bus = bus
        self._config = config
        self._group_id = config.group_id
        self._dead_letters = dead_letters
        self._codec = codec or make_event_codec(config.value_format, config.schema_registry_url)
        self._prepare = self._codec.prepare if self._codec.needs_prepare else None
        self._observer = observer
        self._scope = observer.record_scope if isinstance(observer, RecordScope) else None
        self.stats = ProcessingStats()

    async def process(self, record: Record) -> None:
        """Handle ``record`` completely; returns when its offset may be committed."""
        if self._scope is None:
            await self._process(record)
            return
        with self._scope(record):
            await self._process(record)

    async def _process(self, record: Record) -> None:
        if self._prepare is not None:
            # A writer schema id not cached yet is fetched here, awaiting only this
            # record's partition; decoding in admit() then never does I/O.
            await self._prepare(record.value)
        admitted = admit(
            record, self._codec, group_id=self._group_id, handler=None, wants=self._bus.wants
        )
        if isinstance(admitted, SystemEvent):
            await self._handle(record, admitted)
        elif isinstance(admitted, Unwanted):
            self.stats.unwanted += 1  # no handler takes this type: not decoded at all
        elif isinstance(admitted, Skip):
            self.stats.skipped += 1
        else:
            self.stats.decode_errors += 1
            await self._send_dead_letter(record, admitted)

    async def _handle(self, record: Record, event: SystemEvent) -> None:
        started = time.perf_counter()
        result = await self._bus.dispatch(event)
        first_failure_ms: int | None = None
        retries = 0
        while not result.ok and retries < self._config.max_retries:
            if first_failure_ms is None:
                first_failure_ms = int(time.time() * 1000)
            retries += 1
            self.stats.retried += 1
            failed_ids: Collection[str] = {o.subscription_id for o in result.failures}
            await asyncio.sleep(
                backoff_delay(
                    retries,
                    initial_s=self._config.retry_backoff_s,
                    max_s=self._config.retry_backoff_max_s,
                )
            )
            retry = await self._bus.dispatch(event, only=failed_ids)
            result = _merge(result, retry)
        if self._observer is not None:
            self._observer.record_handled(record, result, time.perf_counter() - started)
        if result.ok:
            self.stats.handled += 1
            return
        failures = result.failures
        for outcome in failures:
            name = outcome.handler_name
            self.stats.failed_by_handler[name] = self.stats.failed_by_handler.get(name, 0) + 1
        error = failures[0].error
        assert error is not None
        letter = DeadLetter.of(
            record,
            stage="handle",
            error=error,
            consumer_group=self._config.group_id,
            handler=",".join(o.handler_name for o in failures),
            retry_count=retries,
            first_failure_ms=first_failure_ms,
        )
        await self._send_dead_letter(record, letter)

    async def _send_dead_letter(self, record: Record, letter: DeadLetter) -> None:
        """Step 2 or 5: count, then write ``letter`` and wait for its acknowledgement."""
        self.stats.dead_lettered += 1
        if self._observer is not None:
            self._observer.record_dead_lettered(record, letter.stage)
        if self._dead_letters is None:
            logger.error(
                "record %s[%d]@%d failed at %s (%s) and no DLQ is configured: skipped",
                record.topic,
                record.partition,
                record.offset,
                letter.stage,
                letter.error,
            )
            return
        await self._dead_letters.publish(letter)
        logger.warning(
            "record %s[%d]@%d dead-lettered at stage %s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            letter.stage,
            type(letter.error).__name__,
            letter.error,
        )


def _merge(previous: DispatchResult, retry: DispatchResult) -> DispatchResult:
    """Outcomes of the first run with the retried handlers' outcomes replaced."""
    latest = {o.subscription_id: o for o in retry.outcomes}
    return DispatchResult(
        previous.event,
        tuple(latest.get(o.subscription_id, o) for o in previous.outcomes),
    )
