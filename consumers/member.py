"""The consumer-group member both runtimes are: join, run loop, rebalance, stop, offset commit.

:class:`~consumers.runtime.ConsumerService` (handlers) and
:class:`~consumers.windows.WindowProcessor` (windows) differ only in what they do
with a fetched batch and in what a commit writes. Everything else lives here once:

* **joining**: subscribe with the one :class:`RebalanceListener`, start the client
  with the shared start backoff (:meth:`GroupMember._join`);
* **the run loop**, until :meth:`GroupMember.request_stop`:

  1. raise any failure a partition reported (a record is never skipped silently);
  2. fetch a batch (at most 100 ms);
  3. hand each partition's records to the runtime (``_take``);
  4. when a commit is due (``commit_interval_s``, or the runtime's own reason),
     commit (``_commit_due_work``);

  then ``_finish`` drains and commits one last time;
* **rebalance**: a revocation counts a rebalance and lets the runtime finish and
  commit the revoked partitions' work before they are given up (``_revoke``); an
  assignment prepares the new ones (``_assign``);
* **stop**: request the stop, wait for :meth:`run` to return, then ``_close``;
* **offset commit** (:func:`commit_offsets`): one policy for a commit that fails;
* **fencing** (optional, ``stall_limit_s``): a member whose event loop was frozen
  longer than the group could wait for its heartbeat (SIGSTOP, a swapped-out host, a
  handler blocking the loop), or whose commit was rejected as from a stale
  generation, must presume it was expelled: the group may have handed its partitions
  to another member meanwhile. It stops *starting* records (:meth:`GroupMember.may_start`)
  until membership is confirmed again: by a heartbeat of its generation that the
  coordinator accepts (``_unfence``) or by a rebalance (``_assigned``).

Per record, both runtimes take records through :func:`consumers.intake.admit`
(re-drive address, decode -> DLQ).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.protocol.group import HeartbeatRequest
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from agent_events.agent_runtime.errors import ConfigError, KafkaError
from agent_events.agent_runtime.resource import AsyncResource
from agent_events.transport import KafkaConnectionConfig, start_client

__all__ = ["GroupMember", "RebalanceListener", "StallWatch", "commit_offsets", "still_a_member"]

logger = logging.getLogger(__name__)

PartitionsCallback = Callable[[set[TopicPartition]], Awaitable[None]]
LostCallback = Callable[[str], None]

_FETCH_TIMEOUT_MS = 100


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands aiokafka's rebalance callbacks to the member that owns the partitions.

    aiokafka awaits both callbacks inside its rebalance, so work committed in
    ``on_revoked`` is committed before another member can fetch those partitions.
    """

    def __init__(self, on_revoked: PartitionsCallback, on_assigned: PartitionsCallback) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned(set(assigned))


async def commit_offsets(
    consumer: AIOKafkaConsumer,
    offsets: Mapping[TopicPartition, int],
    *,
    group_id: str,
    on_lost: LostCallback | None = None,
    deadline_s: float | None = None,
) -> bool:
    """Commit ``offsets`` (next offset to read, per partition) for the group.

    ``deadline_s`` bounds the wait: aiokafka waits for an unreachable coordinator
    forever, which would keep a stopping member from ever leaving.

    Returns ``False`` when the commit failed: the records since the last commit
    will be delivered again (at least once), which is logged, never raised, so a
    lost generation or a broker hiccup does not stop the member. A commit the group
    rejected as not from its current member and generation (``CommitFailedError``:
    unknown member, illegal generation, rebalance in progress) or for partitions no
    longer assigned also calls ``on_lost``: the partitions may be someone else's now.
    """
    if not offsets:
        return True
    try:
        async with asyncio.timeout(deadline_s):
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    except TimeoutError:
        logger.error(
            "group %s: commit did not finish within %.0fs (is the broker reachable?); "
            "records since the last commit will be redelivered",
            group_id,
            deadline_s,
        )
        return False
    except (CommitFailedError, IllegalStateError) as exc:
        logger.warning(
            "group %s: commit of %d partitions failed (%s); they will be redelivered",
            group_id,
            len(offsets),
            exc,
        )
        if on_lost is not None:
            on_lost(f"commit rejected: {exc}")
        return False
    except AIOKafkaError as exc:
        logger.error(
            "group %s: commit failed: %s; records since the last commit will be redelivered",
            group_id,
            exc,
        )
        return False
    return True


