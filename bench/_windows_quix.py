"""Quix Streams' tumbling window on the benchmark stream (a child process of ``bench.windows``).

Usage: python -m bench._windows_quix BOOTSTRAP TOPIC EVENTS GUARANTEE

Decodes each value with the project's Avro codec, takes event time from the event,
aggregates count / sum / min / max / mean of ``execution_time_ms`` per message key (the
stream is keyed by ``event_type|agent_id``) in 60 s tumbling windows with 5 s grace, and
writes closed windows to an output topic. Prints ``{"events_per_s": ...}`` measured from
the first event aggregated to the last.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Max, Mean, Min, Sum
from quixstreams.models.serializers import Deserializer

from agent_events.consumers.windows.aggregations import event_time_ms
from agent_events.schemas.codec import decode_event


class AvroEvent(Deserializer):  # type: ignore[misc]
    """SystemEvent bytes -> the fields the aggregation reads."""

    def __call__(self, value: bytes, ctx: Any) -> dict[str, Any]:
        event = decode_event(value)
        return {"ts": event_time_ms(event), "execution_time_ms": event.execution_time_ms or 0}


def main() -> None:
    launched = time.perf_counter()
    bootstrap, topic, events, guarantee = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    group = f"bench-windows-quix-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=bootstrap,
            consumer_group=group,
            auto_offset_reset="earliest",
            commit_interval=0.5,
            state_dir=state_dir,
            processing_guarantee=guarantee,  # type: ignore[arg-type]
            loglevel="ERROR",
        )
        source = app.topic(
            topic,
            value_deserializer=AvroEvent(),
            key_deserializer="string",
            timestamp_extractor=lambda value, headers, ts, ts_type: value["ts"],
        )
        sink = app.topic(f"{group}.out", value_serializer="json")
        progress = {"done": 0, "started": 0.0, "seen": 0, "elapsed": 0.0}

        def count(value: dict[str, Any]) -> None:
            progress["done"] += 1
            if not progress["started"]:
                progress["started"], progress["seen"] = time.perf_counter(), 1
            if progress["done"] >= events:
                progress["elapsed"] = time.perf_counter() - progress["started"]
                app.stop()

        sdf = app.dataframe(source).update(count)
        sdf = sdf.tumbling_window(duration_ms=60_000, grace_ms=5_000).agg(
            count=Count(),
            sum=Sum("execution_time_ms"),
            min=Min("execution_time_ms"),
            max=Max("execution_time_ms"),
            mean=Mean("execution_time_ms"),
        )
        sdf.final().to_topic(sink)
        app.run()
    if events > progress["seen"] and progress["elapsed"] > 0:
        rate = (events - progress["seen"]) / progress["elapsed"]
    else:  # one poll held every event (a --quick run): rate over the whole run
        rate = events / (time.perf_counter() - launched)
    print(json.dumps({"events_per_s": rate}), flush=True)


if __name__ == "__main__":
    main()
