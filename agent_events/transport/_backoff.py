"""Starting a Kafka client against a broker that may not be up yet: one backoff for all.

aiokafka fails at ``start()`` at once when no bootstrap server answers; an event backbone
should wait a little (containers start in any order), then fail with one clear, typed
error rather than a connection traceback. Every client start goes through
:func:`start_with_backoff`: exponential backoff with full jitter (so a fleet restarting
together does not knock in step), capped by the deadline, the library's own retry noise
demoted to DEBUG until the deadline passes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
)

from agent_events.agent_runtime.errors import AuthenticationFailed, BrokerUnavailable
from agent_events.transport._aiokafka import RETRIABLE
from agent_events.transport._quiet import AUTHENTICATION_ERRORS, quiet_library_logs

__all__ = ["BrokerUnreachable", "backoff_delay", "start_with_backoff"]

logger = logging.getLogger(__name__)

Retriable = tuple[type[BaseException], ...]


class BrokerUnreachable(BrokerUnavailable):
    """No broker answered at ``bootstrap_servers`` within the connect deadline.

    Carries the facts so a caller can retell the failure in its own words (the CLI names
    the service the user started) without parsing the message.
    """

    def __init__(
        self, what: str, bootstrap_servers: str, deadline_s: float, attempts: int, last: str
    ) -> None:
        self.what = what
        self.bootstrap_servers = bootstrap_servers
        self.deadline_s = deadline_s
        self.attempts = attempts
        self.last_error = last
        super().__init__(
            f"{what}: no Kafka broker answered at {bootstrap_servers} within {deadline_s:g}s "
            f"({attempts} attempts; last error: {last}). Check that the broker runs and "
            "that bootstrap_servers is right."
        )

    def retold(self, what: str) -> BrokerUnreachable:
        """The same failure, reported as ``what`` (e.g. the command the user ran)."""
        return BrokerUnreachable(
            what, self.bootstrap_servers, self.deadline_s, self.attempts, self.last_error
        )


def backoff_delay(attempt: int, *, initial_s: float, max_s: float) -> float:
    """The wait after failed attempt ``attempt`` (1-based): exponential, full jitter.

    Uniform in ``[0, min(max_s, initial_s * 2**(attempt-1))]``: clients that failed
    together spread out instead of retrying in step.
    """
    ceiling = min(max_s, initial_s * 2.0 ** min(attempt - 1, 60))
    return random.uniform(0.0, ceiling)


def _refused(
    what: str, bootstrap_servers: str, credentials: str | None, exc: BaseException
) -> AuthenticationFailed:
    who = f" ({credentials})" if credentials else ""
    return AuthenticationFailed(
        f"{what}: the broker at {bootstrap_servers} refused the authentication{who}: "
        f"{_describe(exc)}. Check the SASL mechanism, user and password."
    )


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "none"
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


async def start_with_backoff(
    start: Callable[[], Awaitable[None]],
    *,
    what: str,
    bootstrap_servers: str,
    deadline_s: float,
    close: Callable[[], Awaitable[None]] | None = None,
    initial_backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
    retriable: Retriable | None = None,
    credentials: str | None = None,
) -> None:
    """Call ``start`` until it succeeds, backing off with jitter, for ``deadline_s``.

    Raises :class:`BrokerUnreachable` (a :class:`BrokerUnavailable`) naming the servers
    and the last error when the deadline passes. ``close`` is called after each failed
    attempt, since a half-started client holds sockets and tasks. ``retriable`` defaults
    to the errors aiokafka raises for a broker that is not there (yet).

    A broker that refuses the credentials or the mechanism is not retried: that raises
    :class:`AuthenticationFailed` at once, naming ``credentials`` (mechanism and user,
    never the password).
    """
    retry_on = RETRIABLE if retriable is None else retriable
    give_up_at = time.monotonic() + deadline_s

    def wait(state: RetryCallState) -> float:
        delay = backoff_delay(
            state.attempt_number, initial_s=initial_backoff_s, max_s=max_backoff_s
        )
        return max(0.0, min(delay, give_up_at - time.monotonic()))

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.debug("%s: broker not reachable yet (%s); retrying", what, _describe(error))

    async def attempt() -> None:
        try:
            await start()
        except AUTHENTICATION_ERRORS as exc:
            if close is not None:
                await close()
            raise _refused(what, bootstrap_servers, credentials, exc) from None
        except retry_on:
            if close is not None:
                await close()
            if window.refused is not None:
                raise _refused(what, bootstrap_servers, credentials, window.refused) from None
            raise

    retrying = AsyncRetrying(
        stop=stop_after_delay(deadline_s),
        wait=wait,
        retry=retry_if_exception_type(retry_on),
        before_sleep=log_retry,
    )
    with quiet_library_logs() as window:
        try:
            await retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise BrokerUnreachable(
                what,
                bootstrap_servers,
                deadline_s,
                exc.last_attempt.attempt_number,
                _describe(last),
            ) from last
