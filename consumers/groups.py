"""Consumer groups as ``kafka-consumer-groups`` shows them: list, describe with lag, reset offsets.

A reset is planned first (:func:`plan_offset_reset`, the dry run) and executed only on request
(:func:`execute_offset_reset`). Both refuse while the group has members: a member would
overwrite the new offsets with its own next commit, and Kafka refuses the commit anyway.

Executing a reset, in this order:

1. describe the group again and refuse if it has members now;
2. commit the planned offsets as the group, without joining it (a group-less commit with
   generation -1, which the coordinator accepts only for an empty group);
3. the group's next member starts from the new offsets.

Listing committed offsets needs the broker's ``OffsetFetch`` for a whole group; each function
here awaits ``check_feature("group_offsets", ...)`` once connected, so a broker without it
(Tansu, whose group APIs also answer without members' assignments) is refused rather than
described wrongly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from agent_events.agent_runtime.errors import ConfigError, KafkaError
from agent_events.consumers.replay.plan import FeatureCheck
from agent_events.consumers.replay.spec import epoch_ms
from agent_events.consumers.scan import log_end_offsets, standalone_consumer, topic_partitions
from agent_events.producers.config import KafkaConnectionConfig
from agent_events.transport import admin_client, backend_for, start_client

__all__ = [
    "GroupDescription",
    "GroupMember",
    "GroupSummary",
    "OffsetChange",
    "PartitionLag",
    "ResetStrategy",
    "describe_group",
    "execute_offset_reset",
    "list_groups",
    "plan_offset_reset",
]

_PROBE_PREFIX = "__agent_events_probe_"
_ACTIVE_STATES = {"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"}


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One line of ``groups list``."""

    group_id: str
    state: str
    members: int


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member of a group and the partitions assigned to it."""

    consumer_id: str
    client_id: str
    host: str
    partitions: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One row of ``groups describe``: the group's position in one partition."""

    group_id: str
    topic: str
    partition: int
    current_offset: int | None
    """The committed offset (the next record the group reads), ``None`` if never committed."""
    log_end_offset: int
    member: GroupMember | None

    @property
    def lag(self) -> int | None:
        """Records after the committed offset; ``None`` without a commit."""
        if self.current_offset is None:
            return None
        return max(0, self.log_end_offset - self.current_offset)

    def to_json(self) -> dict[str, object]:
        member = self.member
        return {
            "group": self.group_id,
            "topic": self.topic,
            "partition": self.partition,
            "current_offset": self.current_offset,
            "log_end_offset": self.log_end_offset,
            "lag": self.lag,
            "consumer_id": member.consumer_id if member else None,
            "host": member.host if member else None,
            "client_id": member.client_id if member else None,
        }


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group's state, members, and per-partition offsets and lag."""

    group_id: str
    state: str
    members: tuple[GroupMember, ...]
    partitions: tuple[PartitionLag, ...]

    @property
    def active(self) -> bool:
        """True while members are joined (offsets must not be reset then)."""
        return bool(self.members) or self.state in _ACTIVE_STATES

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group_id,
            "state": self.state,
            "members": [
                {
                    "consumer_id": m.consumer_id,
                    "client_id": m.client_id,
                    "host": m.host,
                    "assignment": [f"{tp.topic}:{tp.partition}" for tp in m.partitions],
                }
                for m in self.members
            ],
            "partitions": [p.to_json() for p in self.partitions],
            "total_lag": self.total_lag,
        }


ResetKind = Literal["earliest", "latest", "current", "offset", "datetime", "shift"]


@dataclass(frozen=True, slots=True)
class ResetStrategy:
    """Where a reset moves each partition, named as ``kafka-consumer-groups`` names it.

    ``offset`` (``--to-offset N``) and ``shift`` (``--shift-by N``, from the committed offset,
    or from the log start where none is committed) are clamped to the partition's log, as
    Kafka's tool does; ``datetime`` (``--to-datetime``) picks the first record at or after
    the moment, or the end if there is none.
    """

    kind: ResetKind
    offset: int | None = None
    shift: int | None = None
    moment: datetime | None = None

    def __post_init__(self) -> None:
        needs = {"offset": self.offset, "shift": self.shift, "datetime": self.moment}
        if self.kind in needs and needs[self.kind] is None:
            raise ConfigError(f"a reset to {self.kind} needs its value")
        if self.kind == "offset" and self.offset is not None and self.offset < 0:
            raise ConfigError(f"--to-offset takes an offset >= 0, got {self.offset}")
        moment = self.moment if self.kind == "datetime" else None
        if moment is not None and epoch_ms(moment) > epoch_ms(datetime.now(UTC)):
            raise ConfigError(
                f"--to-datetime {moment.isoformat()} is in the future; "
                "use --to-latest to skip everything written so far"
            )


