"""``python -m bench.windows --quick`` runs every contender end to end (figures not checked)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from agent_events.broker.pytest_fixtures import RunningBroker
from bench._windows_contenders import CONTENDERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker_kinds("kafka")  # the exactly-once rows need transactions (not on Tansu)
@pytest.mark.timeout(240)
async def test_quick_window_benchmark_measures_every_contender(
    broker: RunningBroker, tmp_path: Path
) -> None:
    out = tmp_path / "figures.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.windows", "--quick",
        "--bootstrap-servers", broker.bootstrap_servers, "--json", str(out),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 220)
    assert process.returncode == 0, stderr.decode()[-2000:]
    figures = json.loads(out.read_text())["results"]
    assert figures["errors"] == {}
    assert set(figures["rates"]) == set(CONTENDERS)
    assert all(rate > 0 for rates in figures["rates"].values() for rate in rates)
    assert "vs hand-written aiokafka" in stdout.decode()
