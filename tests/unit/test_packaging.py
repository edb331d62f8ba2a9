"""The wheel installs one top-level package, so nothing generic lands in site-packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = (".git", "build", "*.egg-info", ".*cache", "__pycache__", ".hypothesis", ".m2")
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]


@pytest.mark.slow
def test_wheel_installs_only_the_agent_events_namespace(tmp_path: Path) -> None:
    # A copy, since setuptools builds in the source tree (and leaves build/ behind).
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [*PIP_WHEEL, "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("agent_events-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("agent_events-")}
    assert top_level == {"agent_events"}
    assert "agent_events/schemas/system_event.avsc" in names
    assert "agent_events/consumers/runtime.py" in names


def test_a_users_own_schemas_module_does_not_shadow_ours(tmp_path: Path) -> None:
    (tmp_path / "schemas.py").write_text("raise ImportError('the user module was imported')\n")
    (tmp_path / "producers.py").write_text("raise ImportError('the user module was imported')\n")
    code = "import agent_events.producers, agent_events.schemas; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
