"""The ``agent-events`` command line: a small root app that sub-command modules plug into.

Each command group lives in its own module (``cli/broker.py`` ...) as a ``typer.Typer`` named
``app`` and is added below with one ``add_typer`` line. :func:`main` runs the app so that a
user mistake (a bad flag, a value out of range, an ``AgentEventsError``) prints one line on
stderr and exits with code 2, never a traceback.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from agent_events import __version__
from agent_events.agent_runtime.errors import AgentEventsError
from agent_events.cli import (
    broker,
    consume,
    demo,
    dlq,
    groups,
    produce,
    replay,
    run,
    tail,
    topics,
    trace,
    verify_order,
)
from agent_events.transport import BrokerUnreachable

__all__ = ["app", "main"]

app = typer.Typer(
    name="agent-events",
    help="Event system for AI-agent runtimes: local brokers, consumer services, replay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo.demo)
app.add_typer(broker.app, name="broker")
app.command("consume")(consume.consume)
app.command("run")(run.run)
app.add_typer(groups.app, name="groups")
app.command("replay")(replay.replay_command)
app.add_typer(topics.app, name="topics")
app.command("produce")(produce.produce)
app.command("tail")(tail.tail)
app.add_typer(dlq.app, name="dlq")
app.command("verify-order")(verify_order.verify_order_command)
app.command("trace")(trace.trace)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"agent-events {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Event system for AI-agent runtimes: local brokers, consumer services, replay."""


def _command_line(args: list[str]) -> str:
    """``agent-events consume metrics``: the command and its first argument, no options."""
    words = list(itertools.takewhile(lambda arg: not arg.startswith("-"), args))[:2]
    return " ".join(["agent-events", *words])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="agent-events", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except BrokerUnreachable as exc:
        # Named as the user ran it, not after whichever client found out first.
        typer.echo(f"Error: {exc.retold(_command_line(args))}", err=True)
        return 2
    except AgentEventsError as exc:
        # A setup failure carries the broker's log tail after its first line: keep it.
        typer.echo(f"Error: {exc}", err=True)
        return 2
    except typer.TyperException as exc:  # click's usage errors: bad flag, bad value, no command
        message = _one_line(exc.format_message()) if hasattr(exc, "format_message") else ""
        if message:
            typer.echo(f"Error: {message} (see --help)", err=True)
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0