async def still_a_member(consumer: AIOKafkaConsumer) -> bool:
    """Whether the group coordinator still knows this member in its current generation.

    Why aiokafka internals: aiokafka keeps the generation, the member id and the time
    of the last successful heartbeat private, and a commit cannot serve as the probe
    when nothing is committable. So this sends one heartbeat with aiokafka's own
    generation and member id, which the coordinator answers authoritatively (the same
    check it makes for an offset commit). Anything but "no error" (unknown member,
    illegal generation, rebalance in progress, no answer) is not a confirmation;
    aiokafka's own heartbeat then sees the same answer and rejoins.
    """
    probe = getattr(consumer, "still_a_member", None)
    if probe is not None:  # the librdkafka adapter probes with a commit (its docstring)
        confirmed: bool = await probe()
        return confirmed
    coordinator: Any = consumer._coordinator  # noqa: SLF001
    if coordinator is None or not coordinator.member_id or coordinator.generation < 0:
        return False
    request = HeartbeatRequest(coordinator.group_id, coordinator.generation, coordinator.member_id)
    try:
        response = await coordinator._send_req(request)  # noqa: SLF001
    except AIOKafkaError:
        return False
    return bool(response.error_code == 0)


class StallWatch:
    """Notices that this event loop was frozen for longer than ``limit_s``.

    A ticker task stamps a monotonic time every ``tick_s``; :meth:`check` (called by
    the ticker and before a record starts, whichever runs first after a thaw) sees
    the gap and calls ``on_stall`` once per stall. aiokafka's heartbeat runs on the
    same loop, so a loop frozen for ``session_timeout - heartbeat_interval`` may have
    missed the coordinator's deadline.
    """

    def __init__(self, limit_s: float, on_stall: LostCallback) -> None:
        self.limit_s = limit_s
        self._tick_s = min(0.5, limit_s / 4)
        self._on_stall = on_stall
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._last = time.monotonic()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="stall-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def check(self) -> None:
        now = time.monotonic()
        gap, self._last = now - self._last, now
        if gap > self.limit_s:
            self._on_stall(f"event loop frozen for {gap:.1f}s (limit {self.limit_s:.1f}s)")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            self.check()


