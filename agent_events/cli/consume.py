"""``agent-events consume SERVICE``: run one consumer service as a member of its group.

Start more processes with the same ``--group`` to scale: Kafka splits the partitions
between them. SIGTERM or Ctrl-C finishes the fetched records, commits and exits 0.
Settings: these flags > ``AGENT_EVENTS_*`` environment (and ``./.env``) > ``--config``
file > defaults (see :mod:`agent_events.settings`). Exit codes: 0 stopped cleanly, 2 a
bad argument or setting, an unknown service, or a broker or sink that cannot be reached
(one line on stderr).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import CollectorRegistry

from agent_events.cli._common import (
    BootstrapServers,
    ConfigFile,
    ConnectTimeout,
    Topic,
    stop_on_signals,
)
from agent_events.observability.logs import configure_logging
from agent_events.services import SERVICES, ServiceBuilder, ServiceHost
from agent_events.services.plugins import resolve_builder
from agent_events.settings import AgentEventsSettings, load_settings

__all__ = [
    "AutoOffsetReset",
    "DlqTopic",
    "Group",
    "LogFormat",
    "LogLevel",
    "MetricsHost",
    "MetricsPort",
    "ReportInterval",
    "SummaryFile",
    "consume",
    "consume_flags",
    "serve_service",
]

_ALERTING = "Service options: alerting"
_STORE = "Service options: store"
_TRACING = "Service options: tracing"
_ROUTER = "Service options: router"
_AGGREGATE = "Service options: aggregate, sessions"
_OBSERVE = "Metrics and logs"

# The options every service process takes, `consume` and `run` alike: declared once here.
Group = Annotated[
    str | None,
    typer.Option(
        "--group",
        "-g",
        help="Consumer group (default: agent-events-SERVICE). Same group = share the work.",
        show_default=False,
    ),
]
DlqTopic = Annotated[
    str | None,
    typer.Option(help="Dead-letter topic (default: agent.events.dlq).", show_default=False),
]
AutoOffsetReset = Annotated[
    str | None,
    typer.Option(
        help="Where a new group starts: earliest or latest (default: earliest).",
        show_default=False,
    ),
]
MetricsPort = Annotated[
    int | None,
    typer.Option(
        help="Serve /metrics and /healthz on this port (0: any free port).",
        rich_help_panel=_OBSERVE,
        show_default=False,
    ),
]
MetricsHost = Annotated[
    str | None,
    typer.Option(
        help="Address of the metrics endpoint (default: 127.0.0.1).",
        rich_help_panel=_OBSERVE,
        show_default=False,
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(
        help="auto (JSON unless a terminal), json or console.",
        rich_help_panel=_OBSERVE,
        show_default=False,
    ),
]
LogLevel = Annotated[
    str | None,
    typer.Option(
        help="DEBUG, INFO, WARNING or ERROR.", rich_help_panel=_OBSERVE, show_default=False
    ),
]
SummaryFile = Annotated[
    Path | None,
    typer.Option(
        help="Write what the service computed to this JSON file (periodically and at exit).",
        rich_help_panel=_OBSERVE,
        dir_okay=False,
    ),
]
ReportInterval = Annotated[
    float | None,
    typer.Option(
        help="Seconds between summary reports (default: 30).",
        rich_help_panel=_OBSERVE,
        show_default=False,
    ),
]


def consume_flags(**given: Any) -> dict[str, Any]:
    """The settings the command-line flags give, nested as :func:`load_settings` wants.

    The window flags set the section of the service that runs: ``sessions`` for the
    sessions service, ``aggregate`` otherwise.
    """
    windows = "sessions" if given.get("service") == "sessions" else "aggregate"
    return {
        "bootstrap_servers": given.get("bootstrap_servers"),
        "connect_timeout_s": given.get("connect_timeout"),
        "group_id": given.get("group"),
        "topic": given.get("topic"),
        "dlq_topic": given.get("dlq_topic"),
        "metrics_port": given.get("metrics_port"),
        "metrics_host": given.get("metrics_host"),
        "log_format": given.get("log_format"),
        "log_level": given.get("log_level"),
        "summary_file": given.get("summary_file"),
        "report_interval_s": given.get("report_interval"),
        "consumer": {"auto_offset_reset": given.get("auto_offset_reset")},
        "alerting": {
            "slow_threshold_ms": given.get("slow_threshold_ms"),
            "webhook_url": given.get("webhook_url"),
            "webhook_retries": given.get("webhook_retries"),
        },
        "store": {"url": given.get("store_url")},
        "tracing": {"path": given.get("trace_db")},
        "router": {"handlers": given.get("handler") or None},
        windows: {
            "window": given.get("window"),
            "grace": given.get("grace"),
            "key_fields": given.get("key"),
            "output_topic": given.get("output_topic"),
            "late_topic": given.get("late_topic"),
            "alerts_topic": given.get("alerts_topic"),
            "alert_threshold": given.get("alert_threshold"),
            "emit_on_update": given.get("emit_on_update"),
            "processing_guarantee": given.get("guarantee"),
        },
    }


def consume(
    service: Annotated[
        str,
        typer.Argument(
            help=f"The service to run: {', '.join(SERVICES)}, or an installed plugin's name.",
            show_default=False,
        ),
    ],
    bootstrap_servers: BootstrapServers = None,
    connect_timeout: ConnectTimeout = None,
    group: Group = None,
    topic: Topic = None,
    dlq_topic: DlqTopic = None,
    auto_offset_reset: AutoOffsetReset = None,
    config: ConfigFile = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
    log_format: LogFormat = None,
    log_level: LogLevel = None,
    summary_file: SummaryFile = None,
    report_interval: ReportInterval = None,
    slow_threshold_ms: Annotated[
        float | None,
        typer.Option(
            help="A completion slower than this alerts (default: 5000).",
            rich_help_panel=_ALERTING,
            show_default=False,
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="POST alerts as JSON to this URL.", rich_help_panel=_ALERTING),
    ] = None,
    webhook_retries: Annotated[
        int | None,
        typer.Option(
            help="Retries of a failed POST (default: 3).",
            rich_help_panel=_ALERTING,
            show_default=False,
        ),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///events.db (default: sqlite:///agent-events-store.db) or "
            "postgresql://user:pass@host/db.",
            rich_help_panel=_STORE,
            show_default=False,
        ),
    ] = None,
    trace_db: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file of session timelines (default: agent-events-traces.db).",
            rich_help_panel=_TRACING,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    handler: Annotated[
        list[str] | None,
        typer.Option(
            help="package.module:attribute of a handler or factory (repeatable).",
            rich_help_panel=_ROUTER,
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            help="tumbling:60s, hopping:60s/10s, sliding:60s or session:30m (default: "
            "tumbling:60s; sessions: session:30m).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    grace: Annotated[
        str | None,
        typer.Option(
            help="How long after a window's end late events still join it, e.g. 10s.",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="Window key fields, comma-separated (default: event_type,agent_id; "
            "session windows: session_id).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    output_topic: Annotated[
        str | None,
        typer.Option(
            help="Closed windows go here (default: agent.events.aggregates; sessions: "
            "agent.events.sessions).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    late_topic: Annotated[
        str | None,
        typer.Option(
            help="Events too late for every window go here (default: counted only).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    alerts_topic: Annotated[
        str | None,
        typer.Option(
            help="Threshold alerts go here (default: agent.events.alerts).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    alert_threshold: Annotated[
        int | None,
        typer.Option(
            help="Alert when a window of a key holds this many events (e.g. 10).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    emit_on_update: Annotated[
        bool | None,
        typer.Option(
            "--emit-on-update/--emit-final-only",
            help="Also emit open windows' current values at each commit.",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
    guarantee: Annotated[
        str | None,
        typer.Option(
            help="exactly_once, at_least_once or auto (default: exactly once where the "
            "broker has transactions).",
            rich_help_panel=_AGGREGATE,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a consumer service; start more with the same --group to scale out."""
    flags = consume_flags(**locals())
    serve_service(resolve_builder(service, SERVICES), flags, config)


def serve_service(builder: ServiceBuilder, flags: dict[str, Any], config: Path | None) -> None:
    """Run the service ``builder`` builds until SIGTERM or Ctrl-C: what ``consume`` and
    ``run`` share.

    1. load the settings (``flags`` > environment > ``config`` file > defaults);
    2. configure logging;
    3. build the service and run it in a :class:`ServiceHost` (metrics, health, lag,
       summary); a signal drains the fetched records, commits and returns.
    """
    settings = load_settings(flags, config)
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(_run(builder, settings))


async def _run(builder: ServiceBuilder, settings: AgentEventsSettings) -> None:
    service = builder(settings, CollectorRegistry())
    # The service's settings: an App fills in its own defaults (topic, tuning).
    host = ServiceHost(service, service.settings)
    with stop_on_signals(host.request_stop):
        async with host:
            await host.run()
