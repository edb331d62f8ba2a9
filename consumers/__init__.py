"""consumers: Kafka -> handlers. The consumer-group runtime, dead letters and re-drive.

The handler classes of the spec live in :mod:`consumers.handlers`; they run
unchanged on an in-process ``EventBus`` and inside a :class:`ConsumerService`.
"""

from agent_events.consumers.config import DEFAULT_DLQ_TOPIC, ConsumerConfig, Ordering
from agent_events.consumers.dlq import (
    ERROR_HEADER_PREFIX,
    REDRIVE_FOR_GROUP_HEADER,
    DeadLetter,
    DeadLetterPublisher,
    dead_letter_headers,
    error_headers_of,
)
from agent_events.consumers.offsets import OffsetTracker
from agent_events.consumers.processing import ProcessingStats, RecordProcessor
from agent_events.consumers.redrive import (
    DeadLetterFilter,
    DeadLetterRecord,
    RedriveReport,
    read_dead_letters,
    redrive,
)
from agent_events.consumers.runtime import ConsumerService, HandlerSpec
from agent_events.consumers.scan import scan_topic, standalone_consumer, topic_partitions
from agent_events.consumers.worker import PartitionWorker

__all__ = [
    "DEFAULT_DLQ_TOPIC",
    "ERROR_HEADER_PREFIX",
    "REDRIVE_FOR_GROUP_HEADER",
    "ConsumerConfig",
    "ConsumerService",
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetterPublisher",
    "DeadLetterRecord",
    "HandlerSpec",
    "OffsetTracker",
    "Ordering",
    "PartitionWorker",
    "ProcessingStats",
    "RecordProcessor",
    "RedriveReport",
    "dead_letter_headers",
    "error_headers_of",
    "read_dead_letters",
    "redrive",
    "scan_topic",
    "standalone_consumer",
    "topic_partitions",
]
