"""Each consumer service end to end through a real broker: events in, what it computed out.

Events go in through ``KafkaEventProducer``; each service runs in a :class:`ServiceHost`
(its consumer group, metrics endpoint and lag sampler), and the tests assert what it
computed, stored or sent, and what it exported at ``/metrics`` over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from kafka_support import produce
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from agent_events.agent_runtime.errors import SinkError
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker
from agent_events.services import ServiceHost, WebhookAlertSink, build_service, load_trace
from agent_events.settings import AgentEventsSettings, load_settings

DEADLINE_S = 60.0


def completed(agent: str, session: str, ms: int | None) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.AGENT_COMPLETED,
        agent_id=agent,
        session_id=session,
        execution_time_ms=ms,
    )


def failed(agent: str, session: str, message: str) -> SystemEvent:
    return SystemEvent(
        event_type=EventType.ERROR_OCCURRED,
        agent_id=agent,
        session_id=session,
        error_message=message,
        error_type="ToolError",
    )


def service_settings(broker: RunningBroker, topic: str, **extra: Any) -> AgentEventsSettings:
    flags: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "topic": topic,
        "dlq_topic": f"{topic}.dlq",
        "group_id": f"{topic}-g",
        "metrics_port": 0,
        "lag_interval_s": 0.3,
        "consumer": {
            "commit_interval_s": 0.2,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
            "retry_backoff_s": 0.02,
            "retry_backoff_max_s": 0.05,
        },
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            flags[key] = {**flags.get(key, {}), **value}
        else:
            flags[key] = value
    return load_settings(flags, dotenv=None)


@asynccontextmanager
async def running(name: str, settings: AgentEventsSettings) -> AsyncIterator[ServiceHost]:
    """A started service whose ``run`` goes on in the background until the block ends."""
    async with ServiceHost(build_service(name, settings), settings) as host:
        runner = asyncio.create_task(host.run())
        try:
            yield host
        finally:
            host.request_stop()
            await runner


async def until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():  # noqa: ASYNC110 - counters the consumer updates
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {deadline_s}s waiting for {what}")


def handled(host: ServiceHost) -> int:
    if host.consumer is None:
        return 0
    stats = host.consumer.processor.stats
    return stats.handled + stats.dead_lettered + stats.unwanted


async def scrape(host: ServiceHost) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, sorted labels) -> value`` from the host's /metrics over HTTP."""
    assert host.metrics_url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{host.metrics_url}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


# -- metrics --------------------------------------------------------------------------------


