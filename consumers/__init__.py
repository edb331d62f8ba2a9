"""consumers: Kafka -> handlers. The consumer-group runtime, dead letters and re-drive.

The handler classes of the spec live in :mod:`consumers.handlers`; they run
unchanged on an in-process ``EventBus`` and inside a :class:`ConsumerService`.
"""

from agent_events.consumers.config import (
    DEFAULT_DLQ_TOPIC,
    ConsumerConfig,
    Ordering,
)
from agent_events.consumers.dlq import (
    ERROR_HEADER_PREFIX,
    REDRIVE_FOR_GROUP_HEADER,
    DeadLetter,
)
from agent_events.consumers.processing import (
    ProcessingStats,
)
from agent_events.consumers.redrive import (
    DeadLetterFilter,
    DeadLetterRecord,
    RedriveReport,
    read_dead_letters,
    redrive,
)
from agent_events.consumers.runtime import (
    ConsumerService,
    HandlerSpec,
)

__all__ = [
    "DEFAULT_DLQ_TOPIC",
    "ERROR_HEADER_PREFIX",
    "REDRIVE_FOR_GROUP_HEADER",
    "ConsumerConfig",
    "ConsumerService",
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetterRecord",
    "HandlerSpec",
    "Ordering",
    "ProcessingStats",
    "RedriveReport",
    "read_dead_letters",
    "redrive",
]
