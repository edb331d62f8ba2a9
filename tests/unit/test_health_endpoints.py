"""Health that tells the truth, without a broker: the probe routes, what a service host
answers on them, lag that is marked stale, and the library's connection errors turned into
three lines."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from agent_events.consumers.config import ConsumerConfig
from agent_events.observability import LagMonitor, MetricsServer, ServiceMetrics
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.services import host as host_module
from agent_events.services._base import Service
from agent_events.services.host import ServiceHost
from agent_events.settings import AgentEventsSettings, load_settings
from agent_events.transport import ConnectionOutage, _quiet, quiet_library_logs

# -- the routes -------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[MetricsServer, dict[str, str | None]]]:
    answers: dict[str, str | None] = {"live": None, "ready": None}
    metrics = MetricsServer(
        CollectorRegistry(),
        health=lambda: answers["live"],
        readiness=lambda: answers["ready"],
    )
    await metrics.start()
    try:
        yield metrics, answers
    finally:
        await metrics.stop()


async def _get(url: str, method: str = "GET") -> tuple[int, str]:
    async with httpx.AsyncClient() as client:
        response = await client.request(method, url)
    return response.status_code, response.text


async def test_livez_readyz_and_healthz_answer_from_their_own_checks(
    server: tuple[MetricsServer, dict[str, str | None]],
) -> None:
    metrics, answers = server
    for path in ("/livez", "/readyz", "/healthz", "/health"):
        assert await _get(metrics.url + path) == (200, "ok\n"), path

    answers["ready"] = "no partitions assigned to this member"
    assert await _get(metrics.url + "/readyz") == (
        503,
        "not ready: no partitions assigned to this member\n",
    )
    assert await _get(metrics.url + "/livez") == (200, "ok\n")
    assert await _get(metrics.url + "/healthz") == (200, "ok\n")  # an alias of liveness

    answers["live"] = "the fetch loop died:\n  RuntimeError: boom"
    for path in ("/livez", "/healthz"):
        assert await _get(metrics.url + path) == (
            503,
            "unhealthy: the fetch loop died: RuntimeError: boom\n",  # one line
        ), path


async def test_unknown_paths_are_404_and_only_get_is_served(
    server: tuple[MetricsServer, dict[str, str | None]],
) -> None:
    metrics, _ = server
    status, text = await _get(metrics.url + "/ready")
    assert status == 404
    assert "/livez" in text
    assert "/readyz" in text
    assert (await _get(metrics.url + "/readyz?verbose=1"))[0] == 200
    assert (await _get(metrics.url + "/readyz", "POST"))[0] == 405
    assert (await _get(metrics.url + "/metrics"))[0] == 200


async def test_readyz_answers_liveness_when_no_readiness_check_is_given() -> None:
    metrics = MetricsServer(CollectorRegistry(), health=lambda: "down")
    await metrics.start()
    try:
        assert await _get(metrics.url + "/readyz") == (503, "not ready: down\n")
    finally:
        await metrics.stop()


# -- a service host on those routes -----------------------------------------------------------


class FakeMember:
    """A group member whose assignment and fate the test sets."""

    def __init__(self) -> None:
        self.rebalances = 0
        self.rebalancing = False
        self.fenced = False
        self.owned: set[TopicPartition] = set()
        self.stop_requested = asyncio.Event()
        self.fail: BaseException | None = None
        self.failing = asyncio.Event()

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def start(self) -> None:
        pass

    async def run(self) -> None:
        stop = asyncio.create_task(self.stop_requested.wait())
        fail = asyncio.create_task(self.failing.wait())
        await asyncio.wait({stop, fail}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        fail.cancel()
        if self.fail is not None:
            raise self.fail

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def stop(self) -> None:
        self.stop_requested.set()


class FakeService(Service):
    name = "fake"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        self.fake = FakeMember()

    def member(self, config: ConsumerConfig) -> FakeMember:  # type: ignore[override]
        return self.fake


class StubLag:
    """Stands in for the lag sampler (the broker probe): the test sets its last outcome."""

    instance: StubLag | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.problem: str | None = None
        self.last_success: float | None = None
        StubLag.instance = self

    async def run(self) -> None:
        await asyncio.Event().wait()


@pytest.fixture
def fresh_outage(monkeypatch: pytest.MonkeyPatch) -> ConnectionOutage:
    """A process outage state of this test's own (the real one is process-wide)."""
    outage = ConnectionOutage()
    monkeypatch.setattr(_quiet, "_OUTAGE", outage)
    monkeypatch.setattr(_quiet._FILTER, "outage", outage)
    return outage


