"""The PostgreSQL event store against a real PostgreSQL server, alone and behind the store service.

The ``postgres_url`` fixture starts a throwaway cluster (``initdb`` + ``pg_ctl``, found on
PATH or under ``/usr/lib/postgresql/*/bin``; ``.ci/run`` installs Debian's ``postgresql``)
on a free 127.0.0.1 port, and stops it after the module. Without PostgreSQL the tests skip
and say why.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_events.agent_runtime.errors import ConfigError, SinkError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.consumers.handlers import PostgresEventStore

pytestmark = pytest.mark.postgres

asyncpg = pytest.importorskip(
    "asyncpg", reason="the PostgreSQL store needs asyncpg (postgres extra)"
)

# The end-to-end helpers of the services suite (this folder is on sys.path under pytest).
from test_services import handled, produce, running, service_settings, until  # noqa: E402


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: from PATH, else the newest Debian install."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    installed = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(installed[-1]).parent if installed else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """``postgresql://agent@127.0.0.1:PORT/postgres`` of a cluster that lives for the module."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb); .ci/run installs Debian's postgresql")
    base = Path(tempfile.mkdtemp(prefix="agent-events-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres" if _user_exists("postgres") else "nobody"
        record = pwd.getpwnam(user)
        os.chown(base, record.pw_uid, record.pw_gid)
        run_as = {"user": record.pw_uid, "group": record.pw_gid}
    data, log = base / "data", base / "server.log"
    port = free_port()
    try:
        subprocess.run(
            [bin_dir / "initdb", "-D", data, "-U", "agent", "--auth=trust", "-E", "UTF8", "-N"],
            check=True,
            capture_output=True,
            timeout=120,
            **run_as,
        )
        subprocess.run(
            [
                bin_dir / "pg_ctl",
                "-D",
                data,
                "-l",
                log,
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
            **run_as,
        )
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r} {tail}") from exc
    try:
        yield f"postgresql://agent@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            **run_as,
        )
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def fresh_table() -> str:
    return f"events_{uuid.uuid4().hex[:12]}"


def event(session: str, i: int, **metadata: Any) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id="planner",
        session_id=session,
        execution_time_ms=i,
        metadata={"i": i, **metadata},
    )


async def test_each_event_id_is_stored_once_and_read_back_in_insertion_order(
    postgres_url: str,
) -> None:
    events = [event(f"s{i % 2}", i) for i in range(6)]
    async with PostgresEventStore(postgres_url, table=fresh_table()) as store:
        assert [await store.append(e) for e in events] == [True] * 6
        assert [await store.append(e) for e in events[:3]] == [False] * 3
        assert await store.count() == 6
        assert await store.read() == events
        assert await store.read(session_id="s1") == events[1::2]
        assert await store.read(after=events[1].event_id, limit=2) == events[2:4]
        with pytest.raises(ConfigError, match="not in the store"):
            await store.read(after=uuid.uuid4())


async def test_an_event_round_trips_losslessly_even_with_characters_jsonb_refuses(
    postgres_url: str,
) -> None:
    tricky = event("s", 1, text="nul \u0000 and emoji \U0001f600", nested={"a": [1, 2.5, None]})
    async with PostgresEventStore(postgres_url, table=fresh_table()) as store:
        await store.append(tricky)
        assert await store.read() == [tricky]


async def test_concurrent_appends_of_one_event_from_two_processes_store_one_row(
    postgres_url: str,
) -> None:
    table = fresh_table()
    same = event("s", 7)
    async with (
        PostgresEventStore(postgres_url, table=table) as first,
        PostgresEventStore(postgres_url, table=table) as second,
    ):
        results = await asyncio.gather(
            *(store.append(same) for _ in range(10) for store in (first, second))
        )
        assert sorted(results) == [False] * 19 + [True]
        assert await first.count() == 1


async def test_an_unreachable_server_is_a_sink_error_without_the_password() -> None:
    url = f"postgresql://agent:s3cret@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(SinkError) as caught:
        async with PostgresEventStore(url):
            pass
    assert "cannot connect to PostgreSQL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_store_service_on_postgres_keeps_one_row_per_event_under_redelivery_and_replay(
    broker: RunningBroker, new_topic: NewTopic, postgres_url: str
) -> None:
    topic = await new_topic(partitions=3)
    events = [event(f"s{i % 4}", i) for i in range(12)]
    await produce(broker.bootstrap_servers, topic, [*events, *events[:5]])  # 5 redelivered
    database = f"agent_events_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    settings = service_settings(broker, topic, store={"url": url})
    async with running("store", settings) as host:
        await until(lambda: handled(host) == 17, "every record handled")
        first = await host.service.summary()
    assert (first["stored"], first["appended"], first["duplicates"]) == (12, 12, 5)

    replay = service_settings(broker, topic, store={"url": url}, group_id=f"{topic}-replay")
    async with running("store", replay) as host:
        await until(lambda: handled(host) == 17, "the replay handled")
        again = await host.service.summary()
    assert (again["stored"], again["appended"], again["duplicates"]) == (12, 0, 17)
    async with PostgresEventStore(url) as store:
        assert sorted(e.event_id for e in await store.read()) == sorted(e.event_id for e in events)
