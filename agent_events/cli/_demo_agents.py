"""Simulated agents for ``agent-events demo``: real ``AgentExecutor`` runs on a real bus.

Nothing here is a mock of the pipeline: sessions come from :class:`SessionManager`,
executions from :class:`AgentExecutor` with a middleware pipeline, and every event they
publish goes through the in-process :class:`EventBus` to the attached
:class:`KafkaEventProducer`. Only the LLM is simulated: it answers after a random delay,
sometimes slowly (alerting's slow-execution rule fires) and sometimes fails (an
``ERROR_OCCURRED``), and an authentication middleware refuses some users (a
``MIDDLEWARE_FAILED``). Sessions start at ``rate`` per second, at most ``concurrency``
at a time; each runs a few executions, saves a checkpoint and expires.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from dataclasses import dataclass, field

from agent_events.agent_runtime.event_bus import EventBus
from agent_events.agent_runtime.events import EventType, SystemEvent
from agent_events.agent_runtime.orchestration import (
    AgentConfig,
    AgentContext,
    AgentExecutor,
    SessionManager,
)
from agent_events.agent_runtime.subscription import type_label

__all__ = ["AGENTS", "FlowCounter", "SimulatedAgents", "SimulatedLLM"]

AGENTS: tuple[tuple[str, str], ...] = (
    ("researcher", "gpt-4o"),
    ("coder", "claude-sonnet"),
    ("planner", "gpt-4o-mini"),
    ("support", "llama-3-70b"),
)
"""(agent id, model) of the simulated fleet."""

_TASKS = (
    "Summarise the incident report",
    "Write a unit test for the parser",
    "Plan the migration to Kafka",
    "Answer the customer's billing question",
    "Compare three vector databases",
)


class SimulatedLLM:
    """An LLM client that answers after a random delay; some calls are slow, some fail."""

    def __init__(self, rng: random.Random, *, failure_rate: float, slow_rate: float) -> None:
        self._rng = rng
        self.failure_rate = failure_rate
        self.slow_rate = slow_rate

    async def complete(self, prompt: str, model: str) -> str:
        draw = self._rng.random()
        if draw < self.failure_rate:
            await asyncio.sleep(self._rng.uniform(0.01, 0.1))
            raise ConnectionError(f"{model}: the provider answered 503 Service Unavailable")
        slow = draw > 1 - self.slow_rate
        # The simulated model's thinking time is the point of this class.
        await asyncio.sleep(self._rng.uniform(1.0, 1.5) if slow else self._rng.uniform(0.02, 0.3))
        return f"[{model}] done: {prompt.splitlines()[-1][:60]}"


@dataclass(slots=True)
class FlowCounter:
    """What the agents published, counted by a subscriber on the same bus."""

    by_type: Counter[str] = field(default_factory=Counter)
    recent: deque[SystemEvent] = field(default_factory=lambda: deque(maxlen=8))

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    async def __call__(self, event: SystemEvent) -> None:
        self.by_type[type_label(event.event_type)] += 1
        self.recent.append(event)


class SimulatedAgents:
    """Runs sessions of the simulated fleet on ``bus`` until :meth:`run`'s ``stop`` is set."""

    def __init__(
        self,
        bus: EventBus,
        *,
        rate: float = 5.0,
        concurrency: int = 8,
        seed: int | None = None,
        failure_rate: float = 0.06,
        slow_rate: float = 0.08,
        blocked_user_rate: float = 0.04,
    ) -> None:
        self._bus = bus
        self._rng = random.Random(seed)
        self.rate = rate
        self.concurrency = concurrency
        self.blocked_user_rate = blocked_user_rate
        self.sessions = SessionManager(bus, ttl=600.0)
        self.executions = 0
        llm = SimulatedLLM(self._rng, failure_rate=failure_rate, slow_rate=slow_rate)
        self._executors = [
            AgentExecutor(
                agent_id,
                AgentConfig(name=agent_id, model=model, llm_timeout=5.0),
                middlewares=[self._authenticate, self._retrieve_context],
                llm=llm,
                event_bus=bus,
            )
            for agent_id, model in AGENTS
        ]

    @staticmethod
    async def _authenticate(context: AgentContext) -> None:
        if context.metadata.get("user_tier") == "blocked":
            raise PermissionError(f"user {context.user_id} is blocked")

    async def _retrieve_context(self, context: AgentContext) -> None:
        context.instructions.append("Use the three most relevant documents.")
        context.metadata["documents"] = self._rng.randint(1, 3)

    async def run(self, stop: asyncio.Event) -> None:
        """Start sessions until ``stop`` is set; returns when the running ones finished."""
        slots = asyncio.Semaphore(self.concurrency)
        async with asyncio.TaskGroup() as sessions:
            number = 0
            while not stop.is_set():
                await slots.acquire()
                number += 1
                task = sessions.create_task(self._session(number))
                task.add_done_callback(lambda _: slots.release())
                try:
                    # The pace of new sessions; a stop request cuts the pause short.
                    async with asyncio.timeout(self._rng.expovariate(self.rate)):
                        await stop.wait()
                except TimeoutError:
                    pass

    async def _session(self, number: int) -> None:
        executor = self._rng.choice(self._executors)
        user = f"user-{self._rng.randint(1, 40)}"
        blocked = self._rng.random() < self.blocked_user_rate
        session = await self.sessions.create_session(
            executor.agent_id, user, metadata={"channel": self._rng.choice(["web", "api", "slack"])}
        )
        for turn in range(self._rng.randint(1, 4)):
            context = AgentContext(
                task=self._rng.choice(_TASKS),
                user_id=user,
                session_id=session.session_id,
                metadata={"user_tier": "blocked" if blocked else "pro", "turn": turn},
            )
            result = await executor.execute(context)
            self.executions += 1
            if result.error is not None:
                break
            await self.sessions.save_checkpoint(session.session_id, {"turn": turn, "n": number})
        await self.sessions.expire(session.session_id)


async def count_flow(bus: EventBus) -> FlowCounter:
    """Subscribe a :class:`FlowCounter` to every event of ``bus``."""
    counter = FlowCounter()
    await bus.subscribe(EventType.ANY, counter)
    return counter
