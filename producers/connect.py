"""Starting a Kafka client against a broker that may not be up yet.

aiokafka fails at ``start()`` at once when no bootstrap server answers; an event
backbone should wait a little (containers start in any order), then fail with one
clear, typed error rather than a connection traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, RequestTimedOutError

from agent_events.agent_runtime.errors import BrokerUnavailable

__all__ = ["start_with_backoff"]

logger = logging.getLogger(__name__)

_RETRIABLE = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, OSError, TimeoutError)


async def start_with_backoff(
    start: Callable[[], Awaitable[None]],
    *,
    what: str,
    bootstrap_servers: str,
    deadline_s: float,
    close: Callable[[], Awaitable[None]] | None = None,
    initial_backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
) -> None:
    """Call ``start`` until it succeeds, backing off exponentially, for ``deadline_s``.

    Raises :class:`BrokerUnavailable` naming the servers and the last error when
    the deadline passes. ``close`` is called after each failed attempt, since a
    half-started aiokafka client holds sockets and tasks.
    """
    give_up_at = time.monotonic() + deadline_s
    backoff = initial_backoff_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await start()
            return
        except _RETRIABLE as exc:
            if close is not None:
                await close()
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"{what}: no Kafka broker answered at {bootstrap_servers} within "
                    f"{deadline_s:g}s ({attempt} attempts; last error: {exc}). Check that the "
                    "broker runs and that bootstrap_servers is right."
                ) from exc
            logger.info("%s: broker not reachable yet (%s); retrying in %.1fs", what, exc, backoff)
            await asyncio.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, max_backoff_s)
