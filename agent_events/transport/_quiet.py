"""Keeping a client library's connection noise out of the log while we retry.

While :func:`~agent_events.transport.start_with_backoff` retries an unreachable broker,
aiokafka logs an ERROR line per failed attempt (``Unable connect to ...``): a user who
started a service against a broker that is down would get dozens of lines before the one
that says what is wrong. Inside a start window those records are demoted to DEBUG (kept
when the process logs at DEBUG, dropped otherwise); outside it the library logs as usual.
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

__all__ = ["AUTHENTICATION_ERRORS", "quiet_library_logs"]

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


class _DemoteWhileStarting(logging.Filter):
    """Demote a library record to DEBUG while its task is inside an open start window."""

    def filter(self, record: logging.LogRecord) -> bool:
        window = _current.get()
        if window is None or not window.open or record.levelno <= logging.DEBUG:
            return True
        refused = _authentication_error(record)
        if refused is not None:
            window.refused = refused
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        # The library's own loggers are usually capped at WARNING: whoever runs the
        # process at DEBUG (the root logger) still sees the retries.
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class _DemoteCoordinatorNotReady(logging.Filter):
    """aiokafka logs ``GroupCoordinatorNotAvailableError`` at ERROR before a first join.

    On a fresh broker the coordinator appears once ``__consumer_offsets`` is created, and
    aiokafka retries by itself; an ERROR line there sends users looking for a fault that
    is not one. Kept at INFO, so it is still there for whoever looks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "GroupCoordinatorNotAvailable" in str(record.args):
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
        return True


_FILTER = _DemoteWhileStarting()
_COORDINATOR_FILTER = _DemoteCoordinatorNotReady()
_COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"


def _install() -> None:
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    coordinator = logging.getLogger(_COORDINATOR_LOGGER)
    if _COORDINATOR_FILTER not in coordinator.filters:
        coordinator.addFilter(_COORDINATOR_FILTER)


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