@dataclass(frozen=True, slots=True)
class OffsetChange:
    """One row of a reset plan: ``GROUP TOPIC PARTITION NEW-OFFSET``, and where it was."""

    group_id: str
    topic: str
    partition: int
    current_offset: int | None
    new_offset: int

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group_id,
            "topic": self.topic,
            "partition": self.partition,
            "current_offset": self.current_offset,
            "new_offset": self.new_offset,
        }


def _admin(connection: KafkaConnectionConfig) -> AbstractAsyncContextManager[AIOKafkaAdminClient]:
    return admin_client(connection, what="admin client")


async def _describe_raw(admin: AIOKafkaAdminClient, group_id: str) -> dict[str, Any]:
    # One group per request: aiokafka mis-parses a DescribeGroups answer for several groups
    # when one of them is unknown.
    responses = await admin.describe_consumer_groups([group_id])
    groups: list[dict[str, Any]] = responses[0].to_object()["groups"]
    return groups[0]


def _members(raw: dict[str, Any]) -> tuple[GroupMember, ...]:
    members = []
    for m in raw.get("members", ()):
        partitions: tuple[TopicPartition, ...] = ()
        if m.get("member_assignment"):
            decoded = ConsumerProtocolMemberAssignment.decode(m["member_assignment"])
            partitions = tuple(sorted(decoded.partitions()))
        host = str(m.get("client_host") or "").lstrip("/")
        members.append(GroupMember(m["member_id"], m.get("client_id") or "", host, partitions))
    return tuple(members)


async def list_groups(
    connection: KafkaConnectionConfig, *, check_feature: FeatureCheck | None = None
) -> list[GroupSummary]:
    """Every consumer group the cluster knows, with its state and member count, by name.

    Groups named ``__agent_events_probe_*`` (left by the capability probes of older versions)
    are hidden.
    """
    async with _admin(connection) as admin:
        if check_feature is not None:
            await check_feature("group_offsets", operation="groups list")
        found = await admin.list_consumer_groups()
        summaries = []
        names = {str(g[0]) for g in found} - {""}
        for group_id in sorted(n for n in names if not n.startswith(_PROBE_PREFIX)):
            raw = await _describe_raw(admin, group_id)
            summaries.append(
                GroupSummary(group_id, str(raw.get("state", "")), len(raw.get("members", ())))
            )
    return summaries


async def describe_group(
    connection: KafkaConnectionConfig,
    group_id: str,
    *,
    check_feature: FeatureCheck | None = None,
) -> GroupDescription:
    """The group's state, members, and committed offset, end offset and lag per partition.

    Rows cover every partition the group has committed offsets for and every partition
    assigned to a member (without a commit: no current offset and no lag). Raises
    :class:`ConfigError` for a group the cluster does not know.
    """
    async with _admin(connection) as admin:
        if check_feature is not None:
            await check_feature("group_offsets", operation="groups describe")
        raw = await _describe_raw(admin, group_id)
        state = str(raw.get("state", ""))
        committed = await admin.list_consumer_group_offsets(group_id)
    members = _members(raw)
    if state == "Dead" or (not members and not committed):
        raise ConfigError(
            f"consumer group {group_id!r} does not exist; 'agent-events groups list' shows them"
        )
    owner = {tp: m for m in members for tp in m.partitions}
    tps = sorted(set(committed) | set(owner))
    async with standalone_consumer(connection) as consumer:
        ends = await log_end_offsets(consumer, tps) if tps else {}
    rows = tuple(
        PartitionLag(
            group_id,
            tp.topic,
            tp.partition,
            committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None,
            ends[tp],
            owner.get(tp),
        )
        for tp in tps
    )
    return GroupDescription(group_id, state, members, rows)


