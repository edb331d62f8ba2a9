"""``agent-events trace [SESSION_ID]``: one session's timeline, as the ``tracing`` service saw it.

Reads the SQLite file that ``agent-events consume tracing`` writes (``tracing.path``, set
with ``--trace-db`` or ``AGENT_EVENTS_TRACING__PATH``), read-only, so it runs beside the
service. Without a SESSION_ID it lists the most recently active sessions. Exit codes: 0 found,
1 no such session (as ``grep``), 2 a user mistake (no database there, a bad flag).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agent_events.cli._common import AsJson, ConfigFile, table_console
from agent_events.services.tracing import load_trace, trace_sessions
from agent_events.settings import load_settings

__all__ = ["trace"]


def trace(
    session_id: Annotated[
        str | None,
        typer.Argument(help="The session to show; omit it to list recent sessions."),
    ] = None,
    trace_db: Annotated[
        Path | None,
        typer.Option(
            "--trace-db",
            help="The tracing service's SQLite file (default: agent-events-traces.db).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Sessions to list without SESSION_ID.")
    ] = 20,
    config: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Show a session's timeline from the tracing service's store (or list recent sessions)."""
    settings = load_settings({"tracing": {"path": trace_db}}, config)
    path = settings.tracing.path
    if session_id is None:
        sessions = asyncio.run(asyncio.to_thread(trace_sessions, path, limit))
        _print_sessions(sessions, as_json)
        return
    timeline = asyncio.run(asyncio.to_thread(load_trace, path, session_id))
    if not timeline:
        typer.echo(f"no events of session {session_id!r} in {path}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"session_id": session_id, "events": timeline}, default=str))
        return
    table = Table(
        "+MS",
        "TIME",
        "EVENT",
        "AGENT",
        "DURATION",
        "ERROR",
        title=f"session {session_id}",
        box=None,
    )
    for entry in timeline:
        error = ": ".join(str(e) for e in (entry["error_type"], entry["error_message"]) if e)
        duration = entry["execution_time_ms"]
        table.add_row(
            f"+{entry['offset_ms']}",
            str(entry["timestamp"]),
            str(entry["event_type"]),
            str(entry["agent_id"]),
            "" if duration is None else f"{duration} ms",
            error,
        )
    table_console().print(table)


def _print_sessions(sessions: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(sessions, default=str))
        return
    table = Table("SESSION", "EVENTS", "FIRST", "LAST", box=None)
    for s in sessions:
        table.add_row(str(s["session_id"]), str(s["events"]), str(s["first"]), str(s["last"]))
    table_console().print(table)
