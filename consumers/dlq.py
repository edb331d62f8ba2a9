"""The dead-letter topic: records no handler could finish, with why, and their re-drive.

A dead-lettered record keeps its original key (the session id, so the DLQ stays
partitioned by session and a re-drive keeps order), value and headers, and gains
error headers under ``__agent_events.errors`` with Kafka Connect's suffixes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import MessageSizeTooLargeError

from agent_events.agent_runtime.errors import KafkaError
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.consumers.copies import CopySizes, copy_sizes, without_value
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.headers import Headers, header_value
from agent_events.transport import backend_for, backoff_delay, start_client

__all__ = [
    "ERROR_HEADER_PREFIX",
    "REDRIVE_COUNT_HEADER",
    "REDRIVE_FOR_GROUP_HEADER",
    "REDRIVE_HEADER_PREFIX",
    "DeadLetter",
    "DeadLetterPublisher",
    "Stage",
    "dead_letter_headers",
    "error_headers_of",
]

logger = logging.getLogger(__name__)

ERROR_HEADER_PREFIX = "__agent_events.errors"
REDRIVE_HEADER_PREFIX = "__agent_events.redrive"
"""Every re-drive header starts with it (a record sent back from the DLQ)."""
REDRIVE_FOR_GROUP_HEADER = f"{REDRIVE_HEADER_PREFIX}.for.group"
REDRIVE_COUNT_HEADER = f"{REDRIVE_HEADER_PREFIX}.count"
_MAX_STACKTRACE = 8_000

Stage = Literal["decode", "handle"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record to dead-letter and the reason, as the consumer saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    stage: Stage
    error: BaseException
    consumer_group: str
    handler: str | None = None
    retry_count: int = 0
    first_failure_ms: int | None = None

    @classmethod
    def of(
        cls,
        record: Any,
        *,
        stage: Stage,
        error: BaseException,
        consumer_group: str,
        handler: str | None = None,
        retry_count: int = 0,
        first_failure_ms: int | None = None,
    ) -> DeadLetter:
        """The dead letter of a fetched ``record`` (original key, value and headers kept)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
            stage=stage,
            error=error,
            consumer_group=consumer_group,
            handler=handler,
            retry_count=retry_count,
            first_failure_ms=first_failure_ms,
        )


def dead_letter_headers(letter: DeadLetter) -> Headers:
    """The original headers plus the error headers (earlier error headers replaced)."""
    p = ERROR_HEADER_PREFIX
    error = letter.error
    stack = "".join(traceback.format_exception(error))[-_MAX_STACKTRACE:]
    extra: list[tuple[str, str]] = [
        (f"{p}.topic", letter.topic),
        (f"{p}.partition", str(letter.partition)),
        (f"{p}.offset", str(letter.offset)),
        (f"{p}.exception.class.name", f"{type(error).__module__}.{type(error).__qualname__}"),
        (f"{p}.exception.message", str(error)[:2_000]),
        (f"{p}.exception.stacktrace", stack),
        (f"{p}.stage", letter.stage),
        (f"{p}.consumer.group", letter.consumer_group),
        (f"{p}.retry.count", str(letter.retry_count)),
        (f"{p}.first.failure.ts", str(letter.first_failure_ms or int(time.time() * 1000))),
    ]
    if letter.handler:
        extra.append((f"{p}.handler", letter.handler))
    kept = [(k, v) for k, v in letter.headers if not k.startswith(p)]
    return kept + [(k, v.encode()) for k, v in extra]


