"""Windows against a brute-force oracle on generated streams with out-of-order and late events.

The oracle recomputes every window from scratch with the rules in
``consumers.windows.engine``'s docstring (watermark = max timestamp so far, an event
joins a window iff the watermark is below ``end + grace``, a window closes when the
watermark reaches ``end + grace``), so any incremental shortcut the engine takes
must agree with it on every stream hypothesis finds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.consumers.windows.aggregations import (
    DEFAULT_KEY_FIELDS,
    Aggregations,
    Reducer,
    WindowValues,
    key_function,
)
from agent_events.consumers.windows.definitions import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowDefinition,
)
from agent_events.consumers.windows.engine import WindowEngine
from agent_events.consumers.windows.state import WindowStore

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_MS = 1_700_000_000_000

TOKENS = Reducer[int](
    "tokens",
    initial=lambda: 0,
    add=lambda total, event: total + int(event.metadata.get("tokens", 0)),  # type: ignore[arg-type]
    merge=lambda a, b: a + b,
)


@dataclass(frozen=True)
class Ev:
    ts: int
    agent: str
    etype: EventType
    session: str
    duration: int | None
    tokens: int

    def event(self) -> SystemEvent:
        return SystemEvent(
            event_type=self.etype,
            agent_id=self.agent,
            session_id=self.session,
            timestamp=EPOCH + timedelta(milliseconds=self.ts),
            execution_time_ms=self.duration,
            metadata={"tokens": self.tokens},
        )

    @property
    def key(self) -> str:
        return f'["{self.etype.value}","{self.agent}"]'


def streams(max_ms: int = 400, *, keys: int = 4) -> st.SearchStrategy[list[Ev]]:
    """Mostly increasing timestamps with jitter, so late and out-of-order events are common."""
    step = st.tuples(
        st.integers(0, 10),  # advance of the clock
        st.integers(-40, 0),  # lateness of this event
        st.sampled_from(["a1", "a2"][: max(1, keys // 2)]),
        st.sampled_from([EventType.AGENT_COMPLETED, EventType.ERROR_OCCURRED][: min(2, keys)]),
        st.sampled_from(["s1", "s2", "s3"]),
        st.one_of(st.none(), st.integers(0, 1000)),
        st.integers(0, 5),
    )

    def build(steps: list[tuple[int, int, str, EventType, str, int | None, int]]) -> list[Ev]:
        clock, out = BASE_MS, []
        for advance, late, agent, etype, session, duration, tokens in steps:
            clock += advance
            out.append(Ev(max(BASE_MS, clock + late), agent, etype, session, duration, tokens))
        return out

    return st.lists(step, max_size=max_ms // 4).map(build)


def definitions() -> st.SearchStrategy[WindowDefinition]:
    grace = st.integers(0, 20)
    return st.one_of(
        st.builds(TumblingWindow, st.integers(1, 40), grace),
        st.integers(2, 40).flatmap(
            lambda size: st.builds(HoppingWindow, st.just(size), st.integers(1, size), grace)
        ),
        st.builds(SlidingWindow, st.integers(1, 40), grace),
    )


def all_definitions() -> st.SearchStrategy[WindowDefinition]:
    """Every kind, session windows included (they take no alert threshold)."""
    return st.one_of(
        definitions(), st.builds(SessionWindow, st.integers(1, 40), st.integers(0, 20))
    )


def session_clusters(
    accepted: list[Ev], gap: int, key: Callable[[Ev], str] = lambda e: e.key
) -> dict[Window, list[Ev]]:
    """The sessions of ``accepted``: per key, events chained by gaps of at most ``gap``."""
    sessions: dict[Window, list[Ev]] = {}
    by_key: dict[str, list[Ev]] = defaultdict(list)
    for e in accepted:
        by_key[key(e)].append(e)
    for key, evs in by_key.items():
        evs.sort(key=lambda e: e.ts)
        run = [evs[0]]
        for e in evs[1:]:
            if e.ts - run[-1].ts > gap:
                sessions[(key, run[0].ts, run[-1].ts + 1)] = run
                run = []
            run.append(e)
        sessions[(key, run[0].ts, run[-1].ts + 1)] = run
    return sessions


def oracle_values(events: list[Ev]) -> WindowValues:
    durations = [e.duration for e in events if e.duration is not None]
    errors = sum(e.etype is EventType.ERROR_OCCURRED for e in events)
    return WindowValues(
        count=len(events),
        execution_time_count=len(durations),
        execution_time_ms_sum=sum(durations),
        execution_time_ms_min=min(durations, default=None),
        execution_time_ms_max=max(durations, default=None),
        execution_time_ms_mean=sum(durations) / len(durations) if durations else None,
        error_count=errors,
        error_rate=errors / len(events),
        distinct_sessions=len({e.session for e in events}),
        reducers={"tokens": sum(e.tokens for e in events)},
    )


Window = tuple[str, int, int]


def oracle(
    definition: WindowDefinition, stream: list[Ev], threshold: int | None = None
) -> tuple[list[tuple[int, Window, WindowValues]], list[int], list[tuple[int, Window]]]:
    """(closed windows with the index of the event that closed them, late event indexes, alerts)."""
    grace = definition.grace_ms
    watermarks, wm = [], None
    for e in stream:
        wm = e.ts if wm is None else max(wm, e.ts)
        watermarks.append(wm)
    members: dict[Window, list[Ev]] = defaultdict(list)
    late: list[int] = []
    alerts: list[tuple[int, Window]] = []
    last_alert_end: dict[str, int] = {}
    sliding = isinstance(definition, SlidingWindow)
    session = isinstance(definition, SessionWindow)
    accepted: list[tuple[int, Ev]] = []
    close_after = definition.gap_ms + grace if isinstance(definition, SessionWindow) else grace

    def trigger(i: int, window: Window, count: int) -> None:
        """Fire at >= threshold unless the window overlaps the key's previous alert window."""
        key, start, end = window
        if threshold is None or count < threshold:
            return
        if key in last_alert_end and start < last_alert_end[key]:
            return
        alerts.append((i, window))
        last_alert_end[key] = end

    for i, e in enumerate(stream):
        if session:
            if watermarks[i] < e.ts + 1 + grace:
                accepted.append((i, e))
            else:
                late.append(i)
            continue
        if sliding:
            size = definition.size_ms
            if not watermarks[i] < e.ts + 1 + grace:
                late.append(i)
                continue
            accepted.append((i, e))
            mine = [a for _, a in accepted if a.key == e.key]
            for u in sorted({a.ts for a in mine if e.ts <= a.ts <= e.ts + size - 1}):
                count = sum(1 for a in mine if u - size < a.ts <= u)
                trigger(i, (e.key, u - size + 1, u + 1), count)
            continue
        joined = False
        for start, end in definition.windows_for(e.ts):
            if watermarks[i] < end + grace:
                members[(e.key, start, end)].append(e)
                joined = True
                trigger(i, (e.key, start, end), len(members[(e.key, start, end)]))
        if not joined:
            late.append(i)
    if sliding:
        size = definition.size_ms
        for _, e in accepted:
            window = (e.key, e.ts - size + 1, e.ts + 1)
            members[window] = [
                a for _, a in accepted if a.key == e.key and e.ts - size < a.ts <= e.ts
            ]
    if isinstance(definition, SessionWindow):
        members.update(session_clusters([a for _, a in accepted], definition.gap_ms))
    closed: list[tuple[int, Window, WindowValues]] = []
    for window, evs in members.items():
        close_at = next((i for i, w in enumerate(watermarks) if w >= window[2] + close_after), None)
        if close_at is not None:
            closed.append((close_at, window, oracle_values(evs)))
    closed.sort(key=lambda c: (c[0], c[1][2], c[1][0], c[1][1]))
    return closed, late, alerts