async def _wait_for(check: Any, deadline_s: float = 5.0) -> None:
    async with asyncio.timeout(deadline_s):
        while not check():  # noqa: ASYNC110 - polling the host under test
            await asyncio.sleep(0.01)


async def test_a_hosts_readiness_follows_start_assignment_broker_and_stop(
    monkeypatch: pytest.MonkeyPatch, fresh_outage: ConnectionOutage
) -> None:
    monkeypatch.setattr(host_module, "LagMonitor", StubLag)
    settings = load_settings({"metrics_port": 0}, dotenv=None)
    service = FakeService(settings, CollectorRegistry())
    member = service.fake
    host = ServiceHost(service, settings)
    assert host.readiness() == "the consumer is not started (connecting to the broker?)"
    assert host.liveness() is None  # starting is alive
    async with host:
        url = host.metrics_url
        assert url is not None
        assert (await _get(url + "/readyz"))[0] == 503
        running = asyncio.create_task(host.run())
        await _wait_for(lambda: StubLag.instance is not None and host._running)
        lag = StubLag.instance
        assert lag is not None
        assert await _get(url + "/readyz") == (
            503,
            "not ready: no partitions assigned to this member (joining its group or rebalancing)\n",
        )
        member.owned = {TopicPartition("t", 0)}
        assert await _get(url + "/readyz") == (200, "ok\n")
        member.rebalancing = True  # revoked, not yet assigned again
        assert await _get(url + "/readyz") == (503, "not ready: the group is rebalancing\n")
        member.rebalancing, member.fenced = False, True
        assert (await _get(url + "/readyz"))[1].startswith("not ready: membership unconfirmed")
        member.fenced = False
        assert await _get(url + "/readyz") == (200, "ok\n")

        lag.problem = "the broker did not answer within 5 s"
        assert await _get(url + "/readyz") == (
            503,
            "not ready: the broker is unreachable: the broker did not answer within 5 s\n",
        )
        assert await _get(url + "/livez") == (200, "ok\n")
        lag.problem = None
        lag.last_success = time.monotonic()

        fresh_outage.filter(_record("aiokafka", "Unable connect to node with id 1: %s", _refused()))
        assert await _get(url + "/readyz") == (
            503,
            "not ready: lost the connection to the broker at 127.0.0.1:9092 0 s ago\n",
        )
        assert await _get(url + "/livez") == (200, "ok\n")
        lag.last_success = time.monotonic()  # a sample reached the broker since
        assert await _get(url + "/readyz") == (200, "ok\n")

        host.request_stop()
        await running
        assert host.readiness() == "stopping: finishing the fetched records and committing"
        assert host.liveness() is None


async def test_a_fetch_loop_that_dies_fails_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_module, "LagMonitor", StubLag)
    settings = load_settings({"metrics_port": 0}, dotenv=None)
    service = FakeService(settings, CollectorRegistry())
    async with ServiceHost(service, settings) as host:
        url = host.metrics_url
        assert url is not None
        running = asyncio.create_task(host.run())
        await _wait_for(lambda: host._running)
        service.fake.fail = RuntimeError("partition 3 failed")
        service.fake.failing.set()
        with pytest.raises(BaseExceptionGroup):
            await running
        for path in ("/livez", "/healthz", "/readyz"):
            status, text = await _get(url + path)
            assert status == 503, path
            assert "the fetch loop died: RuntimeError: partition 3 failed" in text


