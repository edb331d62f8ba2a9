"""Structured logs: JSON lines for machines, readable lines on a terminal, one setup.

Every log record of the process (ours, aiokafka's, a user handler's ``logging`` call)
goes through structlog's formatter, so each line carries ``timestamp``, ``level``,
``logger``, ``event`` and the fields bound for the record being handled (``topic``,
``partition``, ``offset``, ``consumergroup``), the ``extra`` fields of the call
(``session_id``, ``event_type`` ...) and ``trace_id`` when an OpenTelemetry span is
current. Payloads are never logged by default.

Service logs go to stderr; the ``logging`` service's event lines go to stdout (logger
``agent_events.events``), so ``agent-events consume logging > events.jsonl`` keeps them apart.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Literal, TextIO

import structlog

from agent_events.observability.otel import current_trace_id

__all__ = ["EVENTS_LOGGER", "LogFormat", "bound_log_fields", "configure_logging"]

EVENTS_LOGGER = "agent_events.events"
"""The logger the ``logging`` service writes event lines to (stdout)."""

LogFormat = Literal["auto", "json", "console"]

_HANDLER_MARK = "_agent_events_handler"


def _add_trace_id(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    trace_id = current_trace_id()
    if trace_id is not None:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


def _formatter(fmt: LogFormat, stream: TextIO) -> logging.Formatter:
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_id,
    ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def _install(logger: logging.Logger, stream: TextIO, fmt: LogFormat) -> None:
    for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(_formatter(fmt, stream))
    logger.addHandler(handler)


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    events_stream: TextIO | None = None,
) -> None:
    """Route all logging through structlog: JSON lines, or readable lines on a terminal.

    ``auto`` is JSON unless the stream is a terminal. Calling it again replaces the
    handlers it installed earlier (never anyone else's).
    """
    stream = stream if stream is not None else sys.stderr
    events_stream = events_stream if events_stream is not None else sys.stdout
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    _install(root, stream, fmt)
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    events = logging.getLogger(EVENTS_LOGGER)
    _install(events, events_stream, fmt)
    events.propagate = False


def bound_log_fields(**fields: Any) -> AbstractContextManager[object]:
    """Bind ``fields`` to every log line written in this context (and tasks it starts)."""
    return structlog.contextvars.bound_contextvars(**fields)
