"""The ``alerting`` service: errors and slow executions to a log and to an HTTP webhook.

Two handlers, each the spec's :class:`AlertingHandler` with its own sink, so a webhook
that is down is retried (and finally dead-lettered) without writing the log alert
again: the consumer retries only the handler that failed.

:class:`WebhookAlertSink` POSTs each alert as JSON. Steps of one delivery:

1. POST; a 2xx answer is delivered;
2. a connection error, a timeout, 429 or 5xx is retried up to ``retries`` times with
   the project's one jittered exponential backoff (:func:`agent_events.transport.backoff_delay`;
   a numeric ``Retry-After`` is honoured, capped by the backoff maximum); any other
   status is refused at once, since repeating it cannot help;
3. still failing: raise :class:`SinkError`, so the consumer retries the record and then
   dead-letters it with the reason. Every attempt is counted in
   ``agent_events_alert_webhook_requests_total{outcome}``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from agent_events.agent_runtime.errors import SinkError
from agent_events.consumers.handlers import AlertingHandler, AlertSink, LoggingAlertSink
from agent_events.consumers.runtime import HandlerSpec
from agent_events.services._base import NamedHandler, Service
from agent_events.settings import AgentEventsSettings
from agent_events.transport import backoff_delay

__all__ = ["AlertingService", "WebhookAlertSink"]

logger = logging.getLogger(__name__)

_RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookAlertSink:
    """An :class:`AlertSink` that POSTs ``{"severity", "title", "message", "sent_at"}`` as JSON.

    Use ``async with`` (it owns a pooled HTTP client). ``requests`` counts attempts
    by outcome: ``ok``, ``http_error`` (retriable status), ``refused`` (other
    status), ``connection_error``, ``timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 10.0,
        timeout_s: float = 5.0,
        requests: Counter | None = None,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self._requests = requests
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0

    async def __aenter__(self) -> WebhookAlertSink:
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send_alert(self, severity: str, title: str, message: str) -> None:
        """Deliver one alert, retrying as the module docstring says; raises :class:`SinkError`."""
        if self._client is None:
            raise SinkError("the webhook sink is not open; use 'async with WebhookAlertSink(...)'")
        payload = {
            "severity": severity,
            "title": title,
            "message": message,
            "sent_at": datetime.now(UTC).isoformat(),
            "source": "agent-events",
        }
        for attempt in range(self.retries + 1):
            outcome, problem, retry_after = await self._post(self._client, payload)
            self._count(outcome)
            if outcome == "ok":
                self.delivered += 1
                return
            if outcome == "refused" or attempt == self.retries:
                raise SinkError(
                    f"alert webhook {self.url} failed after {attempt + 1} attempt(s): {problem}"
                )
            if retry_after is None:
                retry_after = backoff_delay(
                    attempt + 1, initial_s=self.backoff_s, max_s=self.backoff_max_s
                )
            delay = min(self.backoff_max_s, retry_after)
            logger.info("alert webhook: %s; retrying in %.2fs", problem, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(
        self, client: httpx.AsyncClient, payload: dict[str, Any]
    ) -> tuple[str, str, float | None]:
        try:
            response = await client.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            return "timeout", f"no answer within {self.timeout_s:g}s ({type(exc).__name__})", None
        except httpx.TransportError as exc:
            return "connection_error", f"{type(exc).__name__}: {exc}", None
        if response.is_success:
            return "ok", "", None
        problem = f"HTTP {response.status_code} {response.reason_phrase}"
        if response.status_code not in _RETRIABLE_STATUS:
            return "refused", problem, None
        return "http_error", problem, _retry_after(response)

    def _count(self, outcome: str) -> None:
        if self._requests is not None:
            self._requests.labels(outcome).inc()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date, or nothing: use our own backoff


class _CountingSink:
    """Counts delivered alerts by sink and severity, then passes them on."""

    def __init__(self, sink: AlertSink, name: str, alerts: Counter) -> None:
        self._sink = sink
        self._name = name
        self._alerts = alerts

    async def send_alert(self, severity: str, title: str, message: str) -> None:
        await self._sink.send_alert(severity, title, message)
        self._alerts.labels(self._name, severity).inc()


class AlertingService(Service):
    """Alerts on ``ERROR_OCCURRED`` and on completions slower than ``slow_threshold_ms``."""

    name = "alerting"

    def __init__(self, settings: AgentEventsSettings, registry: CollectorRegistry) -> None:
        super().__init__(settings, registry)
        options = settings.alerting
        self._alerts = Counter(
            "agent_events_alerts",
            "Alerts delivered, per sink and severity.",
            ["sink", "severity"],
            registry=registry,
        )
        self.webhook: WebhookAlertSink | None = None
        if options.webhook_url is not None:
            self.webhook = WebhookAlertSink(
                options.webhook_url,
                retries=options.webhook_retries,
                backoff_s=options.webhook_backoff_s,
                backoff_max_s=options.webhook_backoff_max_s,
                timeout_s=options.webhook_timeout_s,
                requests=Counter(
                    "agent_events_alert_webhook_requests",
                    "Alert webhook attempts, per outcome.",
                    ["outcome"],
                    registry=registry,
                ),
            )
        self._handlers: list[HandlerSpec] = []
        threshold = options.slow_threshold_ms
        if options.log:
            sink = _CountingSink(LoggingAlertSink(), "log", self._alerts)
            self._handlers.append(NamedHandler("alerting.log", AlertingHandler(sink, threshold)))
        if self.webhook is not None:
            sink = _CountingSink(self.webhook, "webhook", self._alerts)
            self._handlers.append(
                NamedHandler("alerting.webhook", AlertingHandler(sink, threshold))
            )

    def handlers(self) -> list[HandlerSpec]:
        return list(self._handlers)

    async def start(self) -> None:
        if self.webhook is not None:
            await self.webhook.__aenter__()

    async def stop(self) -> None:
        if self.webhook is not None:
            await self.webhook.__aexit__(None, None, None)

    async def summary(self) -> dict[str, Any]:
        delivered: dict[str, dict[str, float]] = {}
        for metric in self._alerts.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    by_sink = delivered.setdefault(sample.labels["sink"], {})
                    by_sink[sample.labels["severity"]] = sample.value
        return {
            "slow_threshold_ms": self.settings.alerting.slow_threshold_ms,
            "alerts": delivered,
        }
