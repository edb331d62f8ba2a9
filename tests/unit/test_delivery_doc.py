"""docs/DELIVERY.md names the test behind each guarantee: every name must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "DELIVERY.md"


def _table() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Each guarantee") : text.index("## Dead letters and re-drive")]


def test_every_test_file_and_test_the_guarantee_table_names_exists() -> None:
    table = _table()
    sources = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")}
    files = set(re.findall(r"`(?:tests/\w+/)?(test_\w+\.py)", table))
    missing = sorted(f for f in files if f not in sources)
    assert missing == [], f"DELIVERY.md names test files that do not exist: {missing}"
    every = "".join(sources.values())
    names = re.findall(r"::(test_\w+)", table)
    assert len(names) > 20
    unknown = sorted(n for n in names if f"def {n}(" not in every)
    assert unknown == [], f"DELIVERY.md names tests that do not exist: {unknown}"


def test_every_fault_test_in_the_table_is_marked_for_the_fault_run() -> None:
    marked = [
        p.name
        for p in (ROOT / "tests" / "integration").glob("test_*.py")
        if "pytest.mark.faults" in p.read_text(encoding="utf-8")
    ]
    for name in ("test_failover.py", "test_producer_recovery.py", "test_member_stall.py"):
        assert name in marked
