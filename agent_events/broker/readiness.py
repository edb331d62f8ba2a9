"""Wait until a broker serves clients: its port accepts TCP, then a metadata request answers.

A Kafka node opens its client port only once it is registered and unfenced, so the two steps
together mean "a producer started now will work". Every wait has a deadline and stops early
when the broker's process has died, so a broken config fails in seconds, not at the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError as AIOKafkaError

from agent_events.broker._process import port_accepts

__all__ = ["BrokerNotReady", "metadata_broker_ids", "wait_until_serving"]

_POLL_S = 0.1


class BrokerNotReady(Exception):
    """Internal: the deadline passed or the process died; callers wrap it with the log tail."""


async def metadata_broker_ids(bootstrap_servers: str, timeout_s: float = 5.0) -> set[int]:
    """Node ids listed by one metadata request to ``bootstrap_servers``.

    Raises OSError-like aiokafka errors or TimeoutError if nobody answers in ``timeout_s``.
    """
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        metadata_max_age_ms=int(timeout_s * 1000),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            return {int(b.nodeId) for b in client.cluster.brokers()}
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def wait_until_serving(
    host: str,
    port: int,
    *,
    deadline: float,
    expected_brokers: int = 1,
    process_alive: Callable[[], bool] = lambda: True,
) -> None:
    """Return once ``host:port`` answers metadata listing ``expected_brokers`` brokers.

    ``deadline`` is a ``time.monotonic()`` value. Raises BrokerNotReady when the
    deadline passes or ``process_alive()`` turns False.
    """
    bootstrap = f"{host}:{port}"
    last_error = "the port never accepted a connection"
    while True:
        if not process_alive():
            raise BrokerNotReady("the broker process exited")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerNotReady(f"not ready before the deadline ({last_error})")
        if await port_accepts(host, port, timeout_s=min(0.5, remaining)):
            try:
                ids = await metadata_broker_ids(bootstrap, timeout_s=max(0.5, min(5.0, remaining)))
            except (AIOKafkaError, OSError, TimeoutError) as exc:  # each means "not yet"
                last_error = f"metadata request failed: {exc!r}"
            else:
                if len(ids) >= expected_brokers:
                    return
                last_error = f"metadata lists {len(ids)} of {expected_brokers} brokers"
        await asyncio.sleep(_POLL_S)
