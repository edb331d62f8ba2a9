"""A service another package installs: ``agent-events consume NAME`` finds it by entry point.

The sample package (``tests/data/sample_plugin``) is built and pip-installed offline into a
temporary directory, then its services run as real ``agent-events consume`` processes on a
real broker: they handle what is produced, run the app's hooks, and stop on SIGTERM with
exit 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_support import produce
from test_consume_cli import CLI, ConsumeProcess, completions, until
from test_consumer_processes import complete_json_lines

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.broker.pytest_fixtures import NewTopic, RunningBroker

SOURCE_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = SOURCE_ROOT / "tests" / "data" / "sample_plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample package, installed by pip as a user would (offline, into its own dir)."""
    build = tmp_path_factory.mktemp("sample_plugin")
    source = build / "source"  # pip builds in the tree: keep tests/data clean
    shutil.copytree(SAMPLE, source)
    site = build / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
            "--no-build-isolation", "--no-deps", "--target", str(site), str(source),
        ],
        check=True,
        timeout=180,
    )  # fmt: skip
    assert (site / "sample_audit.py").is_file()
    return site


def plugin_env(site: Path, audit_file: Path) -> dict[str, str]:
    # This checkout first, so the process runs the agent_events under test.
    path = [str(site), str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")]
    return {
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "SAMPLE_AUDIT_FILE": str(audit_file),
    }


@pytest.mark.parametrize("service", ["sample-audit", "sample-audit-counter"])
async def test_an_installed_plugin_service_handles_events_and_stops_on_sigterm(
    service: str,
    plugin_site: Path,
    broker: RunningBroker,
    new_topic: NewTopic,
    tmp_path: Path,
) -> None:
    topic = await new_topic(partitions=2)
    audit = tmp_path / "audit.jsonl"
    args = [service, "-b", broker.bootstrap_servers, "--group", f"{topic}-g"]
    env = plugin_env(plugin_site, audit)
    if service == "sample-audit":
        env["SAMPLE_AUDIT_TOPIC"] = topic  # the App's own topic: no flag overrides it
    else:
        args += ["--topic", topic]
    process = ConsumeProcess(args, tmp_path, service, env)
    try:
        await process.started()
        events: list[SystemEvent] = [
            *completions(sessions=4, per_session=2),
            SystemEvent(event_type=EventType.AGENT_STARTED, agent_id="not-audited"),
        ]
        await produce(broker.bootstrap_servers, topic, events)

        def audited() -> list[str]:
            if not audit.exists():
                return []
            return [line["agent_id"] for line in complete_json_lines(audit) if "agent_id" in line]

        await until(lambda: len(audited()) >= 8, "the plugin to audit every completion")
        assert await process.terminate() == 0, process.stderr_tail()
    finally:
        process.kill()

    assert sorted(audited()) == sorted(e.agent_id for e in events[:8])
    hooks = [line["hook"] for line in complete_json_lines(audit) if "hook" in line]
    assert hooks == (["startup", "shutdown"] if service == "sample-audit" else [])


def test_consume_of_an_unknown_name_lists_the_installed_plugins(
    plugin_site: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*CLI, "consume", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **plugin_env(plugin_site, tmp_path / "unused")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.endswith("plugins: sample-audit, sample-audit-counter\n")
    assert result.stderr.count("\n") == 1