# -- stale lag --------------------------------------------------------------------------------


class FakeReader:
    """A lag reader that answers, or hangs like aiokafka does for a broker that is gone."""

    def __init__(self) -> None:
        self.hang = False

    async def _answer(self, value: Any) -> Any:
        if self.hang:
            await asyncio.Event().wait()
        return value

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self._answer({tp: 10 for tp in tps}))

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self._answer({tp: 0 for tp in tps}))

    async def committed(self, tp: TopicPartition) -> int | None:
        return int(await self._answer(4))

    async def topics(self) -> set[str]:
        return set(await self._answer({"t"}))


def _samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("agent_events_consumer_lag")
    }


async def test_lag_that_cannot_be_measured_is_withdrawn_and_marked_stale(
    fresh_outage: ConnectionOutage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    metrics = ServiceMetrics()
    tp = TopicPartition("t", 0)
    lag = LagMonitor(KafkaConnectionConfig(), "g", lambda: {tp}, metrics, timeout_s=0.05)
    reader = FakeReader()
    assert await lag.update(reader) == {tp: 6}  # type: ignore[arg-type]
    samples = _samples(metrics)
    group = (("consumergroup", "g"),)
    assert samples[("agent_events_consumer_lag", (*group, ("partition", "0"), ("topic", "t")))] == 6
    assert samples[("agent_events_consumer_lag_stale", group)] == 0
    measured_at = samples[("agent_events_consumer_lag_last_success_timestamp_seconds", group)]
    assert measured_at > 0
    assert lag.problem is None
    assert lag.last_success is not None

    reader.hang = True
    for _ in range(3):
        assert await lag.update(reader) == {}  # type: ignore[arg-type]
    samples = _samples(metrics)
    assert not [key for key in samples if key[0] == "agent_events_consumer_lag"]
    assert samples[("agent_events_consumer_lag_stale", group)] == 1
    assert (
        samples[("agent_events_consumer_lag_last_success_timestamp_seconds", group)] == measured_at
    )
    assert lag.problem == "the broker did not answer within 0.05 s"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not per sample

    reader.hang = False
    assert await lag.update(reader) == {tp: 6}  # type: ignore[arg-type]
    assert _samples(metrics)[("agent_events_consumer_lag_stale", group)] == 0
    assert lag.problem is None


# -- the library's connection errors ----------------------------------------------------------


def _refused(port: int = 9092) -> OSError:
    return OSError(111, f"Connect call failed ('127.0.0.1', {port})")


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Ours:
    """The lines the outage tracking logs itself."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def lines(self) -> list[tuple[str, str]]:
        records = self._caplog.records
        return [
            (r.levelname, r.getMessage()) for r in records if r.name == "agent_events.transport"
        ]


@pytest.fixture
def ours(caplog: pytest.LogCaptureFixture) -> Ours:
    caplog.set_level(logging.INFO, logger="agent_events.transport")
    return Ours(caplog)


def test_an_outage_is_one_warning_a_summary_per_interval_and_one_info_line(
    ours: Ours,
) -> None:
    clock = Clock()
    outage = ConnectionOutage(summary_every_s=30, settle_s=2, clock=clock)
    noise = [
        _record(
            "aiokafka.consumer.fetcher",
            "Failed fetch messages from %s: %s",
            1,
            KafkaConnectionError("Connection at 127.0.0.1:9092 closed"),
        ),
        _record("aiokafka", "Unable connect to node with id %s: %s", 1, _refused()),
        _record("aiokafka", "Unable to update metadata from %s", [1]),
        _record(
            "aiokafka.consumer.group_coordinator",
            "Group Coordinator Request failed: %s",
            NodeNotReadyError("node 1"),
        ),
        _record(
            "aiokafka.consumer.group_coordinator",
            "Marking the coordinator dead (node %s)for group %s.",
            1,
            "g",
            level=logging.WARNING,
        ),
    ]
    passed = []
    for second in range(65):  # 65 s of outage, ten batches of noise a second
        clock.now = 100.0 + second
        for _ in range(10):
            passed += [r for r in noise if outage.filter(r)]
    assert passed == []  # the library's own records: all dropped
    lines = ours.lines
    assert lines[0] == (
        "WARNING",
        "lost the connection to the broker at 127.0.0.1:9092; retrying "
        "(Failed fetch messages from 1: KafkaConnectionError: Connection at 127.0.0.1:9092 closed)",
    )
    assert lines[1:] == [
        (
            "WARNING",
            f"the broker at 127.0.0.1:9092 is still unreachable: {n} connection errors in the last 30 s",
        )
        for n in (1500, 1500)
    ]
    state = outage.state
    assert state is not None
    assert (state.address, state.started, state.errors) == ("127.0.0.1:9092", 100.0, 3250)

    clock.now += 1
    outage.answered()  # the library failed a second ago: not back yet
    assert outage.state is not None
    clock.now += 2
    outage.answered()
    assert outage.state is None
    assert ours.lines[-1] == (
        "INFO",
        "the broker at 127.0.0.1:9092 answers again after 67 s (3250 connection errors while unreachable)",
    )
    assert len(ours.lines) == 4
    outage.answered()
    assert len(ours.lines) == 4


def test_other_records_pass_untouched_and_echoes_count_only_during_an_outage(
    ours: Ours,
) -> None:
    clock = Clock()
    outage = ConnectionOutage(clock=clock)
    other = _record("aiokafka", "Topic %s not found in cluster metadata", "t")
    echo = _record("aiokafka.consumer.group_coordinator", "Heartbeat session expired - x")
    info = _record("aiokafka", "Unable connect to node with id %s", 1, level=logging.INFO)
    assert all(outage.filter(record) for record in (other, echo, info))
    assert outage.state is None
    assert ours.lines == []

    assert not outage.filter(_record("aiokafka", "Unable to update metadata from %s", [1]))
    state = outage.state
    assert state is not None
    assert state.address == "node 1"  # no address in that message
    assert not outage.filter(echo)
    assert outage.filter(other)
    state = outage.state
    assert state is not None
    assert state.errors == 2


def test_a_new_error_after_long_silence_starts_a_new_outage(
    ours: Ours,
) -> None:
    clock = Clock()
    outage = ConnectionOutage(summary_every_s=30, clock=clock)
    error = _record("aiokafka", "Unable connect to node with id %s: %s", 1, _refused(9093))
    assert not outage.filter(error)
    clock.now += 31  # nobody said the broker answered, but the errors stopped
    assert not outage.filter(error)
    assert [message.split(";")[0] for _, message in ours.lines] == [
        "lost the connection to the broker at 127.0.0.1:9093"
    ] * 2


def test_the_library_filter_rate_limits_outside_start_windows_only(
    fresh_outage: ConnectionOutage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with quiet_library_logs():  # installs the filter; inside a start window: DEBUG, uncounted
        logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, _refused())
    assert fresh_outage.state is None
    for _ in range(50):
        logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, _refused())
        logging.getLogger("aiokafka.consumer.fetcher").error(
            "Failed fetch messages from %s: %s", 1, NodeNotReadyError("node 1")
        )
    logging.getLogger("aiokafka").error("broker connection lost")  # not a connection error
    seen = [(r.name, r.levelname) for r in caplog.records]
    assert seen == [("agent_events.transport", "WARNING"), ("aiokafka", "ERROR")]
    state = fresh_outage.state
    assert state is not None
    assert state.errors == 100
