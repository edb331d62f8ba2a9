"""Session summaries: the reducers against brute force, merges included, and the Avro record."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent_events.agent_runtime.events import EventType
from agent_events.consumers.windows import (
    SESSION_REDUCERS,
    SessionSummary,
    SessionSummaryCodec,
    SessionWindow,
    WindowAggregate,
)
from agent_events.consumers.windows.aggregations import Aggregations, key_function
from agent_events.consumers.windows.engine import WindowEngine
from agent_events.consumers.windows.state import WindowStore
from agent_events.schemas.avro import schema_fingerprint
from tests.unit.test_window_engine import BASE_MS, SETTINGS, Ev, session_clusters, streams

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "session_summary.avsc"


def run_sessions(definition: SessionWindow, stream: list[Ev]) -> dict[str, list[WindowAggregate]]:
    """Every session the engine (keyed by session_id) closes, as the processor emits it."""
    aggregations = Aggregations(SESSION_REDUCERS, need_merge=True)
    engine = WindowEngine(
        definition, aggregations, WindowStore(aggregations), key_of=key_function(("session_id",))
    )
    found: dict[str, list[WindowAggregate]] = {}
    for e in stream:
        engine.add(e.event())
        for r in engine.take_closed():
            session = json.loads(r.key)[0]
            found.setdefault(session, []).append(
                WindowAggregate(
                    "g",
                    r.key,
                    {"session_id": session},
                    str(definition),
                    r.start_ms,
                    r.end_ms,
                    r.final,
                    r.values,
                )
            )
    return found


@SETTINGS
@given(st.builds(SessionWindow, st.integers(1, 40), st.integers(0, 20)), streams(max_ms=800))
def test_summaries_count_types_errors_time_and_agents_as_brute_force_does(
    definition: SessionWindow, stream: list[Ev]
) -> None:
    accepted, wm = [], 0
    for e in stream:
        wm = max(wm, e.ts)
        if wm < e.ts + 1 + definition.grace_ms:
            accepted.append(e)
    closing = definition.gap_ms + definition.grace_ms
    clusters = session_clusters(accepted, definition.gap_ms, key=lambda e: e.session)
    expected = {w: evs for w, evs in clusters.items() if w[2] + closing <= wm}
    got = {
        (session, a.start_ms, a.end_ms): SessionSummary.from_aggregate(a)
        for session, emitted in run_sessions(definition, stream).items()
        for a in emitted
    }
    assert set(got) == set(expected)
    for window, evs in expected.items():
        s = got[window]
        types: dict[str, int] = {}
        for e in evs:
            types[e.etype.value] = types.get(e.etype.value, 0) + 1
        assert s.session_id == window[0]
        assert (s.start_ms, s.end_ms) == (min(e.ts for e in evs), max(e.ts for e in evs))
        assert s.duration_ms == s.end_ms - s.start_ms
        assert s.event_count == len(evs)
        assert s.events_by_type == types
        assert s.error_count == sum(1 for e in evs if e.etype is EventType.ERROR_OCCURRED)
        assert s.execution_time_ms_total == sum(e.duration or 0 for e in evs)
        assert s.agents == sorted({e.agent for e in evs})


def test_the_codec_writes_the_schema_file_and_reads_its_own_records_back() -> None:
    done, failed = EventType.AGENT_COMPLETED, EventType.ERROR_OCCURRED
    stream = [
        Ev(BASE_MS, "planner", done, "s-1", 5, 0),
        Ev(BASE_MS + 3, "coder", done, "s-1", 7, 0),
        Ev(BASE_MS + 4, "coder", failed, "s-1", None, 0),
        Ev(BASE_MS + 1_000, "x", done, "s-2", None, 0),  # moves the watermark past s-1
    ]
    ((aggregate,),) = run_sessions(SessionWindow(10), stream).values()
    codec = SessionSummaryCodec()
    data = codec.encode(aggregate)
    assert data[2:10] == schema_fingerprint(json.loads(SCHEMA.read_text()))
    summary = codec.decode(data)
    assert summary == SessionSummary.from_aggregate(aggregate)
    assert summary.session_id == "s-1"
    assert summary.agents == ["coder", "planner"]
    assert summary.events_by_type == {"agent_completed": 2, "error_occurred": 1}
    assert (summary.start_ms, summary.end_ms, summary.duration_ms) == (BASE_MS, BASE_MS + 4, 4)
    assert (summary.execution_time_ms_total, summary.error_count) == (12, 1)