async def test_metrics_service_computes_per_agent_durations_and_exports_them(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    events = [completed("planner", f"s{i}", 100 * (i + 1)) for i in range(5)]
    events += [completed("coder", f"s{i}", 2000) for i in range(3)]
    events += [failed("coder", "s9", "boom")]
    await produce(broker.bootstrap_servers, topic, events)
    async with AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers) as raw:
        await raw.send_and_wait(topic, b"not an event", key=b"s0")
    settings = service_settings(broker, topic)
    async with running("metrics", settings) as host:
        await until(lambda: handled(host) == len(events) + 1, "every record handled")
        summary = await host.service.summary()
        assert summary["completions"] == {"planner": 5, "coder": 3}
        planner = summary["durations_ms"]["planner"]
        assert (planner["count"], planner["min"], planner["max"], planner["avg"]) == (
            5,
            100,
            500,
            300,
        )
        assert summary["durations_ms"]["coder"]["avg"] == 2000

        async with httpx.AsyncClient() as client:
            health = await client.get(f"{host.metrics_url}/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        await until(lambda: host.metrics.consumer_lag.collect()[0].samples != [], "lag sampled")
        samples = await scrape(host)

    consumed = "agent_events_events_consumed_total"
    assert total(samples, consumed) == len(events)
    assert (
        total(samples, consumed, event_type="agent_completed", handler="metrics", status="ok") == 8
    )
    assert total(samples, consumed, event_type="error_occurred", status="ok") == 1
    assert total(samples, "agent_events_dlq_events_total", reason="decode") == 1
    assert total(samples, "agent_events_handler_duration_seconds_count", handler="metrics") == 9
    assert total(samples, "agent_events_agent_completions_total", agent_id="planner") == 5
    assert total(
        samples, "agent_events_agent_execution_seconds_sum", agent_id="planner"
    ) == pytest.approx(1.5)  # a float sum: its order varies
    assert total(samples, "agent_events_rebalances_total") >= 1
    lag = {
        dict(ls)["partition"]: v
        for (n, ls), v in samples.items()
        if n == "agent_events_consumer_lag"
    }
    assert sorted(lag) == ["0", "1", "2"]
    assert all(
        dict(ls)["consumergroup"] == f"{topic}-g"
        for (n, ls) in samples
        if n == "agent_events_consumer_lag"
    )
    assert all(v >= 0 for v in lag.values())


# -- alerting -------------------------------------------------------------------------------


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that answers 503 to the first ``failures`` POSTs."""

    def __init__(self, failures: int, failure_status: str = "503 Service Unavailable") -> None:
        self.failures = failures
        self.failure_status = failure_status
        self.calls = 0
        self.accepted: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/alerts"

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: one request after the other on this connection
            request = await reader.readline()
            if not request:
                break
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            self.calls += 1
            if self.calls <= self.failures:
                status = self.failure_status
            else:
                status = "204 No Content"
                self.accepted.append(json.loads(body))
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        writer.close()


async def test_alerting_service_retries_a_failing_webhook_until_it_takes_the_alerts(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    events = [
        failed("coder", "s1", "tool crashed"),
        completed("planner", "s2", 9_000),
        completed("planner", "s3", 10),
    ]
    await produce(broker.bootstrap_servers, topic, events)
    async with WebhookReceiver(failures=2) as receiver:
        settings = service_settings(
            broker,
            topic,
            alerting={
                "slow_threshold_ms": 1000,
                "webhook_url": receiver.url,
                "webhook_retries": 3,
                "webhook_backoff_s": 0.01,
            },
        )
        async with running("alerting", settings) as host:
            await until(lambda: handled(host) == len(events), "every event handled")
            samples = await scrape(host)

    titles = sorted(alert["title"] for alert in receiver.accepted)
    assert titles == ["Agent Error: coder", "Slow Agent: planner"]
    assert receiver.calls == 4
    requests = "agent_events_alert_webhook_requests_total"
    assert total(samples, requests, outcome="http_error") == 2
    assert total(samples, requests, outcome="ok") == 2
    assert total(samples, "agent_events_alerts_total", sink="webhook") == 2
    assert total(samples, "agent_events_alerts_total", sink="log") == 2
    assert total(samples, "agent_events_dlq_events_total") == 0


async def test_alerting_dead_letters_what_the_webhook_never_takes_without_repeating_log_alerts(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    await new_topic(partitions=1, name=f"{topic}.dlq")
    await produce(broker.bootstrap_servers, topic, [failed("coder", "s1", "down")])
    async with WebhookReceiver(failures=1_000) as receiver:
        settings = service_settings(
            broker,
            topic,
            alerting={"webhook_url": receiver.url, "webhook_retries": 1, "webhook_backoff_s": 0},
            consumer={"max_retries": 2},
        )
        async with running("alerting", settings) as host:
            await until(lambda: handled(host) == 1, "the event dead-lettered")
            samples = await scrape(host)
    assert receiver.calls == 3 * 2  # (1 + max_retries) deliveries x (1 + webhook_retries) POSTs
    assert total(samples, "agent_events_dlq_events_total", reason="handle") == 1
    assert total(samples, "agent_events_alerts_total", sink="log") == 1
    consumed = "agent_events_events_consumed_total"
    assert total(samples, consumed, handler="alerting.webhook", status="failed") == 1
    assert total(samples, consumed, handler="alerting.log", status="ok") == 1


async def test_webhook_sink_does_not_retry_a_request_the_receiver_refuses() -> None:
    registry = CollectorRegistry()
    requests = Counter("requests", "attempts", ["outcome"], registry=registry)
    async with (
        WebhookReceiver(failures=10, failure_status="400 Bad Request") as receiver,
        WebhookAlertSink(receiver.url, retries=3, backoff_s=0, requests=requests) as sink,
    ):
        with pytest.raises(SinkError, match="HTTP 400"):
            await sink.send_alert("high", "title", "message")
    assert receiver.calls == 1
    assert registry.get_sample_value("requests_total", {"outcome": "refused"}) == 1


# -- tracing, statistics --------------------------------------------------------------------


async def test_tracing_service_keeps_each_session_timeline_once_and_in_time_order(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    timeline = [
        SystemEvent(
            event_type=kind,
            agent_id="planner",
            session_id="s-traced",
            timestamp=start + timedelta(milliseconds=250 * i),
            metadata={"step": i},
        )
        for i, kind in enumerate(
            [EventType.SESSION_CREATED, EventType.AGENT_STARTED, EventType.AGENT_COMPLETED]
        )
    ]
    others = [completed("coder", f"other-{i}", 5) for i in range(6)]
    no_session = SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="lonely")
    events = [*timeline, timeline[1], *others, no_session]  # timeline[1] twice: a redelivery
    await produce(broker.bootstrap_servers, topic, events)
    path = tmp_path / "traces.db"
    settings = service_settings(broker, topic, tracing={"path": path})
    async with running("tracing", settings) as host:
        await until(lambda: handled(host) == len(events), "every event handled")
        summary = await host.service.summary()

    assert summary["added"] == 3 + 6
    trace = load_trace(path, "s-traced")
    assert [entry["event_type"] for entry in trace] == [
        "session_created",
        "agent_started",
        "agent_completed",
    ]
    assert [entry["offset_ms"] for entry in trace] == [0, 250, 500]
    assert [entry["metadata"] for entry in trace] == [{"step": 0}, {"step": 1}, {"step": 2}]
    assert load_trace(path, "no-such-session") == []


async def test_statistics_service_totals_events_by_type_with_timing_by_agent(
    broker: RunningBroker, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    events = [completed("planner", f"s{i}", ms) for i, ms in enumerate([0, 10, 20, 30])]
    events += [failed("planner", "s9", "x"), failed("coder", "s8", "y")]
    await produce(broker.bootstrap_servers, topic, events)
    async with running("statistics", service_settings(broker, topic)) as host:
        await until(lambda: handled(host) == len(events), "every event handled")
        summary = await host.service.summary()
    assert summary["total_events"] == 6
    assert summary["by_type"] == {"agent_completed": 4, "error_occurred": 2}
    timing = summary["timing"]["planner"]
    assert (timing["count"], timing["min"], timing["max"], timing["avg"]) == (4, 0, 30, 15)


# -- store ----------------------------------------------------------------------------------


async def test_store_service_keeps_one_row_per_event_under_redelivery_and_replay(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path
) -> None:
    topic = await new_topic(partitions=3)
    events = [completed("planner", f"s{i % 4}", i) for i in range(12)]
    await produce(broker.bootstrap_servers, topic, [*events, *events[:5]])  # 5 redelivered
    url = f"sqlite:///{tmp_path / 'events.db'}"
    settings = service_settings(broker, topic, store={"url": url})
    async with running("store", settings) as host:
        await until(lambda: handled(host) == 17, "every record handled")
        first = await host.service.summary()
    assert (first["stored"], first["appended"], first["duplicates"]) == (12, 12, 5)
    assert first["sessions"] == 4

    replay = service_settings(broker, topic, store={"url": url}, group_id=f"{topic}-replay")
    async with running("store", replay) as host:
        await until(lambda: handled(host) == 17, "the replay handled")
        again = await host.service.summary()
    assert (again["stored"], again["appended"], again["duplicates"]) == (12, 0, 17)


# -- router ---------------------------------------------------------------------------------

USER_MODULE = """
from agent_events.agent_runtime.events import EventType

seen = []
errors = []


async def on_any(event):
    seen.append(event.agent_id)


def make_handlers():
    async def on_error(event):
        errors.append(event.error_message)
    return [(EventType.ERROR_OCCURRED, on_error), on_any]
"""


async def test_router_service_runs_the_users_handlers_from_a_module_path(
    broker: RunningBroker, new_topic: NewTopic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"user_handlers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    topic = await new_topic(partitions=2)
    events = [completed("a", "s1", 1), failed("b", "s2", "bad"), completed("c", "s3", 2)]
    await produce(broker.bootstrap_servers, topic, events)
    settings = service_settings(broker, topic, router={"handlers": [f"{module}:make_handlers"]})
    async with running("router", settings) as host:
        await until(lambda: handled(host) == 3, "every event handled")
        samples = await scrape(host)
    user = sys.modules[module]
    assert sorted(user.seen) == ["a", "b", "c"]
    assert user.errors == ["bad"]
    consumed = "agent_events_events_consumed_total"
    assert total(samples, consumed, handler="on_any", status="ok") == 3
    assert total(samples, consumed, handler="make_handlers.<locals>.on_error") == 1


# -- OpenTelemetry --------------------------------------------------------------------------

TRACE_MODULE = """
from agent_events.observability import current_trace_id

trace_ids = []


async def remember_trace(event):
    trace_ids.append(current_trace_id())
"""


async def test_traceparent_carries_the_agents_trace_to_the_consumers_handler(
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    finished_spans: Any,
) -> None:
    from opentelemetry import trace

    module = f"trace_handlers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(TRACE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    topic = await new_topic(partitions=2)
    with trace.get_tracer("test").start_as_current_span("agent run") as root:
        await produce(
            broker.bootstrap_servers,
            topic,
            [completed("planner", "s-otel", 5)],
        )
    trace_id = root.get_span_context().trace_id
    settings = service_settings(broker, topic, router={"handlers": [f"{module}:remember_trace"]})
    async with running("router", settings) as host:
        await until(lambda: handled(host) == 1, "the event handled")

    assert sys.modules[module].trace_ids == [format(trace_id, "032x")]
    spans = [s for s in finished_spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_name = {span.name: span for span in spans}
    send, process = by_name[f"send {topic}"], by_name[f"process {topic}"]
    assert send.kind is trace.SpanKind.PRODUCER
    assert process.kind is trace.SpanKind.CONSUMER
    assert send.parent is not None
    assert send.parent.span_id == root.get_span_context().span_id
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.destination.name"] == topic
    assert process.attributes["messaging.consumer.group.name"] == f"{topic}-g"
    assert process.attributes["messaging.kafka.message.key"] == "s-otel"
    assert process.attributes["messaging.kafka.offset"] == 0