class GroupMember(AsyncResource, ABC):
    """The lifecycle and run loop of the module docstring; subclasses fill in the steps."""

    def __init__(
        self, *, group_id: str, commit_interval_s: float, stall_limit_s: float | None = None
    ) -> None:
        self._group_id = group_id
        self._commit_interval_s = commit_interval_s
        self._consumer: AIOKafkaConsumer | None = None
        self._stop_requested = asyncio.Event()
        self._run_finished = asyncio.Event()
        self._run_finished.set()
        self._last_commit = 0.0
        self._stall = StallWatch(stall_limit_s, self._fence) if stall_limit_s else None
        self._fencing = self._stall is not None
        self._incremental = False
        self.fenced = False
        """Whether this member presumes it lost its partitions and starts no record."""
        self.fences = 0
        """Times this member fenced itself since start."""
        self.rebalances = 0
        """Revocations seen since start (each rebalance revokes, possibly nothing)."""
        self.rebalancing = False
        """Between a revocation and the next assignment: the partitions are in flux."""

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Fetch, process and commit until :meth:`request_stop`; then finish and commit."""
        consumer = self._require_started()
        self._run_finished.clear()
        if self._stall is not None:
            self._stall.start()
        try:
            while not self._stop_requested.is_set():
                self._raise_failure()
                batch = await consumer.getmany(
                    timeout_ms=_FETCH_TIMEOUT_MS, max_records=self._max_records()
                )
                await self._take(consumer, batch)
                if self._commit_due():
                    await self._commit_due_work()
                    await self._confirm_membership(consumer)
            self._raise_failure()
            await self._finish()
        finally:
            if self._stall is not None:
                await self._stall.stop()
            self._run_finished.set()

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish what it fetched, commit and return.

        Safe to call from a signal handler on the loop.
        """
        self._stop_requested.set()

    async def stop(self) -> None:
        """Stop running (finishing and committing), leave the group, close every client."""
        self.request_stop()
        await self._run_finished.wait()
        await self._close()

    def may_start(self) -> bool:
        """Whether a record may be started now: asked before each one is.

        Checks for a stall first, so a record queued behind a handler that was
        running when the loop froze is not started before the fence is up.
        """
        if self._stall is not None:
            self._stall.check()
        return not self.fenced

    # ------------------------------------------------------------------ fencing

    def _fence(self, reason: str) -> None:
        if self.fenced or not self._fencing:
            return
        self.fenced = True
        self.fences += 1
        logger.warning(
            "group %s: %s; presuming this member lost its partitions: no record is started "
            "until the group confirms membership or rebalances",
            self._group_id,
            reason,
        )
        self._fenced_now()

    async def _confirm_membership(self, consumer: AIOKafkaConsumer) -> None:
        if not self.fenced or not await still_a_member(consumer):
            return
        if not self.fenced:  # a rebalance lifted the fence while the heartbeat was out
            return
        logger.warning("group %s: membership confirmed; fetching on", self._group_id)
        self.fenced = False
        await self._unfence(consumer)

    # ------------------------------------------------------------------ for subclasses

    async def _join(
        self,
        consumer: AIOKafkaConsumer,
        topics: list[str],
        *,
        what: str,
        connection: KafkaConnectionConfig,
    ) -> None:
        """Subscribe ``consumer`` with the rebalance listener and start it (with backoff).

        The consumer is this member's from here on: the listener may run before
        ``start()`` returns. On failure it is stopped and forgotten.

        A consumer whose heartbeats do not run on the event loop (librdkafka's) needs no
        stall watch: a frozen loop does not cost its membership. A consumer whose
        rebalances are incremental keeps some partitions across one, with their
        positions, so a rebalance lifts a fence there as a confirmed heartbeat does
        (``_assigned``: the dropped records are fetched again).
        Raises :class:`ConfigError` for an aiokafka consumer on a connection that names
        another client library (windows run on aiokafka only).
        """
        if connection.client != "aiokafka" and isinstance(consumer, AIOKafkaConsumer):
            raise ConfigError(
                f"{what} runs on aiokafka only; client={connection.client!r} works for "
                "KafkaEventProducer and ConsumerService: set client='aiokafka' here"
            )
        if getattr(consumer, "heartbeats_off_loop", False):
            self._stall = None
        self._incremental = bool(getattr(consumer, "incremental_rebalance", False))
        consumer.subscribe(topics, listener=RebalanceListener(self._revoked, self._assigned))
        self._consumer = consumer
        try:
            await start_client(consumer, connection, what=what)
        except BaseException:
            self._consumer = None
            await consumer.stop()
            raise

    def _require_started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise KafkaError(
                f"{type(self).__name__} is not started; use 'async with' or await start()"
            )
        return self._consumer

    def _max_records(self) -> int | None:
        """Most records one fetch returns (``None``: the consumer's ``max_poll_records``)."""
        return None

    def _raise_failure(self) -> None:
        """Raise what a partition's processing reported, if anything (step 1)."""

    def _commit_due(self) -> bool:
        return time.monotonic() - self._last_commit >= self._commit_interval_s

    def _committing(self) -> None:
        """Called by subclasses as a commit begins: restarts the commit interval."""
        self._last_commit = time.monotonic()

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalances += 1
        self.rebalancing = True
        await self._revoke(revoked)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        self.rebalancing = False
        if self.fenced:  # a new generation confirms the membership
            logger.warning("group %s: rejoined the group; fetching on", self._group_id)
            self.fenced = False
            if self._incremental and self._consumer is not None:
                # partitions kept across the rebalance keep their positions: fetch what
                # the fence dropped again, as after a confirmed heartbeat
                await self._unfence(self._consumer)
        await self._assign(assigned)

    def _fenced_now(self) -> None:
        """Fencing began: stop feeding every partition (only with ``stall_limit_s``)."""

    async def _unfence(self, consumer: AIOKafkaConsumer) -> None:
        """Membership confirmed while fenced: make dropped records be fetched again."""

    @abstractmethod
    async def _take(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, Any]) -> None:
        """Step 3: hand fetched records (by partition, in offset order) to the runtime."""

    @abstractmethod
    async def _commit_due_work(self) -> None:
        """Step 4: make the work done so far durable."""

    @abstractmethod
    async def _finish(self) -> None:
        """After the loop: finish what was fetched, as far as the runtime does, and commit."""

    @abstractmethod
    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        """Commit the revoked partitions' work and let them go."""

    @abstractmethod
    async def _assign(self, assigned: set[TopicPartition]) -> None:
        """Prepare newly assigned partitions before any of their records is processed."""

    @abstractmethod
    async def _close(self) -> None:
        """After :meth:`run` returned: leave the group and close every client."""