def engine_for(
    definition: WindowDefinition, store: WindowStore | None = None, **kw: Any
) -> WindowEngine:
    aggregations = Aggregations(
        [TOKENS], need_merge=isinstance(definition, SlidingWindow | SessionWindow)
    )
    return WindowEngine(
        definition,
        aggregations,
        store if store is not None else WindowStore(aggregations),
        key_of=key_function(DEFAULT_KEY_FIELDS),
        **kw,
    )


def run(
    engine: WindowEngine, stream: list[Ev], start: int = 0
) -> tuple[list[tuple[int, Window, WindowValues]], list[int], list[tuple[int, Window]]]:
    closed, late, alerts = [], [], []
    for i, e in enumerate(stream[start:], start):
        if not engine.add(e.event()):
            late.append(i)
        for result in engine.take_closed():
            closed.append((i, (result.key, result.start_ms, result.end_ms), result.values))
        for alert in engine.take_alerts():
            alerts.append((i, (alert.key, alert.start_ms, alert.end_ms)))
    return closed, late, alerts


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(definitions(), streams(), st.one_of(st.none(), st.integers(1, 6)))
def test_every_window_kind_matches_the_brute_force_oracle(
    definition: WindowDefinition, stream: list[Ev], threshold: int | None
) -> None:
    assert run(engine_for(definition, threshold=threshold), stream) == oracle(
        definition, stream, threshold
    )


@settings(SETTINGS, max_examples=600)
@given(
    st.builds(SessionWindow, st.integers(1, 40), st.integers(0, 20)),
    streams(max_ms=800, keys=2),
)
def test_session_windows_match_the_brute_force_oracle(
    definition: SessionWindow, stream: list[Ev]
) -> None:
    """Sessions grow, merge when an event bridges two, and close on gap + grace."""
    assert run(engine_for(definition), stream) == oracle(definition, stream)


