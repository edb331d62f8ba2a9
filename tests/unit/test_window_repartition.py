"""Re-keying through a repartition topic: output does not depend on how partitions interleave.

The whole two-stage pipeline runs here without a broker: one :class:`RekeyTask` per input
partition (its own watermark, its lateness decisions, its watermark reports) and one
:class:`AggregateTask` on the repartition partition, fed the re-keyed records of all
input partitions interleaved in an arbitrary order. The oracle judges each event by the
watermark of its own input partition, so every interleaving must give the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.consumers.windows import (
    HoppingWindow,
    SlidingWindow,
    TumblingWindow,
    WindowAggregateCodec,
    WindowDefinition,
    WindowedAggregationConfig,
)
from agent_events.consumers.windows.aggregations import Aggregations, key_function
from agent_events.consumers.windows.engine import WindowEngine
from agent_events.consumers.windows.rekey import RekeyTask
from agent_events.consumers.windows.state import SourceMark, WindowStore
from agent_events.consumers.windows.tasks import AggregateTask
from agent_events.consumers.windows.watermarks import effective_watermark
from agent_events.producers import partition_for_key
from agent_events.producers.headers import AGENT_ID_HEADER, EVENT_TYPE_HEADER, PRODUCER_ID_HEADER
from agent_events.schemas.codec import EventCodec, encode_event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE = 1_700_000_000_000
SOURCES = 3

Window = tuple[str, int, int, int]


@dataclass
class Record:
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes | None = None
    topic: str = "in"
    partition: int = 0
    timestamp: int = 0
    timestamp_type: int = 0  # CreateTime, as our producer writes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@st.composite
def upstream(draw: st.DrawFn) -> list[list[tuple[int, str, bool]]]:
    """Per input partition: (timestamp, agent, commit after it), mostly in order, some late."""
    partitions = []
    for _ in range(SOURCES):
        steps = draw(
            st.lists(
                st.tuples(
                    st.integers(0, 12), st.integers(-30, 0), st.sampled_from("ab"), st.booleans()
                ),
                max_size=25,
            )
        )
        clock, items = BASE, []
        for advance, jitter, agent, commit in steps:
            clock += advance
            items.append((max(BASE, clock + jitter), agent, commit))
        partitions.append(items)
    return partitions


def definitions() -> st.SearchStrategy[WindowDefinition]:
    grace = st.integers(0, 10)
    return st.one_of(
        st.builds(TumblingWindow, st.integers(1, 40), grace),
        st.integers(2, 40).flatmap(
            lambda n: st.builds(HoppingWindow, st.just(n), st.integers(1, n), grace)
        ),
        st.builds(SlidingWindow, st.integers(1, 40), grace),
    )


def our_headers(type_label: str, agent: str) -> list[tuple[str, bytes]]:
    """The headers KafkaEventProducer writes that re-keying reads."""
    return [
        (EVENT_TYPE_HEADER, type_label.encode()),
        (AGENT_ID_HEADER, agent.encode()),
        (PRODUCER_ID_HEADER, b"p1"),
    ]


def key(agent: str) -> str:
    return f'["agent_completed","{agent}"]'


def pipeline(
    definition: WindowDefinition, partitions: list[list[tuple[int, str, bool]]], rnd: Random
) -> tuple[set[Window], int]:
    config = WindowedAggregationConfig(group_id="g", window=definition, topics=["in"])
    key_of = key_function(config.key_fields)
    codec = EventCodec()
    clock = Clock()
    streams: list[list[Any]] = []
    late = 0
    for p, items in enumerate(partitions):
        task = RekeyTask(TopicPartition("in", p), 0, config, codec, key_of, targets=1, clock=clock)
        sent: list[Any] = []
        for offset, (ts, agent, commit) in enumerate(items):
            event = SystemEvent(
                event_type=EventType.AGENT_COMPLETED,
                agent_id=agent,
                timestamp=EPOCH + timedelta(milliseconds=ts),
            )
            value = encode_event(event)
            if rnd.random() < 0.5:  # as our producer writes it: re-keyed from its headers
                headers = our_headers("agent_completed", agent)
                task.process([Record(offset, value, headers, partition=p, timestamp=ts)])
            else:  # from another producer: decoded to find its key and time
                task.process([Record(offset, value, partition=p, timestamp=BASE - 99_999)])
            if commit:
                task.collect()
                sent += task.outgoing
                task.committed()
        clock.now += config.idle_source_after_s  # no more records: the partition goes idle
        task.collect()
        sent += task.outgoing
        task.committed()
        late += task.counters.late
        streams.append(sent)

    aggregations = Aggregations(need_merge=isinstance(definition, SlidingWindow))
    engine = WindowEngine(
        definition, aggregations, WindowStore(aggregations), key_of=key_of, auto_watermark=False
    )
    sources = frozenset(f"in:{p}" for p in range(SOURCES))
    aggregate = AggregateTask(
        TopicPartition(config.repartition_topic, 0),
        0,
        config,
        codec,
        key_of,
        engine,
        WindowAggregateCodec(),
        sources=sources,
    )
    records: list[Record] = []
    while any(streams):
        out = rnd.choice([s for s in streams if s]).pop(0)
        records.append(Record(len(records), out.value, list(out.headers), out.key))
    aggregate.process(records)
    aggregate.collect()
    decode = WindowAggregateCodec().decode
    results = [decode(o.value) for o in aggregate.outgoing if o.topic == config.output_topic]
    assert aggregate.counters.late == 0, "nothing forwarded is late downstream"
    return {(a.key, a.start_ms, a.end_ms, a.values.count) for a in results}, late


def oracle(
    definition: WindowDefinition, partitions: list[list[tuple[int, str, bool]]]
) -> tuple[set[Window], int]:
    grace, late = definition.grace_ms, 0
    members: dict[tuple[str, int, int], int] = {}
    accepted: list[tuple[int, str]] = []
    final = None
    for items in partitions:
        wm = None
        for ts, agent, _ in items:
            wm = ts if wm is None else max(wm, ts)
            if isinstance(definition, SlidingWindow):
                if ts + 1 + grace > wm:
                    accepted.append((ts, agent))
                else:
                    late += 1
                continue
            joined = [(s, e) for s, e in definition.windows_for(ts) if e + grace > wm]
            for s, e in joined:
                members[(key(agent), s, e)] = members.get((key(agent), s, e), 0) + 1
            late += not joined
        if wm is not None:
            final = wm if final is None else max(final, wm)
    if isinstance(definition, SlidingWindow):
        size = definition.size_ms
        for u, agent in accepted:
            members[(key(agent), u - size + 1, u + 1)] = sum(
                1 for t, a in accepted if a == agent and u - size < t <= u
            )
    if final is None:
        return set(), late
    return {(k, s, e, n) for (k, s, e), n in members.items() if e + grace <= final}, late


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions(), upstream(), st.randoms(use_true_random=False))
def test_windows_and_late_events_are_the_same_for_every_interleaving_of_input_partitions(
    definition: WindowDefinition, partitions: list[list[tuple[int, str, bool]]], rnd: Random
) -> None:
    assert pipeline(definition, partitions, rnd) == oracle(definition, partitions)


def test_watermark_waits_for_every_upstream_partition_then_skips_idle_ones() -> None:
    expected = frozenset({"a", "b"})
    marks = {"a": SourceMark(10, False)}
    assert effective_watermark(marks, expected) is None, "b has not reported"
    assert effective_watermark({**marks, "b": SourceMark(None, False)}, expected) is None
    assert effective_watermark({**marks, "b": SourceMark(4, False)}, expected) == 4
    assert effective_watermark({**marks, "b": SourceMark(4, True)}, expected) == 10
    both_idle = {"a": SourceMark(10, True), "b": SourceMark(None, True)}
    assert effective_watermark(both_idle, expected) == 10
    assert effective_watermark({n: SourceMark(None, True) for n in expected}, expected) is None


def test_a_record_our_producer_wrote_is_re_keyed_from_its_headers_without_decoding() -> None:
    """Its value is not even looked at: garbage goes on to the aggregating stage, which
    dead-letters it; the same garbage from another producer is dead-lettered at once."""
    config = WindowedAggregationConfig(group_id="g", window=TumblingWindow(60_000), topics=["in"])
    task = RekeyTask(
        TopicPartition("in", 0), 0, config, EventCodec(), key_function(config.key_fields), targets=4
    )
    ours = Record(0, b"garbage", our_headers("agent_completed", "a1"), timestamp=BASE)
    foreign = Record(1, b"garbage", [(EVENT_TYPE_HEADER, b"agent_completed")], timestamp=BASE)
    redrive = Record(
        2,
        b"garbage",
        [*our_headers("agent_completed", "a1"), ("__agent_events.redrive.count", b"1")],
        timestamp=BASE,
    )
    task.process([ours, foreign, redrive])
    assert task.counters.forwarded == 1
    assert task.counters.dead_lettered == 2, "decoded: not ours, and a re-drive"
    [sent] = [o for o in task.outgoing if o.topic == config.repartition_topic]
    assert sent.key == key("a1").encode()
    assert sent.value == b"garbage"
    assert sent.partition == partition_for_key(sent.key, 4)
