"""A consumer-group member as a real process, for kill/rebalance/scale tests.

Usage: python consumer_process.py BOOTSTRAP TOPIC GROUP ORDERING OUT_FILE [HANDLER_DELAY_S] [--trace]

Every handled event is appended to OUT_FILE as one JSON line (session, sequence, pid),
flushed before the handler returns, so the file is the oracle of what was handled.
With ``--trace`` every line also says its phase and wall-clock time, and a ``start``
line is written as the handler begins (before its delay), so a test can tell which
process *started* a record when (the stall test needs that); lines without a phase
are ``done`` lines.
SIGTERM asks the service to drain, commit and exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import TextIO

from agent_events.agent_runtime.events import SystemEvent
from agent_events.consumers import ConsumerService


async def main(out: TextIO) -> None:
    bootstrap, topic, group, ordering = sys.argv[1:5]
    delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    trace = "--trace" in sys.argv[7:]

    def write(event: SystemEvent, phase: str) -> None:
        line = {"session": event.session_id, "seq": event.metadata["seq"], "pid": os.getpid()}
        if trace:
            line |= {"phase": phase, "t": time.time(), "rebalances": service.rebalances}
        out.write(json.dumps(line) + "\n")
        out.flush()

    async def record(event: SystemEvent) -> None:
        if trace:
            write(event, "start")
        if delay:
            await asyncio.sleep(delay)
        write(event, "done")

    service = ConsumerService(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=group,
        ordering=ordering,
        dlq_topic=f"{topic}.dlq",
        commit_interval_s=0.2,
        max_poll_records=50,
        max_buffered_per_partition=50,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        handlers=[record],
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, service.request_stop)
    async with service:
        print("READY", flush=True)
        await service.run()


if __name__ == "__main__":
    with open(sys.argv[5], "a", buffering=1) as out_file:
        asyncio.run(main(out_file))
