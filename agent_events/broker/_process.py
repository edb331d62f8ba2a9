"""Child processes of local brokers: spawn in their own session, stop with a deadline.

Every broker process is started with ``start_new_session=True`` so that one signal to its
process group reaches the JVM and anything it forks, and so that a Ctrl-C in the parent's
terminal does not reach it half-way. Processes started for tests are *owned*: they are
registered here and SIGKILLed at interpreter exit, so none outlives the session. Detached
processes (the CLI's development broker) are not registered.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "free_port",
    "free_ports",
    "is_alive",
    "log_tail",
    "make_temp_dir",
    "port_accepts",
    "remove_temp_dir",
    "spawn",
    "stop_process",
    "stop_process_group",
]

_owned: set[subprocess.Popen[bytes]] = set()
_temp_dirs: set[Path] = set()
_owned_lock = threading.Lock()


def _kill_owned_at_exit() -> None:
    with _owned_lock:
        procs = list(_owned)
        dirs = list(_temp_dirs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def make_temp_dir(prefix: str) -> Path:
    """A fresh temporary folder, removed at interpreter exit unless ``remove_temp_dir`` ran."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    with _owned_lock:
        _temp_dirs.add(path)
    return path


def remove_temp_dir(path: Path) -> None:
    """Remove a folder from ``make_temp_dir`` now. Blocking: use ``asyncio.to_thread``."""
    shutil.rmtree(path, ignore_errors=True)
    with _owned_lock:
        _temp_dirs.discard(path)


atexit.register(_kill_owned_at_exit)


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    output: Path,
    env: Mapping[str, str] | None = None,
    owned: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``output``.

    Blocking (fork/exec): call it through ``asyncio.to_thread``. With ``owned`` the
    process is killed at interpreter exit if nobody stopped it before.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    if owned:
        with _owned_lock:
            _owned.add(proc)
    return proc


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_process(
    proc: subprocess.Popen[bytes], *, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0
) -> int:
    """Send ``sig`` to the process group, wait up to ``timeout``, then SIGKILL; return the code.

    Blocking: call it through ``asyncio.to_thread``. Always reaps the process.
    """
    if proc.poll() is None:
        _signal_group(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    # The JVM may have left forked helpers in the group; they die with it.
    _signal_group(proc.pid, signal.SIGKILL)
    with _owned_lock:
        _owned.discard(proc)
    return proc.returncode


def is_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_process_group(pid: int, *, timeout: float = 15.0) -> bool:
    """SIGTERM a process group we did not spawn (a detached broker), SIGKILL after ``timeout``.

    Returns True if it had to be killed. Blocking: call it through ``asyncio.to_thread``.
    """
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return False
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open while picking, so no repeats)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


async def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout_s``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip()
    except OSError:
        return f"({path} does not exist)"