def test_an_event_bridging_two_sessions_merges_them_into_one() -> None:
    key = '["agent_completed","a1"]'
    events = [Ev(BASE_MS + ts, "a1", EventType.AGENT_COMPLETED, "s1", 10, 1) for ts in (0, 20, 10)]
    engine = engine_for(SessionWindow(gap_ms=10, grace_ms=15))
    for e in events:
        assert engine.add(e.event())
    assert set(engine.store.entries) == {(key, BASE_MS, BASE_MS + 21)}
    engine.advance(BASE_MS + 45)
    assert engine.take_closed() == []
    engine.advance(BASE_MS + 46)
    (result,) = engine.take_closed()
    assert (result.start_ms, result.end_ms, result.values.count) == (BASE_MS, BASE_MS + 21, 3)
    assert result.values.execution_time_ms_sum == 30


@settings(SETTINGS, max_examples=600)
@given(all_definitions(), streams(keys=1), st.integers(1, 4), st.data())
def test_a_store_restored_from_its_changelog_continues_exactly_like_an_uninterrupted_run(
    definition: WindowDefinition, stream: list[Ev], alert_at: int, data: st.DataObject
) -> None:
    """Windows, late events and alerts after the restart are those of a run without one."""
    threshold = None if isinstance(definition, SessionWindow) else alert_at
    commits = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    crash_at = data.draw(st.sampled_from([0, *commits]))
    uninterrupted = run(engine_for(definition, threshold=threshold), stream)

    engine = engine_for(definition, threshold=threshold)
    changelog: list[tuple[bytes, bytes | None]] = []
    for i, e in enumerate(stream[:crash_at]):
        engine.add(e.event())
        if i + 1 in commits:
            changelog += engine.store.changelog_records(next_offset=i + 1)
    if crash_at:
        changelog += engine.store.changelog_records(next_offset=crash_at)

    restored = WindowStore(engine.aggregations)
    for key, value in changelog:
        restored.apply(key, value)
    assert restored.next_offset == (crash_at or None)
    assert restored.entries.keys() == engine.store.entries.keys()
    resumed = run(engine_for(definition, restored, threshold=threshold), stream, start=crash_at)
    closed, late, alerts = uninterrupted
    assert resumed == (
        [row for row in closed if row[0] >= crash_at],
        [i for i in late if i >= crash_at],
        [row for row in alerts if row[0] >= crash_at],
    )


@SETTINGS
@given(all_definitions(), streams())
def test_state_holds_exactly_the_windows_that_can_still_change(
    definition: WindowDefinition, stream: list[Ev]
) -> None:
    """Nothing is purged too early (a later event or alert needs it) or kept too long."""
    engine = engine_for(definition)
    seen: set[Window] = set()
    grace = definition.grace_ms
    taken: list[Ev] = []
    for e in stream:
        accepted = engine.add(e.event())
        wm = engine.watermark
        assert wm is not None
        if isinstance(definition, SessionWindow):
            taken += [e] if accepted else []
            sessions = session_clusters(taken, definition.gap_ms) if taken else {}
            expected = {w for w in sessions if w[2] + definition.gap_ms + grace > wm}
        elif isinstance(definition, SlidingWindow):
            if accepted:
                seen.add((e.key, e.ts, e.ts + 1))
            # a bucket is needed while a window covering it may still open or close
            expected = {w for w in seen if w[1] + definition.size_ms + grace >= wm}
        else:
            seen |= {(e.key, s, end) for s, end in definition.windows_for(e.ts) if end + grace > wm}
            expected = {w for w in seen if w[2] + grace > wm}
        assert set(engine.store.entries) == expected


@SETTINGS
@given(all_definitions(), streams())
def test_emit_on_update_reports_the_current_value_of_every_updated_open_window(
    definition: WindowDefinition, stream: list[Ev]
) -> None:
    engine = engine_for(definition, emit_on_update=True)
    latest: dict[Window, WindowValues] = {}
    finals: dict[Window, WindowValues] = {}
    for e in stream:
        engine.add(e.event())
        for result in engine.take_closed():
            finals[(result.key, result.start_ms, result.end_ms)] = result.values
        for result in engine.take_updates():
            assert not result.final
            latest[(result.key, result.start_ms, result.end_ms)] = result.values
    # every update is a prefix of the window's final value: counts never exceed it
    for window, values in latest.items():
        if window in finals:
            assert values.count <= finals[window].count
    closed, _, _ = oracle(definition, stream)
    assert {w for _, w, _ in closed} <= set(latest) | set(finals)


@settings(SETTINGS, max_examples=600)
@given(definitions(), streams(keys=1), st.integers(1, 4))
def test_alerts_fire_once_per_burst_of_one_busy_key_as_the_oracle_says(
    definition: WindowDefinition, stream: list[Ev], threshold: int
) -> None:
    """One key and low thresholds: overlapping windows and alert purges are exercised hard."""
    _, _, alerts = run(engine_for(definition, threshold=threshold), stream)
    assert alerts == oracle(definition, stream, threshold)[2]
