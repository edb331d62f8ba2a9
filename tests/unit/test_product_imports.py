"""The product stands apart from the workbench: importing it does not import pytest."""

from __future__ import annotations

import subprocess
import sys

PRODUCT_MODULES = [
    "agent_events",
    "agent_events.cli",
    "agent_events.broker",
    "agent_events.consumers",
    "agent_events.producers",
    "agent_events.consumers.capabilities",
]


def test_importing_the_product_and_every_cli_command_does_not_import_pytest() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PRODUCT_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "import agent_events.cli as cli, typer\n"
        "typer.main.get_command(cli.app)\n"
        "print(sorted(m for m in sys.modules if m == 'pytest' or m.startswith(('_pytest', 'pytest_'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
