"""The README's first example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def first_example() -> str:
    text = README.read_text()
    section = text.split("## First example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_readme_first_example_runs_as_written() -> None:
    result = subprocess.run(
        [sys.executable, "-c", first_example()], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "my_agent completed in" in result.stdout
    assert "'agent_started': 1" in result.stdout
    assert "'agent_completed': 1" in result.stdout
