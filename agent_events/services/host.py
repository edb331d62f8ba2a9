"""``ServiceHost``: runs one :class:`Service` as a member of its consumer group.

Start, in this order:

1. open the service's resources (database, HTTP client, the user's factories);
2. serve ``/metrics``, ``/livez``, ``/readyz`` and ``/healthz`` (= ``/livez``) when
   ``metrics_port`` is set: :meth:`ServiceHost.liveness` and :meth:`ServiceHost.readiness`
   say what they answer (``/readyz`` is 503 until the member runs with partitions, so a
   probe sees a member still connecting);
3. join the consumer group (an unreachable broker is retried up to
   ``connect_timeout_s``, then :class:`BrokerUnavailable`).

:meth:`run` fetches and handles until :meth:`request_stop` (the CLI wires SIGTERM and
SIGINT to it) while it samples consumer lag and logs the service's summary.

Stop, in this order: finish the fetched records and commit (the consumer's drain),
leave the group, log and write the final summary, close the service's resources,
stop the HTTP server. So a scaled-down member hands over its partitions with
everything it handled committed and nothing handled twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from agent_events.agent_runtime.errors import KafkaError
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.consumers.config import ConsumerConfig
from agent_events.consumers.processing import ProcessingStats
from agent_events.consumers.runtime import ConsumerService
from agent_events.observability.http import MetricsServer
from agent_events.observability.lag import LagMonitor
from agent_events.observability.metrics import ServiceMetrics
from agent_events.observability.observer import ServiceObserver
from agent_events.services._base import GroupMember, Service
from agent_events.settings import AgentEventsSettings
from agent_events.transport import BrokerUnreachable, connection_outage

__all__ = ["ServiceHost"]

logger = logging.getLogger(__name__)


class ServiceHost(AsyncResource):
    """One service process: ``async with ServiceHost(service, settings) as host: await host.run()``."""

    def __init__(self, service: Service, settings: AgentEventsSettings) -> None:
        self.service = service
        self.settings = settings
        self.metrics = ServiceMetrics(service.registry)
        self.config: ConsumerConfig = settings.consumer_config(service.default_group)
        self.consumer: GroupMember | None = None
        self.server: MetricsServer | None = None
        self._running = False
        self._stop_requested = False
        self._stats: ProcessingStats | None = None
        self._lag: LagMonitor | None = None
        self._died: str | None = None

    @property
    def group_id(self) -> str:
        return self.config.group_id

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port`` of the metrics endpoint, once started (``None`` without one)."""
        return self.server.url if self.server is not None else None

    def liveness(self) -> str | None:
        """``None`` unless the fetch loop died (then why): what ``/livez`` answers.

        Starting, running and draining are all alive, and so is a member whose broker is
        gone: restarting the process would not bring the broker back. That the event loop
        runs is shown by the answer itself (the HTTP server shares the loop).
        """
        return self._died

    def health(self) -> str | None:
        """What ``/healthz`` answers: :meth:`liveness` (``healthz`` is a liveness probe's
        path in Kubernetes' own components and most charts)."""
        return self.liveness()

    def readiness(self) -> str | None:
        """``None`` when the member fetches with partitions from a reachable broker, else why
        not: what ``/readyz`` answers."""
        if self._died is not None:
            return self._died
        consumer = self.consumer
        if consumer is None:
            return "the consumer is not started (connecting to the broker?)"
        if self._stop_requested:
            return "stopping: finishing the fetched records and committing"
        if not self._running:
            return "the fetch loop is not running"
        unreachable = self._broker_problem()
        if unreachable is not None:
            return unreachable
        if consumer.rebalancing:
            return "the group is rebalancing"
        if consumer.fenced:
            return "membership unconfirmed after a stall or a rejected commit; no record is started"
        if not consumer.assignment:
            return "no partitions assigned to this member (joining its group or rebalancing)"
        return None

    def _broker_problem(self) -> str | None:
        """Why the broker counts as unreachable: the lag sampler's last request failed, or
        the client library lost its connection and no sample has reached the broker since."""
        lag = self._lag
        if lag is not None and lag.problem is not None:
            return f"the broker is unreachable: {lag.problem}"
        outage = connection_outage()
        if outage is None:
            return None
        if lag is not None and lag.last_success is not None and lag.last_success > outage.started:
            return None
        ago = time.monotonic() - outage.started
        return f"lost the connection to the broker at {outage.address} {ago:.0f} s ago"

    async def start(self) -> None:
        """Steps 1-3 of the module docstring; on failure, what was started is stopped.

        An unreachable broker is reported as this service's failure (whichever of its
        clients found out first), naming the address it tried.
        """
        try:
            await self._start()
        except BrokerUnreachable as exc:
            what = f"the {self.service.name} service (consumer group {self.group_id})"
            raise exc.retold(what) from exc.__cause__

    async def _start(self) -> None:
        await self.service.start()
        try:
            port = self.settings.metrics_port
            if port is not None:
                self.server = MetricsServer(
                    self.metrics.registry,
                    host=self.settings.metrics_host,
                    port=port,
                    health=self.liveness,
                    readiness=self.readiness,
                )
                await self.server.start()
            consumer = self.service.member(self.config) or ConsumerService(
                self.config,
                handlers=self.service.handlers(),
                observer=ServiceObserver(self.metrics, self.group_id),
            )
            self.metrics.count_rebalances_from(lambda: consumer.rebalances)
            await consumer.start()
            self.consumer = consumer
            if isinstance(consumer, ConsumerService):
                self._stats = consumer.processor.stats
        except BaseException:
            await self._close_resources()
            raise
        logger.info(
            "service %s started",
            self.service.name,
            extra={
                "service": self.service.name,
                "consumergroup": self.group_id,
                "topics": self.config.topics,
                "metrics_url": self.metrics_url,
            },
        )

    async def run(self) -> None:
        """Handle records until :meth:`request_stop`; then drain and commit (see ``stop``)."""
        consumer = self.consumer
        if consumer is None:
            raise KafkaError("the service is not started; use 'async with ServiceHost(...)'")
        lag = self._lag = LagMonitor(
            self.settings.connection(),
            self.group_id,
            lambda: consumer.assignment,
            self.metrics,
            self.settings.lag_interval_s,
        )
        if self._stop_requested:
            consumer.request_stop()
        self._running = True
        try:
            async with asyncio.TaskGroup() as group:
                background = [
                    group.create_task(_guarded("consumer lag", lag.run())),
                    group.create_task(_guarded("summary report", self._report_periodically())),
                ]
                try:
                    await consumer.run()
                except Exception as exc:
                    self._died = f"the fetch loop died: {type(exc).__name__}: {exc}"
                    raise
                finally:
                    for task in background:
                        task.cancel()
        finally:
            self._running = False

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish the fetched records, commit and return (signal-safe)."""
        self._stop_requested = True
        if self.consumer is not None:
            self.consumer.request_stop()

    async def stop(self) -> None:
        """Drain and commit, leave the group, write the final summary, close everything."""
        consumer, self.consumer = self.consumer, None
        try:
            if consumer is not None:
                await consumer.stop()
                await self._report(final=True)
        finally:
            await self._close_resources()

    async def summary(self) -> dict[str, Any]:
        """The service's summary with the consumer's processing counts."""
        summary = await self.service.summary()
        stats = self._stats
        if stats is not None:
            summary["processing"] = {
                "handled": stats.handled,
                "retried": stats.retried,
                "dead_lettered": stats.dead_lettered,
                "not_subscribed": stats.unwanted,
            }
        return summary

    async def _close_resources(self) -> None:
        try:
            await self.service.stop()
        finally:
            server, self.server = self.server, None
            if server is not None:
                await server.stop()

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.report_interval_s)
            await self._report(final=False)

    async def _report(self, *, final: bool) -> None:
        summary = await self.summary()
        logger.info(
            "%s summary%s",
            self.service.name,
            " (final)" if final else "",
            extra={"service": self.service.name, "summary": summary},
        )
        path = self.settings.summary_file
        if path is not None:
            text = json.dumps({"service": self.service.name, **summary}, default=str)
            await asyncio.to_thread(_write_atomically, path, text)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


async def _guarded(what: str, work: Awaitable[None]) -> None:
    """Run background work that must never take the consumer down with it."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("%s stopped working; the service goes on without it", what)
