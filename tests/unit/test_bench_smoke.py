"""The in-process benchmark command runs end to end (figures are not checked here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = (
    "asyncio.Queue fan-out (floor)",
    "floor-one-dispatcher",
    "agent-events EventBus",
    "agent-events EventBus, metrics on",
    "bubus",
    "pyee AsyncIOEventEmitter",
    "blinker send_async",
)


def test_quick_benchmark_exits_zero_and_prints_a_row_for_every_contender(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    for name in CONTENDERS:
        assert any(name in row for row in rows), f"no row for {name}"
    figures = json.loads(out.read_text())
    measured_or_missing = set(figures["throughput_events_per_s"]) | set(figures["unavailable"])
    assert measured_or_missing == set(CONTENDERS)
