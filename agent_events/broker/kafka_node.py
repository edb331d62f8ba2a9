"""One Apache Kafka KRaft node run as a JVM process on loopback.

A node owns a home folder::

    <home>/config/server.properties, log4j2.properties
    <home>/data/                 log.dirs (meta.properties once formatted)
    <home>/logs/server.log       the broker's own log
    <home>/logs/stdout.log       JVM output (startup errors before log4j is up)

Guarantees: storage is formatted once (a restart keeps the data); ``start`` returns only when
the node answers metadata requests, or raises BrokerSetupError with the log tail; ``stop``
always reaps the process (SIGTERM, then SIGKILL after its deadline).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent_events.agent_runtime.errors import BrokerSetupError
from agent_events.broker._process import log_tail, spawn, stop_process
from agent_events.broker.kafka_config import (
    NodeSpec,
    render_log4j2_properties,
    render_server_properties,
)
from agent_events.broker.kafka_libs import KafkaLibs
from agent_events.broker.readiness import BrokerNotReady, wait_until_serving

__all__ = ["KafkaNode", "read_cluster_id"]

_FORMAT_TIMEOUT_S = 120.0
_HEAP = ("-Xms256m", "-Xmx512m")


def read_cluster_id(data_dir: Path) -> str | None:
    """The cluster id recorded in ``meta.properties`` of a formatted log dir, else None."""
    try:
        text = (data_dir / "meta.properties").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


class KafkaNode:
    """A combined broker+controller node; see the module docstring for its files."""

    def __init__(
        self,
        spec: NodeSpec,
        voters: Sequence[NodeSpec],
        home: Path,
        *,
        libs: KafkaLibs,
        java: str,
        overrides: Mapping[str, str] | None = None,
        owned: bool = True,
    ) -> None:
        self.spec = spec
        self.home = home
        self._voters = tuple(voters)
        self._libs = libs
        self._java = java
        self._overrides = dict(overrides or {})
        self._owned = owned
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> int:
        """The KRaft ``node.id``."""
        return self.spec.node_id

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` of this node alone."""
        return self.spec.bootstrap

    @property
    def data_dir(self) -> Path:
        """``log.dirs`` of this node."""
        return self.home / "data"

    @property
    def server_log(self) -> Path:
        """The broker's log file."""
        return self.home / "logs" / "server.log"

    @property
    def pid(self) -> int | None:
        """Pid of the JVM (also its process group id) while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the JVM process is alive."""
        return self.pid is not None

    @property
    def formatted(self) -> bool:
        """True once storage carries a ``meta.properties``."""
        return read_cluster_id(self.data_dir) is not None

    def write_config(self) -> Path:
        """(Re)write this node's config files; ports may change between runs, data does not."""
        config = self.home / "config"
        config.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        props = config / "server.properties"
        props.write_text(
            render_server_properties(self.spec, self._voters, self.data_dir, self._overrides)
        )
        (config / "log4j2.properties").write_text(render_log4j2_properties())
        return props

    async def format(self, cluster_id: str) -> None:
        """Format storage with ``cluster_id`` unless it is formatted already (then a no-op)."""
        await asyncio.to_thread(self._format_blocking, cluster_id)

    def _format_blocking(self, cluster_id: str) -> None:
        props = self.write_config()
        if self.formatted:
            return
        argv = [
            self._java,
            "-Xmx256m",
            "-cp",
            self._libs.classpath,
            f"-Dlog4j2.configurationFile={self.home / 'config' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(props),
        ]
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=_FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerSetupError(
                f"formatting Kafka node {self.node_id} storage took over {_FORMAT_TIMEOUT_S:.0f} s"
            ) from exc
        if out.returncode != 0:
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-30:])
            raise BrokerSetupError(
                f"formatting Kafka node {self.node_id} storage in {self.data_dir} failed "
                f"(exit {out.returncode}); check the config overrides:\n{tail}"
            )

    async def launch(self) -> None:
        """Start the JVM without waiting; use ``wait_ready`` next (or ``start`` for both)."""
        if self.running:
            return
        props = self.write_config()
        argv = [
            self._java,
            *_HEAP,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'config' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            self._libs.classpath,
            "kafka.Kafka",
            str(props),
        ]
        self._proc = await asyncio.to_thread(
            spawn, argv, cwd=self.home, output=self.home / "logs" / "stdout.log", owned=self._owned
        )

    async def wait_ready(self, timeout_s: float, expected_brokers: int = 1) -> None:
        """Wait until this node answers metadata listing ``expected_brokers`` brokers.

        Raises BrokerSetupError with the last lines of server.log if the process dies or
        ``timeout_s`` passes; the process is left as is (the caller stops it).
        """
        try:
            await wait_until_serving(
                "127.0.0.1",
                self.spec.port,
                deadline=time.monotonic() + timeout_s,
                expected_brokers=expected_brokers,
                process_alive=lambda: self.running,
            )
        except BrokerNotReady as exc:
            raise BrokerSetupError(
                f"Apache Kafka node {self.node_id} on {self.bootstrap} did not become ready: "
                f"{exc}. Last lines of {self.server_log}:\n{self.log_tail()}"
            ) from None

    async def start(self, timeout_s: float = 60.0, expected_brokers: int = 1) -> None:
        """``launch`` then ``wait_ready``; on failure the process is stopped before raising."""
        await self.launch()
        try:
            await self.wait_ready(timeout_s, expected_brokers)
        except BaseException:
            await self.stop(sig=signal.SIGKILL)
            raise

    async def stop(self, *, sig: signal.Signals = signal.SIGTERM, grace_s: float = 15.0) -> None:
        """Signal the node (SIGTERM: clean shutdown; SIGKILL: crash) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await asyncio.to_thread(stop_process, proc, sig=sig, timeout=grace_s)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of server.log, after its last few ERROR lines and causes (the
        interesting part is often above a long stack trace), plus JVM output if any."""
        tail = log_tail(self.server_log, lines)
        errors = _error_lines(self.server_log)
        if errors:
            tail = "errors:\n" + "\n".join(errors) + "\n--- last lines:\n" + tail
        stdout = log_tail(self.home / "logs" / "stdout.log", 10)
        if stdout and not stdout.startswith("("):
            tail += f"\n--- {self.home / 'logs' / 'stdout.log'}:\n{stdout}"
        return tail


def _error_lines(path: Path, keep: int = 5) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            hits = [
                line.rstrip()
                for line in fh
                if " ERROR " in line or " FATAL " in line or line.startswith("Caused by:")
            ]
    except OSError:
        return []
    return hits[-keep:]
