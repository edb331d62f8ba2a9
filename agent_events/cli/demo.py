"""``agent-events demo``: the whole pipeline in one command, shown live in the terminal.

Steps:

1. start a local broker (Apache Kafka where a JDK is found, else Tansu), unless
   ``--bootstrap-servers`` names one; create the demo's topics;
2. start the ``metrics``, ``alerting`` and ``store`` services in this process, each its own
   consumer group, built from the same services registry ``agent-events consume`` uses
   (each serves ``/metrics`` on a free loopback port);
3. run simulated agents through ``AgentExecutor`` (sessions, middlewares, some errors and
   slow runs) on an ``EventBus`` with a ``KafkaEventProducer`` attached;
4. show what flows and what the services computed (rich Live on a terminal, progress lines
   otherwise) until ``--duration`` passes or Ctrl-C / SIGTERM;
5. stop the agents, flush the producer, let the services read everything the broker
   acknowledged, plus what the topic held before the run (bounded wait), print the
   summary, stop the services (they commit and leave their groups), then the broker.

Each run uses topics and groups of its own (``agent.events.demo-<id>``), so it never mixes
with other data on a shared cluster. ``--agents-only`` runs just the agents against
``agent.events`` (traffic for a deployed pipeline). Logs go to ``<work-dir>/demo.log``; a
temp work dir is removed after a run that succeeded, unless ``--keep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live

from agent_events.agent_runtime.errors import AgentEventsError
from agent_events.agent_runtime.event_bus import EventBus
from agent_events.broker import KafkaCluster, TansuBroker, resolve_kind
from agent_events.broker.kafka_libs import is_cached
from agent_events.cli._common import run_until_signalled
from agent_events.cli._demo_agents import SimulatedAgents, count_flow
from agent_events.cli._demo_view import (
    DemoSnapshot,
    ServiceView,
    plain_progress,
    plain_summary,
    render_live,
)
from agent_events.cli.broker import FETCH_SIZE, progress_note
from agent_events.cli.topics import missing_topics
from agent_events.consumers.runtime import ConsumerService
from agent_events.consumers.scan import log_end_offsets, standalone_consumer, topic_partitions
from agent_events.producers.producer import KafkaEventProducer
from agent_events.producers.topics import TopicSpec, ensure_topics
from agent_events.services import ServiceHost, build_service
from agent_events.settings import AgentEventsSettings, load_settings

__all__ = ["DEMO_SERVICES", "demo"]

DEMO_SERVICES = ("metrics", "alerting", "store")
"""The services the demo runs in-process, by their registry names."""

_REFRESH_S = 0.25
_PLAIN_EVERY_S = 2.0
_CATCH_UP_S = 60.0
_CATCH_UP_AFTER_SIGNAL_S = 10.0


class Kind(StrEnum):
    """Which local broker to start when no ``--bootstrap-servers`` is given."""

    auto = "auto"
    kafka = "kafka"
    tansu = "tansu"


class _AlertLines(logging.Handler):
    """Keeps the last alerts the alerting service logged, for the view."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=20)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _log_to(path: Path) -> Any:
    """Send every log record to ``path`` while the demo runs (the terminal shows the view)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    alerts = _AlertLines()
    alert_logger = logging.getLogger("agent_events.alerts")
    root.handlers[:] = [file_handler]
    root.setLevel(logging.INFO)
    alert_logger.addHandler(alerts)
    try:
        yield alerts
    finally:
        alert_logger.removeHandler(alerts)
        root.handlers[:], root.level = saved
        file_handler.close()


def demo(
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            "-b",
            help="Use this Kafka cluster instead of starting a local broker.",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        Kind, typer.Option(help="Local broker: auto (Kafka if a JDK is found, else Tansu).")
    ] = Kind.auto,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Stop after this many seconds (default: run until Ctrl-C)."),
    ] = None,
    rate: Annotated[float, typer.Option(min=0.1, help="New agent sessions per second.")] = 5.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Sessions running at once.")] = 8,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the demo topic.")] = 6,
    slow_threshold_ms: Annotated[
        float, typer.Option(min=0, help="Alerting: completions slower than this alert.")
    ] = 1000.0,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic", "-t", help="Topic (default: a new one per run).", show_default=False
        ),
    ] = None,
    agents_only: Annotated[
        bool, typer.Option("--agents-only", help="Only the agents: traffic for deployed services.")
    ] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="Progress lines instead of the live view.")
    ] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the log and the event store, kept (default: a temp dir, removed "
            "after a run that succeeded).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temp dir (log and event store) after the run.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed of the simulation.")] = None,
) -> None:
    """Run the whole pipeline (broker, agents, metrics/alerting/store services) and watch it."""
    run_id = uuid.uuid4().hex[:8]
    flags: dict[str, Any] = {"bootstrap_servers": bootstrap_servers or "127.0.0.1:9092"}
    if topic is not None:
        flags["topic"] = topic
    elif not agents_only:
        flags.update(
            topic=f"agent.events.demo-{run_id}", dlq_topic=f"agent.events.demo-{run_id}.dlq"
        )
    base = load_settings(flags)  # checks the flags before anything starts
    folder = work_dir or Path(tempfile.mkdtemp(prefix="agent-events-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    live = not plain and sys.stdout.isatty()
    try:
        with _log_to(folder / "demo.log") as alerts:

            async def main(stop: asyncio.Event) -> DemoSnapshot:
                return await _run_demo(
                    stop,
                    base=base,
                    use_existing=bootstrap_servers is not None,
                    kind=kind,
                    services=() if agents_only else DEMO_SERVICES,
                    run_id=run_id,
                    folder=folder,
                    duration=duration,
                    agents=dict(rate=rate, concurrency=concurrency, seed=seed),
                    partitions=partitions,
                    slow_threshold_ms=slow_threshold_ms,
                    live=live,
                    alerts=alerts,
                )

            final = run_until_signalled(main)
    except BaseException:
        # The log says what went wrong: keep it, whatever the flags.
        typer.echo(f"the demo failed; its log is kept in {folder / 'demo.log'}", err=True)
        raise
    for line in plain_summary(final):
        typer.echo(line)
    if work_dir is None and not keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        typer.echo(f"logs{'' if agents_only else ' and the event store'} are in {folder}")


def _service_settings(
    base: AgentEventsSettings, bootstrap: str, name: str, run_id: str, folder: Path, slow_ms: float
) -> AgentEventsSettings:
    return load_settings(
        {
            "bootstrap_servers": bootstrap,
            "topic": base.topic,
            "dlq_topic": base.dlq_topic,
            "group_id": f"agent-events-demo-{run_id}-{name}",
            "metrics_port": 0,
            "report_interval_s": 3600,
            "store": {"url": f"sqlite:///{(folder / 'store.db').resolve()}"},
            "alerting": {"slow_threshold_ms": slow_ms},
        }
    )


async def _start_broker(stack: AsyncExitStack, kind: Kind) -> tuple[str, str]:
    """Start the local broker (stopped when ``stack`` closes); its address and description."""
    chosen = await asyncio.to_thread(resolve_kind, kind.value)
    started = time.monotonic()
    if chosen == "kafka":
        cluster = KafkaCluster.single()
        name = f"Apache Kafka {cluster.version}"
        note = f"starting {name}"
        if not is_cached(cluster.version):
            note += f" (first run: fetching its jars with Maven, {FETCH_SIZE})"
        with progress_note(note):
            await stack.enter_async_context(cluster)
        bootstrap, label = cluster.bootstrap_servers, f"{name} (local)"
    else:
        # "no JDK found" explains a fallback; said only when auto fell back.
        name = "Tansu"
        with progress_note(f"starting {name}"):
            broker = await stack.enter_async_context(TansuBroker())
        bootstrap = broker.bootstrap_servers
        label = "Tansu (local, no JDK found)" if kind is Kind.auto else "Tansu (local)"
    if not sys.stderr.isatty():
        typer.echo(f"{name} ready at {bootstrap} ({time.monotonic() - started:.1f} s)", err=True)
    return bootstrap, label


async def _serve(host: ServiceHost) -> None:
    async with host:
        await host.run()


def _done(host: ServiceHost, last: dict[str, int]) -> int:
    if isinstance(host.consumer, ConsumerService):
        stats = host.consumer.processor.stats
        last[host.service.name] = (
            stats.handled + stats.dead_lettered + stats.skipped + stats.unwanted
        )
    return last.get(host.service.name, 0)


async def _run_demo(
    stop: asyncio.Event,
    *,
    base: AgentEventsSettings,
    use_existing: bool,
    kind: Kind,
    services: tuple[str, ...],
    run_id: str,
    folder: Path,
    duration: float | None,
    agents: dict[str, Any],
    partitions: int,
    slow_threshold_ms: float,
    live: bool,
    alerts: _AlertLines,
) -> DemoSnapshot:
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        settings, broker, existing = await _cluster(stack, base, use_existing, kind, partitions)
        bootstrap = settings.bootstrap_servers
        hosts = []
        for name in services:
            own = _service_settings(settings, bootstrap, name, run_id, folder, slow_threshold_ms)
            hosts.append(ServiceHost(build_service(name, own), own))
        producer = await stack.enter_async_context(KafkaEventProducer(settings.producer_config()))
        bus = await stack.enter_async_context(EventBus(max_queue_size=10_000))
        await producer.attach(bus)
        flow = await count_flow(bus)
        simulation = SimulatedAgents(bus, **agents)
        read: dict[str, int] = {}

        async def snapshot(stopping: str | None = None) -> DemoSnapshot:
            views = []
            for host in hosts:
                summary = await host.service.summary() if host.consumer is not None else {}
                views.append(
                    ServiceView(
                        host.service.name,
                        host.group_id,
                        _done(host, read),
                        summary,
                        host.metrics_url,
                    )
                )
            return DemoSnapshot(
                broker=broker,
                topic=settings.topic,
                partitions=partitions,
                elapsed_s=time.monotonic() - started,
                produced_by_type=dict(flow.by_type),
                acknowledged=producer.stats.acknowledged,
                failed=producer.stats.failed,
                existing=existing,
                executions=simulation.executions,
                recent=list(flow.recent),
                services=views,
                alerts=list(alerts.lines),
                stopping=stopping,
            )

        view = Live(render_live(await snapshot()), refresh_per_second=4) if live else None
        try:
            with view if view is not None else contextlib.nullcontext():
                async with asyncio.TaskGroup() as group:
                    for host in hosts:
                        group.create_task(_serve(host))
                    agents_stop = asyncio.Event()
                    agents_task = group.create_task(simulation.run(agents_stop))
                    signalled = await _watch(stop, duration, snapshot, view)
                    agents_stop.set()
                    await agents_task
                    await bus.join()
                    await producer.flush()
                    limit = _CATCH_UP_AFTER_SIGNAL_S if signalled else _CATCH_UP_S
                    # New groups read from the earliest offset: what was there, then ours.
                    target = existing + producer.stats.acknowledged
                    await _catch_up(
                        lambda: all(_done(h, read) >= target for h in hosts),
                        limit,
                        snapshot,
                        view,
                    )
                    final = await snapshot()
                    if view is not None:
                        view.update(render_live(final))
                    for host in hosts:
                        host.request_stop()
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
    return final


async def _cluster(
    stack: AsyncExitStack,
    base: AgentEventsSettings,
    use_existing: bool,
    kind: Kind,
    partitions: int,
) -> tuple[AgentEventsSettings, str, int]:
    """The settings for the broker the demo uses (started here unless given), its label, and
    how many records the topic held already (the services read those too)."""
    if use_existing:
        bootstrap, broker = base.bootstrap_servers, "the cluster"
    else:
        bootstrap, broker = await _start_broker(stack, kind)
    settings = load_settings({**base.model_dump(), "bootstrap_servers": bootstrap})
    names = [settings.topic, *([settings.dlq_topic] if settings.dlq_topic else [])]
    missing = await missing_topics(settings.connection(), names)
    if missing:  # topics that exist are used as they are
        await ensure_topics(settings.connection(), [TopicSpec(n, partitions) for n in missing])
    existing = 0 if settings.topic in missing else await _records_on(settings)
    return settings, f"{broker} at {bootstrap}", existing


async def _records_on(settings: AgentEventsSettings) -> int:
    """Records on the topic now: what a new group reading from the earliest offset will read.

    Counted as offsets (log end minus log start), so a compacted topic counts high and the
    catch-up then waits out its limit.
    """
    async with standalone_consumer(settings.connection()) as consumer:
        tps = await topic_partitions(consumer, settings.topic)
        ends = await log_end_offsets(consumer, tps)
        starts = await consumer.beginning_offsets(tps)
    return sum(max(0, ends[tp] - starts[tp]) for tp in tps)


async def _catch_up(
    caught_up: Callable[[], bool], limit_s: float, snapshot: Any, view: Live | None
) -> None:
    """Wait up to ``limit_s`` for the services to handle what was acknowledged."""
    deadline = time.monotonic() + limit_s
    while not caught_up() and time.monotonic() <= deadline:
        if view is not None:
            view.update(render_live(await snapshot("stopping: services catch up")))
        await asyncio.sleep(_REFRESH_S)  # polls counters owned by other tasks


async def _watch(
    stop: asyncio.Event, duration: float | None, snapshot: Any, view: Live | None
) -> bool:
    """Show the view until ``duration`` passes (False) or a signal sets ``stop`` (True)."""
    deadline = None if duration is None else time.monotonic() + duration
    next_line = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        current = await snapshot()
        if view is not None:
            view.update(render_live(current))
        elif now >= next_line:
            typer.echo(plain_progress(current))
            next_line = now + _PLAIN_EVERY_S
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REFRESH_S):
                await stop.wait()
    return stop.is_set()


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error to report from a failed task group: ours first, else the first one."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    ours = [e for e in leaves if isinstance(e, AgentEventsError)]
    return (ours or leaves)[0]
