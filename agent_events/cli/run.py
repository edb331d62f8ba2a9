"""``agent-events run module:app``: run your own :class:`~agent_events.App` as a service.

The app runs exactly as ``agent-events consume`` runs a built-in service (the same
flags, settings, consumer group, metrics and health endpoints, SIGTERM drain): both
call :func:`~agent_events.cli.consume.serve_service`. The current directory is
importable, as with ``python -m``. Exit codes: 0 stopped cleanly, 2 a bad
``module:app``, a bad setting or an unreachable broker (one line on stderr).
"""

from __future__ import annotations

from typing import Annotated

import typer

from agent_events.agent_runtime.errors import ConfigError
from agent_events.app import App
from agent_events.cli._common import BootstrapServers, ConfigFile, ConnectTimeout, Topic
from agent_events.cli.consume import (
    AutoOffsetReset,
    DlqTopic,
    Group,
    LogFormat,
    LogLevel,
    MetricsHost,
    MetricsPort,
    ReportInterval,
    SummaryFile,
    consume_flags,
    serve_service,
)
from agent_events.services import import_object

__all__ = ["import_app", "run"]


def import_app(path: str) -> App:
    """The :class:`App` that ``package.module:attribute`` names, else :class:`ConfigError`."""
    try:
        target = import_object(path)
    except ConfigError as exc:
        # import_object speaks of handlers (the router's word); here it is an app.
        raise ConfigError(str(exc).replace(f"handler {path!r}", f"app {path!r}", 1)) from None
    if not isinstance(target, App):
        raise ConfigError(
            f"app {path!r} is a {type(target).__name__}, not an App "
            "(from agent_events import App; app = App('name'))"
        )
    return target


def run(
    app: Annotated[
        str,
        typer.Argument(help="package.module:attribute of your App.", show_default=False),
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
) -> None:
    """Run your App as a consumer service; start more with the same --group to scale out."""
    flags = consume_flags(**locals())
    serve_service(import_app(app).build_service, flags, config)
