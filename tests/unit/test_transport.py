"""The Kafka plumbing: one start backoff with jitter and a deadline, quiet library retries,
client factories that clean up, the client-kind seam, and the one bounded LRU map."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from agent_events.agent_runtime.errors import BrokerUnavailable, ConfigError
from agent_events.transport import (
    BrokerUnreachable,
    KafkaConnectionConfig,
    LRUMap,
    admin_client,
    backoff_delay,
    consumer_client,
    producer_client,
    quiet_library_logs,
    start_with_backoff,
)


@pytest.fixture
def closed_address() -> Iterator[str]:
    """``127.0.0.1:port`` of a bound, never-listening socket: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.mark.parametrize("factory", [admin_client, producer_client, consumer_client])
async def test_a_client_against_a_closed_port_gives_up_at_the_deadline_naming_the_address(
    factory: object, closed_address: str
) -> None:
    connection = KafkaConnectionConfig(bootstrap_servers=closed_address, connect_timeout_s=0.5)
    tasks_before = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable) as caught:
        async with factory(connection, what="the test client"):  # type: ignore[operator]
            pytest.fail("a client against a closed port started")
    took = time.monotonic() - started
    assert isinstance(caught.value, BrokerUnavailable)
    assert caught.value.bootstrap_servers == closed_address
    assert caught.value.attempts >= 2
    assert str(caught.value).startswith(
        f"the test client: no Kafka broker answered at {closed_address}"
    )
    assert "\n" not in str(caught.value)
    assert took < 0.5 + 1.0, f"the deadline was overrun: {took:.2f}s"
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - tasks_before == set(), "a failed start left tasks behind"


async def test_library_retry_errors_are_demoted_to_debug_while_starting(
    closed_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    connection = KafkaConnectionConfig(bootstrap_servers=closed_address, connect_timeout_s=0.3)
    with pytest.raises(BrokerUnreachable):
        async with producer_client(connection):
            pass
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert noisy == [], [r.getMessage() for r in noisy]


async def test_library_retry_errors_stay_visible_at_debug(
    closed_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = KafkaConnectionConfig(bootstrap_servers=closed_address, connect_timeout_s=0.3)
    with pytest.raises(BrokerUnreachable):
        async with producer_client(connection):
            pass
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")]
    assert any("Unable connect to" in m for m in messages)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name.startswith("aiokafka"))


async def test_library_errors_after_the_start_window_keep_their_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task the library starts inside the window copies its context; it must not stay quiet."""
    caplog.set_level(logging.INFO)
    later = asyncio.Event()

    async def background() -> None:
        await later.wait()
        logging.getLogger("aiokafka").error("broker connection lost")

    with quiet_library_logs():
        task = asyncio.create_task(background())
    later.set()
    await task
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "broker connection lost")
    ]


async def test_backoff_closes_each_failed_attempt_and_waits_with_jitter_within_the_deadline() -> (
    None
):
    attempts: list[float] = []
    closed = 0

    async def start() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 6:
            raise OSError("refused")

    async def close() -> None:
        nonlocal closed
        closed += 1

    await start_with_backoff(
        start,
        what="t",
        bootstrap_servers="h:1",
        deadline_s=10,
        close=close,
        initial_backoff_s=0.02,
        max_backoff_s=0.1,
    )
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert (len(attempts), closed) == (6, 5)
    assert all(gap <= 0.1 + 0.05 for gap in gaps), gaps
    assert len({round(gap, 4) for gap in gaps}) > 1, f"no jitter: {gaps}"


async def test_an_error_that_is_not_a_connection_failure_is_not_retried() -> None:
    calls = 0

    async def start() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad option")

    with pytest.raises(ValueError, match="bad option"):
        await start_with_backoff(start, what="t", bootstrap_servers="h:1", deadline_s=5)
    assert calls == 1


def test_retold_keeps_the_facts_under_a_new_name() -> None:
    error = BrokerUnreachable("dead-letter producer", "h:1", 2.0, 7, "refused")
    retold = error.retold("the metrics service")
    assert str(retold).startswith("the metrics service: no Kafka broker answered at h:1 within 2s")
    assert (retold.attempts, retold.last_error) == (7, "refused")


def test_the_client_kind_is_checked_at_load() -> None:
    assert KafkaConnectionConfig().client == "aiokafka"
    with pytest.raises(ValidationError, match="aiokafka"):
        KafkaConnectionConfig(client="nope")  # type: ignore[arg-type]


def test_client_kwargs_never_carry_our_own_fields() -> None:
    kwargs = KafkaConnectionConfig(client_id="me").client_kwargs()
    assert "client" not in kwargs
    assert "connect_timeout_s" not in kwargs
    assert kwargs["client_id"] == "me"


def test_sasl_without_a_mechanism_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs sasl_mechanism"):
        KafkaConnectionConfig(security_protocol="SASL_PLAINTEXT").client_kwargs()


def test_lru_map_forgets_the_least_recently_used_first_and_counts_it() -> None:
    lru: LRUMap[str, int] = LRUMap(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.touch("a")
    lru.put("c", 3)
    assert list(lru) == ["a", "c"]
    assert lru.evicted == 1
    assert lru.get_or_create("a", lambda: 99) == 1
    assert lru.get_or_create("d", lambda: 4) == 4
    assert list(lru) == ["a", "d"]
    assert (lru.evicted, len(lru), "c" in lru) == (2, 2, False)
    assert not lru.touch("c")
    assert lru.pop("a") == 1
    lru.clear()
    assert (len(lru), lru.evicted) == (0, 2)


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_lru_map_needs_a_positive_size(size: object) -> None:
    with pytest.raises(ConfigError, match="maxsize"):
        LRUMap(size)  # type: ignore[arg-type]


def test_backoff_delay_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    delays = {
        n: [backoff_delay(n, initial_s=0.1, max_s=1.0) for _ in range(200)] for n in (1, 3, 50)
    }
    assert all(0.0 <= d <= 0.1 for d in delays[1])
    assert all(0.0 <= d <= 0.4 for d in delays[3])
    assert max(delays[3]) > 0.2
    assert all(0.0 <= d <= 1.0 for d in delays[50])
    assert max(delays[50]) > 0.5
    assert len(set(delays[50])) > 100, "no jitter"


async def test_a_client_cancelled_while_starting_leaves_no_task_behind(
    closed_address: str,
) -> None:
    connection = KafkaConnectionConfig(bootstrap_servers=closed_address, connect_timeout_s=30)
    tasks_before = asyncio.all_tasks()

    async def use() -> None:
        async with producer_client(connection):
            pytest.fail("a client against a closed port started")

    task = asyncio.create_task(use())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - tasks_before == set()


def test_a_coordinator_not_yet_available_is_logged_at_info_not_error() -> None:
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    from agent_events.transport import quiet_library_logs

    with quiet_library_logs():  # installs the library's log filters
        pass
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
        logger.error("Group Coordinator Request failed: %s", RuntimeError("something else"))
    finally:
        logger.removeHandler(handler)
    assert [r.levelname for r in seen] == ["INFO", "ERROR"]