def error_headers_of(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The error headers of a dead-lettered record, by suffix (``stage``, ``topic`` ...)."""
    p = ERROR_HEADER_PREFIX + "."
    return {k[len(p) :]: v.decode("utf-8", "replace") for k, v in headers if k.startswith(p)}


class DeadLetterPublisher(AsyncResource):
    """Writes dead letters and waits for each to be acknowledged.

    The consumer commits past a failed record only once its dead letter is
    acknowledged. Steps of :meth:`publish`:

    1. write the record with its error headers, with a producer that takes what the
       source topics take plus room for the headers (:mod:`consumers.copies`);
    2. when it is too large to write as it is (a value near the size limit plus the
       error headers), write it without its value, with ``value.truncated``,
       ``value.size`` and ``value.sha256`` headers: the original stays findable on the
       source topic at the ``topic``/``partition``/``offset`` the headers name;
    3. when the DLQ cannot be written, retry with backoff (logged) for
       ``write_deadline_s``, then raise :class:`KafkaError`: the service stops loudly
       rather than spin on one record forever.
    """

    def __init__(
        self,
        connection: KafkaConnectionConfig,
        topic: str,
        *,
        sources: Sequence[str] = (),
        retry_backoff_max_s: float = 5.0,
        write_deadline_s: float = 120.0,
    ) -> None:
        self.topic = topic
        self._connection = connection
        self._backoff_max = retry_backoff_max_s
        self._write_deadline_s = write_deadline_s
        self._sources = tuple(sources)
        self._producer: AIOKafkaProducer | None = None
        self._sizes: CopySizes | None = None
        self.published = 0

    async def start(self) -> None:
        """Size the producer for what the source topics take, then connect."""
        self._sizes = await copy_sizes(self._connection, self._sources, [self.topic])
        options = {
            "acks": "all",
            "linger_ms": 0,
            "max_request_size": self._sizes.max_request_size,
        }
        producer = backend_for(self._connection).producer(self._connection, options)
        await start_client(producer, self._connection, what="dead-letter producer")
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, letter: DeadLetter) -> None:
        """Write ``letter`` to the DLQ; returns once the broker acknowledged it.

        A letter over the DLQ's limit (known at start, or the broker's refusal) is
        written without its value (:mod:`consumers.copies`).
        """
        if self._producer is None or self._sizes is None:
            raise KafkaError("the dead-letter publisher is not started")
        headers = dead_letter_headers(letter)
        if self._sizes.fits(self.topic, letter.key, letter.value, headers):
            try:
                await self._send_until_acknowledged(letter.key, letter.value, headers, what=letter)
                return
            except MessageSizeTooLargeError:
                pass
        logger.warning(
            "dead letter of %s[%d]@%d is too large to write (%d-byte value); writing it "
            "without its value",
            letter.topic,
            letter.partition,
            letter.offset,
            len(letter.value or b""),
        )
        truncated = without_value(headers, letter.value, prefix=ERROR_HEADER_PREFIX)
        await self._send_until_acknowledged(letter.key, None, truncated, what=letter)

    async def _send_until_acknowledged(
        self, key: bytes | None, value: bytes | None, headers: Headers, *, what: Any
    ) -> None:
        producer = self._producer
        assert producer is not None
        give_up_at = time.monotonic() + self._write_deadline_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await producer.send_and_wait(self.topic, value=value, key=key, headers=headers)
                self.published += 1
                return
            except MessageSizeTooLargeError:
                raise  # no retry makes it smaller: step 2
            except AIOKafkaError as exc:
                if time.monotonic() >= give_up_at:
                    raise KafkaError(
                        f"cannot write to dead-letter topic {self.topic} for "
                        f"{self._write_deadline_s:g}s ({exc}); stopping rather than skip {what}"
                    ) from exc
                delay = backoff_delay(attempt, initial_s=0.1, max_s=self._backoff_max)
                logger.error(
                    "cannot write to dead-letter topic %s (%s); retrying in %.1fs",
                    self.topic,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)


def redrive_headers(headers: Sequence[tuple[str, bytes]], *, for_group: str | None) -> Headers:
    """Headers of a re-driven record: the originals, without error headers, plus a mark.

    ``for_group`` names the consumer group that failed it: other groups, which
    handled the record the first time, skip it instead of handling it twice.
    """
    count = header_value(headers, REDRIVE_COUNT_HEADER)
    n = int(count) + 1 if count and count.isdigit() else 1
    kept: Headers = [
        (k, v)
        for k, v in headers
        if not k.startswith(ERROR_HEADER_PREFIX)
        and k not in (REDRIVE_FOR_GROUP_HEADER, REDRIVE_COUNT_HEADER)
    ]
    kept.append((REDRIVE_COUNT_HEADER, str(n).encode()))
    if for_group:
        kept.append((REDRIVE_FOR_GROUP_HEADER, for_group.encode()))
    return kept
