"""A broker outage seen through the client library's connection errors: three lines, not 94 a second.

While a broker is down, aiokafka's tasks (fetcher, coordinator, metadata refresh) each retry
every ~100 ms and log an ERROR line per attempt. :class:`ConnectionOutage` turns that stream
into what an operator needs: one WARNING when the outage starts (``lost the connection to
the broker at HOST:PORT; retrying``), at most one summary per ``summary_every_s``
(``still unreachable, N connection errors in the last 30 s``) and one INFO line once a request
succeeds again (:meth:`ConnectionOutage.answered`). :meth:`ConnectionOutage.filter` says
the records themselves are not to be logged as they are (the library's log filter keeps
them at DEBUG).

The same state answers "is the broker reachable?" for readiness: the first connection error
opens an outage within milliseconds of the broker going away, which is sooner than any
request timeout.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

__all__ = ["ConnectionOutage", "OutageState", "is_connection_error"]

logger = logging.getLogger("agent_events.transport")

# Exceptions in a record's arguments that mean "could not talk to the broker".
_CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    NodeNotReadyError,
    OSError,
)
# aiokafka's messages (templates) for a connection or metadata request that failed.
_CONNECTION_MESSAGES = (
    "Unable connect to",
    "Unable to update metadata",
    "Unable to request metadata",
)
# Consequences of an outage: counted while one is open, logged as usual otherwise (a
# coordinator also moves when nothing is wrong).
_OUTAGE_ECHOES = (
    "Marking the coordinator dead",
    "Heartbeat session expired",
    "Heartbeat failed",
)
_ADDRESS_PATTERNS = (
    re.compile(r"\('([^']+)', (\d+)"),  # Connect call failed ('127.0.0.1', 9092)
    re.compile(r"Connection at (\S+?):(\d+)\b"),  # Connection at 127.0.0.1:9092 closed
    re.compile(r'"([^"\s]+?):(\d+)"'),  # Unable connect to "kafka:9092"
)
_NODE_PATTERN = re.compile(r"node (?:with id )?(\d+)|from \[?(\d+)\b")


def is_connection_error(record: logging.LogRecord) -> bool:
    """Whether a library record reports a failed connection (or request) to a broker."""
    template = str(record.msg)
    if template.startswith(_CONNECTION_MESSAGES):
        return True
    args = record.args if isinstance(record.args, tuple) else ()
    return any(isinstance(arg, _CONNECTION_FAILURES) for arg in args)


def _is_echo(record: logging.LogRecord) -> bool:
    return str(record.msg).startswith(_OUTAGE_ECHOES)


def broker_address(text: str) -> str | None:
    """``HOST:PORT`` named in a library message, else ``node N``, else ``None``."""
    for pattern in _ADDRESS_PATTERNS:
        match = pattern.search(text)
        if match:
            return f"{match.group(1)}:{match.group(2)}"
    node = _NODE_PATTERN.search(text)
    if node:
        return f"node {node.group(1) or node.group(2)}"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class OutageState:
    """An open outage: where, since when (``time.monotonic()``) and how many errors so far."""

    address: str
    started: float
    errors: int


@dataclasses.dataclass(slots=True)
class _Open:
    address: str | None
    started: float
    last_error: float
    last_summary: float
    errors: int = 1
    since_summary: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Line:
    level: int
    message: str
    args: tuple[object, ...]
    extra: dict[str, object]


class ConnectionOutage:
    """The outage state of one process, fed with the library's records (see module doc).

    ``summary_every_s`` bounds the summaries. ``settle_s``: :meth:`answered` ends an outage
    only when no connection error came that recently, so a broker that answers one request
    while the library's other connections still fail is not declared back. A connection
    error after ``summary_every_s`` of silence starts a new outage, also in a process that
    never calls :meth:`answered`.
    """

    def __init__(
        self,
        *,
        summary_every_s: float = 30.0,
        settle_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.summary_every_s = summary_every_s
        self.settle_s = settle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open: _Open | None = None

    @property
    def state(self) -> OutageState | None:
        """The open outage, or ``None`` while the broker is (as far as we know) reachable."""
        with self._lock:
            current = self._open
            if current is None:
                return None
            return OutageState(_named(current.address), current.started, current.errors)

    def filter(self, record: logging.LogRecord) -> bool:
        """Count ``record`` if it is connection noise; ``True`` when it should be logged as is.

        Connection noise is dropped; the outage's own lines are logged instead.
        """
        if record.levelno < logging.WARNING:
            return True
        connection = is_connection_error(record)
        if not connection and not (self._open is not None and _is_echo(record)):
            return True
        with self._lock:
            line = self._count(record, opens=connection)
            keep = self._open is None
        if line is not None:
            logger.log(line.level, line.message, *line.args, extra=line.extra)
        return keep

    def answered(self) -> None:
        """A request to the broker succeeded: ends an outage that has settled (INFO line)."""
        with self._lock:
            current = self._open
            now = self._clock()
            if current is None or now - current.last_error < self.settle_s:
                return
            self._open = None
        address = _named(current.address)
        logger.info(
            "the broker at %s answers again after %.0f s (%d connection errors while unreachable)",
            address,
            now - current.started,
            current.errors,
            extra={"broker": address, "outage_s": round(now - current.started, 1)},
        )

    def _count(self, record: logging.LogRecord, *, opens: bool) -> _Line | None:
        now = self._clock()
        current = self._open
        if current is not None and now - current.last_error >= self.summary_every_s:
            current = self._open = None  # silence that long: whatever it was is over
        if current is None:
            if not opens:
                return None
            return self._start(record, now)
        current.errors += 1
        current.since_summary += 1
        current.last_error = now
        if current.address is None:
            current.address = broker_address(record.getMessage())
        if now - current.last_summary < self.summary_every_s:
            return None
        line = _Line(
            logging.WARNING,
            "the broker at %s is still unreachable: %d connection errors in the last %.0f s",
            (_named(current.address), current.since_summary, now - current.last_summary),
            {"broker": _named(current.address), "connection_errors": current.since_summary},
        )
        current.since_summary = 0
        current.last_summary = now
        return line

    def _start(self, record: logging.LogRecord, now: float) -> _Line:
        message = record.getMessage()
        address = broker_address(message)
        self._open = _Open(address, started=now, last_error=now, last_summary=now)
        return _Line(
            logging.WARNING,
            "lost the connection to the broker at %s; retrying (%s)",
            (_named(address), message),
            {"broker": _named(address)},
        )


def _named(address: str | None) -> str:
    return address if address is not None else "an unknown address"
