"""Keeping a client library's connection noise out of the log while we retry.

While :func:`~agent_events.transport.start_with_backoff` retries an unreachable broker,
aiokafka logs an ERROR line per failed attempt (``Unable connect to ...``): a user who
started a service against a broker that is down would get dozens of lines before the one
that says what is wrong. Inside a start window those records are demoted to DEBUG (kept
when the process logs at DEBUG, dropped otherwise).

Outside it, a running client whose broker goes away does the same ~100 times a second. Those
records go to the process's :class:`~agent_events.transport._outage.ConnectionOutage`: one
WARNING when the outage starts, a summary at most every 30 s, one INFO line when the broker
answers again; :func:`connection_outage` tells readiness checks about it. Every other record
is logged as the library logged it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from agent_events.transport._outage import ConnectionOutage, OutageState

__all__ = [
    "AUTHENTICATION_ERRORS",
    "broker_answered",
    "connection_outage",
    "quiet_library_logs",
]

# What aiokafka raises (and logs, then hides behind "unable to bootstrap") for credentials
# or a mechanism the broker refuses.
AUTHENTICATION_ERRORS: tuple[type[BaseException], ...] = (
    AuthenticationFailedError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)

# Loggers that log connection failures during bootstrap (aiokafka names them by module).
_LIBRARY_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.admin.client",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.fetcher",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


class _Window:
    """Open while a start is being retried; tasks the library starts share the same object.

    ``refused`` keeps an authentication failure the library logged and then hid behind
    "unable to bootstrap": the caller fails at once instead of retrying until the deadline.
    """

    __slots__ = ("open", "refused")

    def __init__(self) -> None:
        self.open = True
        self.refused: BaseException | None = None


# A mutable window, not a flag: a task the library starts inside the window copies the
# context, and must see the window close when the start returns.
_current: contextvars.ContextVar[_Window | None] = contextvars.ContextVar(
    "agent_events_start_window", default=None
)


class _LibraryRecords(logging.Filter):
    """The one filter on the library's loggers; a record goes through three steps.

    1. Inside an open start window (its task started a client that is being retried), the
       record is demoted to DEBUG: kept when the process logs at DEBUG, dropped otherwise.
       The library's own loggers are usually capped at WARNING: whoever runs the process
       at DEBUG (the root logger) still sees the retries.
    2. ``GroupCoordinatorNotAvailableError`` at ERROR is demoted to INFO: on a fresh broker
       the coordinator appears once ``__consumer_offsets`` is created and aiokafka retries
       by itself; an ERROR line there sends users looking for a fault that is not one.
    3. A connection error outside a start window is counted by the process's
       :class:`ConnectionOutage`, which logs one line when the outage starts, a summary
       now and then, and one when the broker answers again; the record itself is demoted
       to DEBUG like a start-up retry.
    """

    def __init__(self, outage: ConnectionOutage) -> None:
        super().__init__()
        self.outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        window = _current.get()
        if window is not None and window.open:
            refused = _authentication_error(record)
            if refused is not None:
                window.refused = refused
            return _demote(record, logging.DEBUG)
        if record.levelno >= logging.ERROR and _coordinator_not_ready(record):
            _demote(record, logging.INFO)
            return True
        return self.outage.filter(record) or _demote(record, logging.DEBUG)


def _demote(record: logging.LogRecord, level: int) -> bool:
    """Lower ``record`` to ``level``; whether the process logs that level (the root decides)."""
    record.levelno = level
    record.levelname = logging.getLevelName(level)
    return logging.getLogger().isEnabledFor(level)


def _coordinator_not_ready(record: logging.LogRecord) -> bool:
    return record.name == _COORDINATOR_LOGGER and "GroupCoordinatorNotAvailable" in str(record.args)


_COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
_OUTAGE = ConnectionOutage()
_FILTER = _LibraryRecords(_OUTAGE)


def _install() -> None:
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def connection_outage() -> OutageState | None:
    """The broker outage this process's clients are in, or ``None``.

    Opened by the first connection error a client library logs (outside a start window),
    closed by :func:`broker_answered`; see :class:`ConnectionOutage`.
    """
    return _OUTAGE.state


def broker_answered() -> None:
    """Tell the outage tracking that a request to the broker just succeeded.

    Callers that poll the broker anyway (the consumer-lag sampler) call it after each
    success; it ends an outage once the library's connection errors have stopped, with one
    INFO line.
    """
    _OUTAGE.answered()


def _authentication_error(record: logging.LogRecord) -> BaseException | None:
    args = record.args if isinstance(record.args, tuple) else ()
    return next((a for a in args if isinstance(a, AUTHENTICATION_ERRORS)), None)


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[_Window]:
    """Demote the client library's log records to DEBUG for the duration of the block.

    Yields the window, whose ``refused`` tells an authentication failure from a broker
    that is not there.
    """
    _install()
    window = _Window()
    token = _current.set(window)
    try:
        yield window
    finally:
        window.open = False
        _current.reset(token)
