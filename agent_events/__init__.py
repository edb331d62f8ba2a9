"""agent-events: lifecycle events of AI agents, in-process and across a cluster on Kafka.

This module is the front door: everything a user needs is importable from here
(``from agent_events import EventBus, SystemEvent, KafkaEventProducer, ConsumerService``).
Anything not in ``__all__`` is private and may change between releases.

Errors all derive from :class:`AgentEventsError`::

    AgentEventsError
    ├── ConfigError            a setting or argument is wrong (the CLI exits 2)
    ├── BusError               QueueFull, BusClosed, HandlerTimeout, SubscriptionError
    ├── CodecError             EncodeError, DecodeError (UnknownSchemaError, MalformedEventError)
    └── KafkaError             BrokerUnavailable, AuthenticationFailed, ProduceError,
                               UnsupportedByBroker

(the whole tree, with what each error means: ``agent_events.agent_runtime.errors``)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from agent_events.agent_runtime import (
    DispatchResult,
    EventBus,
    EventType,
    EventTypeLike,
    ForeignEventType,
    Handler,
    HandlerOutcome,
    MetricsSnapshot,
    SystemEvent,
    register_event_types,
)
from agent_events.agent_runtime.errors import (
    AgentEventsError,
    AuthenticationFailed,
    BrokerUnavailable,
    BusClosed,
    BusError,
    CodecError,
    ConfigError,
    DecodeError,
    EncodeError,
    HandlerTimeout,
    KafkaError,
    ProduceError,
    QueueFull,
    SubscriptionError,
    UnknownSchemaError,
    UnsupportedByBroker,
)
from agent_events.agent_runtime.orchestration import (
    AgentConfig,
    AgentContext,
    AgentExecutor,
    ExecutionResult,
    LLMClient,
    Middleware,
    SessionManager,
)
from agent_events.app import App
from agent_events.consumers import (
    ConsumerConfig,
    ConsumerService,
    DeadLetterFilter,
    HandlerSpec,
    Ordering,
    RedriveReport,
    read_dead_letters,
    redrive,
)
from agent_events.consumers.replay import (
    FromBeginning,
    FromOffsets,
    FromShift,
    FromTime,
    HandlerSink,
    JsonLinesSink,
    ReplayReport,
    ReplaySpec,
    TopicSink,
    UntilEnd,
    UntilOffsets,
    UntilTime,
    plan_replay,
    replay,
)
from agent_events.consumers.windows import (
    HoppingWindow,
    Reducer,
    SessionSummary,
    SessionSummaryCodec,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowAggregate,
    WindowedAggregationConfig,
    WindowProcessor,
    parse_window,
)
from agent_events.producers import DeliveryResult, KafkaEventProducer, ProducerConfig
from agent_events.schemas import EventCodec, decode_event, encode_event
from agent_events.transport import KafkaConnectionConfig

__all__ = [
    "AgentConfig",
    "AgentContext",
    "AgentEventsError",
    "AgentExecutor",
    "App",
    "AuthenticationFailed",
    "BrokerUnavailable",
    "BusClosed",
    "BusError",
    "CodecError",
    "ConfigError",
    "ConsumerConfig",
    "ConsumerService",
    "DeadLetterFilter",
    "DecodeError",
    "DeliveryResult",
    "DispatchResult",
    "EncodeError",
    "EventBus",
    "EventCodec",
    "EventType",
    "EventTypeLike",
    "ExecutionResult",
    "ForeignEventType",
    "FromBeginning",
    "FromOffsets",
    "FromShift",
    "FromTime",
    "Handler",
    "HandlerOutcome",
    "HandlerSink",
    "HandlerSpec",
    "HandlerTimeout",
    "HoppingWindow",
    "JsonLinesSink",
    "KafkaConnectionConfig",
    "KafkaError",
    "KafkaEventProducer",
    "LLMClient",
    "MetricsSnapshot",
    "Middleware",
    "Ordering",
    "ProduceError",
    "ProducerConfig",
    "QueueFull",
    "RedriveReport",
    "Reducer",
    "ReplayReport",
    "ReplaySpec",
    "SessionManager",
    "SessionSummary",
    "SessionSummaryCodec",
    "SessionWindow",
    "SlidingWindow",
    "SubscriptionError",
    "SystemEvent",
    "TopicSink",
    "TumblingWindow",
    "UnknownSchemaError",
    "UnsupportedByBroker",
    "UntilEnd",
    "UntilOffsets",
    "UntilTime",
    "WindowAggregate",
    "WindowProcessor",
    "WindowedAggregationConfig",
    "__version__",
    "decode_event",
    "encode_event",
    "parse_window",
    "plan_replay",
    "read_dead_letters",
    "redrive",
    "register_event_types",
    "replay",
]

try:
    __version__: str = version("agent-events")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
