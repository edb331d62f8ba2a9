"""Where replayed records go: a handler, a set of handlers, another topic, a JSON-lines file.

A sink is an async context manager; :func:`consumers.replay.replay` enters it before the
first record and leaves it after the last, so whatever a sink buffers (a producer's batches,
file lines) is written before the replay returns. A sink that raises stops the replay: the
exception propagates with a note naming the record, and nothing after it is delivered.

Sinks that take events (``needs_event``) never see records that cannot be decoded: the
replay counts and logs those. :class:`TopicSink` copies bytes and sees every record.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

from aiokafka import AIOKafkaProducer

from agent_events.agent_runtime.errors import ConfigError, ProduceError
from agent_events.agent_runtime.event_bus import EventBus, Handler
from agent_events.agent_runtime.events import EventType, SystemEvent, event_as_json
from agent_events.consumers.runtime import HandlerSpec
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.producers.partitioner import SessionKeyPartitioner
from agent_events.transport import backend_for, start_client

__all__ = ["HandlerSink", "JsonLinesSink", "ReplaySink", "ServiceSink", "TopicSink"]


class ReplaySink(ABC):
    """Receives replayed records in offset order per partition."""

    needs_event: ClassVar[bool] = True
    """Whether :meth:`write` needs the decoded event (``False``: raw records are enough)."""

    @property
    def description(self) -> str:
        """A few words for reports: ``file events.jsonl``, ``topic agent.events.copy``."""
        return type(self).__name__

    async def open(self) -> None:  # noqa: B027 (optional hook)
        """Acquire what the sink writes to (called once, before the first record)."""

    @abstractmethod
    async def write(self, record: Any, event: SystemEvent | None) -> None:
        """Deliver one record (an aiokafka ``ConsumerRecord``) and its decoded event."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Write out what is buffered and release resources (called once, also after errors)."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class HandlerSink(ReplaySink):
    """Calls ``handler(event)`` for every event: any async (or plain) callable.

    Rebuild a store with ``HandlerSink(EventSourcingHandler(store))``; the store is
    idempotent on ``event_id``, so replaying twice stores nothing twice.
    """

    def __init__(self, handler: Handler, *, name: str | None = None) -> None:
        self.handler = handler
        self.name = name

    @property
    def description(self) -> str:
        if self.name is not None:
            return self.name
        name = getattr(self.handler, "__qualname__", type(self.handler).__qualname__)
        return f"handler {name}"

    async def write(self, record: Any, event: SystemEvent | None) -> None:
        assert event is not None
        result = self.handler(event)
        if inspect.isawaitable(result):
            await result


class ServiceSink(ReplaySink):
    """Runs a service's handlers the way :class:`~consumers.ConsumerService` does.

    ``handlers`` take the same form as the service's (a handler for every event, or an
    ``(event_type, handler)`` pair); each event is dispatched on an :class:`EventBus` to the
    matching ones, concurrently, and the replay waits for all of them. A handler that fails
    (or exceeds ``handler_timeout_s``) stops the replay with its exception.
    """

    def __init__(self, handlers: Iterable[HandlerSpec], *, handler_timeout_s: float = 30.0) -> None:
        self._specs = list(handlers)
        if not self._specs:
            raise ConfigError("a service sink needs at least one handler")
        self.bus = EventBus(handler_timeout=handler_timeout_s)

    @property
    def description(self) -> str:
        return f"service of {len(self._specs)} handlers"

    async def open(self) -> None:
        for spec in self._specs:
            event_type, handler = spec if isinstance(spec, tuple) else (EventType.ANY, spec)
            await self.bus.subscribe(event_type, handler)

    async def write(self, record: Any, event: SystemEvent | None) -> None:
        assert event is not None
        result = await self.bus.dispatch(event)
        if not result.ok:
            failure = result.failures[0]
            assert failure.error is not None
            failure.error.add_note(f"in handler {failure.handler_name}")
            raise failure.error

    async def close(self) -> None:
        await self.bus.stop()


