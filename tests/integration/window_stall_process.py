"""``window_process.py`` that freezes itself once inside an open transaction.

Usage: python window_stall_process.py BOOTSTRAP TOPIC GROUP OUTPUT_TOPIC THROTTLE_S TRIGGER_FILE

Once TRIGGER_FILE exists, the next transaction that carries output waits until its
output records are on the broker (inside the still open transaction), prints
STALLED and stops its own process (SIGSTOP): the test decides whether it is killed
or thawed. A test hook only (it wraps the committer's send step).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import window_process

from agent_events.consumers.windows import commit

TRIGGER = Path(sys.argv[6])
_send_all = commit._send_all
_stalled = False


async def _send_then_stall(producer: Any, task: Any) -> list[asyncio.Future[Any]]:
    global _stalled
    futures = await _send_all(producer, task)
    if futures and not _stalled and TRIGGER.exists():  # noqa: ASYNC240 (a test hook: one stat)
        _stalled = True
        await asyncio.gather(*futures)  # the output is written, its transaction still open
        print("STALLED", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
    return futures


commit._send_all = _send_then_stall  # type: ignore[assignment]

if __name__ == "__main__":
    asyncio.run(window_process.main())