async def plan_offset_reset(
    connection: KafkaConnectionConfig,
    group_id: str,
    topics: Mapping[str, Collection[int] | None] | None,
    strategy: ResetStrategy,
    *,
    check_feature: FeatureCheck | None = None,
) -> list[OffsetChange]:
    """The new offset of every chosen partition (the dry run); changes nothing.

    ``topics`` maps topic -> partitions (``None``: all of them); ``topics=None`` means every
    topic the group has committed offsets for (``--all-topics``). Refuses while the group
    has members, and for unknown topics or partitions.
    """
    group = await _describe_if_known(connection, group_id, check_feature)
    _refuse_if_active(group_id, group)
    current = {
        TopicPartition(p.topic, p.partition): p.current_offset
        for p in (group.partitions if group else ())
    }
    if topics is None:
        topics = {tp.topic: None for tp in current}
        if not topics:
            raise ConfigError(f"group {group_id!r} has no committed offsets; name a --topic")
    changes: list[OffsetChange] = []
    async with standalone_consumer(connection) as consumer:
        tps: list[TopicPartition] = []
        for topic, partitions in topics.items():
            tps += await topic_partitions(consumer, topic, partitions)
        begin: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        end = await log_end_offsets(consumer, tps)
        by_time: dict[TopicPartition, int | None] = {}
        if strategy.kind == "datetime" and strategy.moment is not None:
            if check_feature is not None:
                await check_feature(
                    "offsets_for_times", operation="groups reset-offsets --to-datetime"
                )
            found = await consumer.offsets_for_times({tp: epoch_ms(strategy.moment) for tp in tps})
            by_time = {tp: None if f is None else f.offset for tp, f in found.items()}
        for tp in tps:
            now = current.get(tp)
            target = _target(strategy, now, begin[tp], end[tp], by_time.get(tp))
            new = min(max(target, begin[tp]), end[tp])
            changes.append(OffsetChange(group_id, tp.topic, tp.partition, now, new))
    return changes


def _target(strategy: ResetStrategy, now: int | None, first: int, last: int, at: int | None) -> int:
    kind = strategy.kind
    if kind == "earliest":
        return first
    if kind == "latest":
        return last
    if kind == "current":
        return first if now is None else now
    if kind == "offset":
        assert strategy.offset is not None
        return strategy.offset
    if kind == "shift":
        assert strategy.shift is not None
        return (first if now is None else now) + strategy.shift
    return last if at is None else at


async def _describe_if_known(
    connection: KafkaConnectionConfig, group_id: str, check_feature: FeatureCheck | None = None
) -> GroupDescription | None:
    """:func:`describe_group`, or ``None`` for a group with no members and no offsets yet."""
    try:
        return await describe_group(connection, group_id, check_feature=check_feature)
    except ConfigError:
        return None


def _refuse_if_active(group_id: str, group: GroupDescription | None) -> None:
    if group is not None and group.active:
        who = ", ".join(sorted({m.client_id or m.consumer_id for m in group.members})) or "?"
        raise ConfigError(
            f"consumer group {group_id!r} has {len(group.members)} active member(s) ({who}; "
            f"state {group.state}); stop them before resetting its offsets"
        )


async def execute_offset_reset(
    connection: KafkaConnectionConfig,
    group_id: str,
    changes: list[OffsetChange],
    *,
    check_feature: FeatureCheck | None = None,
) -> None:
    """Commit ``changes`` as ``group_id``'s offsets (the steps of the module docstring).

    Raises :class:`ConfigError` if the group has members (now, or by the time of the
    commit) and :class:`KafkaError` if the coordinator refuses the commit otherwise.
    """
    if not changes:
        return
    if any(c.group_id != group_id for c in changes):
        raise ConfigError("the plan was made for another group")
    _refuse_if_active(group_id, await _describe_if_known(connection, group_id, check_feature))
    offsets = {
        TopicPartition(c.topic, c.partition): OffsetAndMetadata(c.new_offset, "") for c in changes
    }
    consumer = backend_for(connection).consumer(
        connection, (), {"group_id": group_id, "enable_auto_commit": False}
    )
    await start_client(consumer, connection, what=f"offset reset of group {group_id}")
    try:
        consumer.assign(list(offsets))  # assign, never subscribe: the reset does not join
        await consumer.commit(offsets)
    except AIOKafkaError as exc:
        group = await _describe_if_known(connection, group_id)
        _refuse_if_active(group_id, group)
        raise KafkaError(f"the coordinator refused the new offsets of {group_id!r}: {exc}") from exc
    finally:
        await consumer.stop()
