"""A window-processor member as a real process, for SIGKILL and rebalance tests.

Usage: [WINDOW_KIND=KIND] python window_process.py BOOTSTRAP TOPIC GROUP OUTPUT_TOPIC [THROTTLE_S]

KIND ``tumbling`` (default): tumbling:60s windows, grace 5s. KIND ``session``: session
summaries, session:2s, grace 1s (the ``sessions`` service's reducers and output).

Prints READY once started; SIGTERM asks it to commit and exit 0. THROTTLE_S slows
each fetch down, so a test can kill it while windows are open and transactions are in
flight (a test hook only: the processor itself never sleeps).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from agent_events.consumers.windows import (
    SESSION_REDUCERS,
    SessionSummaryCodec,
    WindowProcessor,
)

WINDOWS: dict[str, dict[str, Any]] = {
    "tumbling": {"window": "tumbling:60s", "grace": "5s"},
    "session": {
        "window": "session:2s",
        "grace": "1s",
        "reducers": SESSION_REDUCERS,
        "output_codec": SessionSummaryCodec(),
    },
}


async def main() -> None:
    bootstrap, topic, group, output = sys.argv[1:5]
    throttle = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    kind = os.environ.get("WINDOW_KIND", "tumbling")
    processor = WindowProcessor(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=group,
        output_topic=output,
        **WINDOWS[kind],
        processing_guarantee="exactly_once",
        commit_interval_s=0.2,
        idle_source_after_s=1.0,
        max_poll_records=50,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, processor.request_stop)
    async with processor:
        if throttle:
            consumer: Any = processor._consumer
            fetch = consumer.getmany

            async def slow_fetch(*args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(throttle)
                return await fetch(*args, **kwargs)

            consumer.getmany = slow_fetch
        print("READY", flush=True)
        await processor.run()


if __name__ == "__main__":
    asyncio.run(main())
