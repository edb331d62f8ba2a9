"""The local development broker behind ``agent-events broker start|stop|status``.

It runs detached (it outlives the command that started it) and keeps its state in one data
folder (default ``~/.local/share/agent-events/broker``)::

    <data-dir>/broker.json       kind, pid, bootstrap servers, ports: written once ready
    <data-dir>/kafka/node-1/     Apache Kafka's config, data and logs (formatted once)
    <data-dir>/tansu/tansu.log   Tansu's output (Tansu keeps data in memory only)

``start`` also records the data folder in ``<cache-dir>/brokers.json`` (the cache dir is
``$AGENT_EVENTS_CACHE_DIR`` or ``~/.cache/agent-events``), so ``status`` and ``stop`` without
``--data-dir`` find the broker last started, wherever its data is (see :func:`last_started`).

Guarantees: ``start`` returns only once the broker serves (or raises and leaves nothing
running); Kafka's data survives stop/start; ``status`` never reports a dead or foreign process
as running (the pid must still be a Kafka or Tansu process); ``stop`` sends SIGTERM and
SIGKILLs after its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agent_events.agent_runtime.errors import ConfigError
from agent_events.broker._process import is_alive, stop_process_group
from agent_events.broker.kafka_cluster import KafkaCluster
from agent_events.broker.kafka_libs import DEFAULT_KAFKA_VERSION, default_cache_dir
from agent_events.broker.selection import resolve_kind
from agent_events.broker.tansu import TansuBroker

__all__ = ["DEFAULT_PORT", "DevBroker", "DevBrokerState", "default_data_dir", "last_started"]

DEFAULT_PORT = 9092
_STATE_FILE = "broker.json"
_STARTED_FILE = "brokers.json"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/agent-events/broker``, by default ``~/.local/share/agent-events/broker``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "agent-events" / "broker"


@dataclass(frozen=True, slots=True)
class DevBrokerState:
    """What ``broker.json`` records about a started broker."""

    kind: str
    pid: int
    bootstrap_servers: str
    port: int
    controller_port: int | None
    version: str
    data_dir: str
    log_file: str
    data_kept: bool
    started_at: float

    def to_json(self) -> dict[str, object]:
        """A plain dict for ``--json`` output."""
        return asdict(self)


class DevBroker:
    """Start, inspect and stop the detached development broker of one data folder."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()

    @property
    def _flag(self) -> str:
        """The ``--data-dir`` flag a hint must repeat, if the folder is not the default."""
        return (
            "" if self.data_dir == default_data_dir().resolve() else f" --data-dir {self.data_dir}"
        )

    @property
    def state_file(self) -> Path:
        """``<data-dir>/broker.json``."""
        return self.data_dir / _STATE_FILE

    def status(self) -> DevBrokerState | None:
        """The running broker's state, or None (a stale state file is removed)."""
        try:
            raw = json.loads(self.state_file.read_text())
            state = DevBrokerState(**raw)
        except (OSError, ValueError, TypeError):
            return None
        if _is_broker_process(state.pid, state.kind):
            return state
        self.state_file.unlink(missing_ok=True)
        return None

    async def start(
        self,
        *,
        kind: str = "auto",
        port: int = DEFAULT_PORT,
        controller_port: int | None = None,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        ready_timeout: float = 90.0,
    ) -> DevBrokerState:
        """Start a detached broker and return once it serves.

        Raises ConfigError if one is running already or a port is busy, ToolMissing if the
        kind cannot run here, BrokerSetupError (with the log tail) if it does not come up.
        """
        running = await asyncio.to_thread(self.status)
        if running is not None:
            raise ConfigError(
                f"a {running.kind} broker is already running at {running.bootstrap_servers} "
                f"(pid {running.pid}); stop it first with: agent-events broker stop{self._flag}"
            )
        chosen = await asyncio.to_thread(resolve_kind, kind, version=kafka_version)
        ports = [port]
        if chosen == "kafka":
            controller_port = controller_port or port + 1
            ports.append(controller_port)
        for p in ports:
            _check_port_free(p)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if chosen == "kafka":
            state = await self._start_kafka(port, controller_port, kafka_version, ready_timeout)
        else:
            state = await self._start_tansu(port, ready_timeout)
        await asyncio.to_thread(self._write_state, state)
        await asyncio.to_thread(_remember, self.data_dir, started=True)
        return state

    async def _start_kafka(
        self, port: int, controller_port: int | None, version: str, ready_timeout: float
    ) -> DevBrokerState:
        cluster = KafkaCluster.single(
            version=version,
            data_dir=self.data_dir / "kafka",
            port=port,
            controller_port=controller_port,
            ready_timeout=ready_timeout,
            owned=False,
        )
        await cluster.start()
        node = cluster.nodes[0]
        assert node.pid is not None
        return DevBrokerState(
            kind="kafka",
            pid=node.pid,
            bootstrap_servers=cluster.bootstrap_servers,
            port=node.spec.port,
            controller_port=node.spec.controller_port,
            version=version,
            data_dir=str(self.data_dir),
            log_file=str(node.server_log),
            data_kept=True,
            started_at=time.time(),
        )

    async def _start_tansu(self, port: int, ready_timeout: float) -> DevBrokerState:
        broker = TansuBroker(
            port=port, home=self.data_dir / "tansu", ready_timeout=ready_timeout, owned=False
        )
        await broker.start()
        assert broker.pid is not None
        return DevBrokerState(
            kind="tansu",
            pid=broker.pid,
            bootstrap_servers=broker.bootstrap_servers,
            port=port,
            controller_port=None,
            version="tansu",
            data_dir=str(self.data_dir),
            log_file=str(broker.log_file),
            data_kept=False,
            started_at=time.time(),
        )

    def _write_state(self, state: DevBrokerState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
        tmp.replace(self.state_file)

    async def stop(self, grace_s: float = 30.0) -> DevBrokerState:
        """SIGTERM the running broker, SIGKILL after ``grace_s``; return what was stopped.

        Raises ConfigError if no broker of this data folder is running.
        """
        state = await asyncio.to_thread(self.status)
        if state is None:
            raise ConfigError(
                f"no broker is running from {self.data_dir}; start one with: "
                f"agent-events broker start{self._flag}"
            )
        await asyncio.to_thread(stop_process_group, state.pid, timeout=grace_s)
        self.state_file.unlink(missing_ok=True)
        await asyncio.to_thread(_remember, self.data_dir, started=False)
        return state


def last_started() -> Path | None:
    """The data folder of the running broker ``start`` started last, or None.

    Folders whose broker no longer runs are dropped from the record on the way.
    """
    folders = _started_folders()
    running = [f for f in folders if DevBroker(f).status() is not None]
    if running != folders:
        _write_started(running)
    return running[-1] if running else None


def _started_file() -> Path:
    return default_cache_dir() / _STARTED_FILE


def _started_folders() -> list[Path]:
    try:
        raw = json.loads(_started_file().read_text())
        return [Path(str(f)) for f in raw["data_dirs"]]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def _write_started(folders: list[Path]) -> None:
    path = _started_file()
    # Only a convenience: --data-dir still finds every broker if this cannot be written.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"data_dirs": [str(f) for f in folders]}, indent=2) + "\n")
        tmp.replace(path)


def _remember(data_dir: Path, *, started: bool) -> None:
    """Record a start (most recent last) or forget a stop of the broker of ``data_dir``."""
    folders = [f for f in _started_folders() if f != data_dir]
    _write_started([*folders, data_dir] if started else folders)


def _check_port_free(port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is not a TCP port; use 1-65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the broker will: connections in TIME_WAIT from an earlier run don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(
                f"port {port} on 127.0.0.1 is busy; pick another with --port "
                "or stop what listens there"
            ) from None


def _is_broker_process(pid: int, kind: str) -> bool:
    """True if ``pid`` is alive and still runs the broker (pids are reused after exit)."""
    if not is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc: trust the pid
    marker = b"kafka.Kafka" if kind == "kafka" else b"tansu"
    return marker in cmdline