class TopicSink(ReplaySink):
    """Copies records to ``topic`` with their key, value and headers (bytes, not re-encoded).

    Keys are partitioned with murmur2 as the producer does, so a session stays on one
    partition of the target and in order. Every record is acknowledged (``acks=all``) before
    :meth:`close` returns; a record the broker refuses raises :class:`ProduceError`.
    """

    needs_event: ClassVar[bool] = False

    def __init__(
        self, connection: KafkaConnectionConfig, topic: str, *, linger_ms: int = 5
    ) -> None:
        self.connection = connection
        self.topic = topic
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[Any]] = []
        self.sent = 0

    @property
    def description(self) -> str:
        return f"topic {self.topic}"

    async def open(self) -> None:
        options = {
            "acks": "all",
            "linger_ms": self.linger_ms,
            "partitioner": SessionKeyPartitioner(),
        }
        producer = backend_for(self.connection).producer(self.connection, options)
        await start_client(producer, self.connection, what="replay producer")
        # A metadata request naming an unknown topic would auto-create it on most brokers;
        # one for every topic creates nothing.
        await producer.client.force_metadata_update()
        if not producer.client.cluster.partitions_for_topic(self.topic):
            await producer.stop()
            raise ConfigError(f"target topic {self.topic!r} does not exist; create it first")
        self._producer = producer

    async def write(self, record: Any, event: SystemEvent | None) -> None:
        assert self._producer is not None, "enter the sink before writing"
        future = await self._producer.send(
            self.topic, value=record.value, key=record.key, headers=list(record.headers or ())
        )
        self._pending.append(future)
        if len(self._pending) >= 1000:
            await self._settle()

    async def _settle(self) -> None:
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*pending, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        self.sent += len(results) - len(failed)
        if failed:
            raise ProduceError(
                f"{len(failed)} replayed records were not acknowledged by topic "
                f"{self.topic!r}: {failed[0]!r}"
            ) from failed[0]

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await producer.flush()
            await self._settle()
        finally:
            await producer.stop()


class JsonLinesSink(ReplaySink):
    """Writes one JSON object per event to ``path`` (``"-"``: standard output).

    The envelope is kcat's ``-J`` (as ``agent-events tail --json`` prints it): ``topic``,
    ``partition``, ``offset``, ``ts`` (ms), ``headers`` (text), ``key``, and ``payload`` (the
    decoded event as JSON). The file is
    overwritten; lines are written from a worker thread in chunks, never on the loop.
    """

    def __init__(self, path: str | Path, *, chunk_lines: int = 1000) -> None:
        self.path = path
        self._chunk = max(1, chunk_lines)
        self._lines: list[str] = []
        self._file: IO[str] | None = None
        self.written = 0

    @property
    def description(self) -> str:
        return "standard output" if str(self.path) == "-" else f"file {self.path}"

    async def open(self) -> None:
        if str(self.path) == "-":
            self._file = sys.stdout
            return
        try:
            self._file = await asyncio.to_thread(open, self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    async def write(self, record: Any, event: SystemEvent | None) -> None:
        assert event is not None
        envelope = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "ts": record.timestamp,
            "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "payload": event_as_json(event),
        }
        self._lines.append(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")))
        if len(self._lines) >= self._chunk:
            await self._write_out()

    async def _write_out(self) -> None:
        lines, self._lines = self._lines, []
        if lines and self._file is not None:
            text = "\n".join(lines) + "\n"
            file = self._file
            await asyncio.to_thread(_write_and_flush, file, text)
            self.written += len(lines)

    async def close(self) -> None:
        try:
            await self._write_out()
        finally:
            file, self._file = self._file, None
            if file is not None and file is not sys.stdout:
                await asyncio.to_thread(file.close)


def _write_and_flush(file: IO[str], text: str) -> None:
    file.write(text)
    file.flush()
