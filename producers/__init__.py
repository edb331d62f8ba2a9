"""producers: SystemEvent -> Kafka (Avro single-object values, keyed by session)."""

from agent_events.producers.config import (
    DEFAULT_TOPIC,
    ProducerConfig,
    ProducerOptions,
    ProducerTuning,
)
from agent_events.producers.headers import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    PRODUCER_ID_HEADER,
    SEQUENCE_HEADER,
    TRACEPARENT_HEADER,
)
from agent_events.producers.partitioner import (
    partition_for_key,
)
from agent_events.producers.producer import (
    DeliveryResult,
    KafkaEventProducer,
    ProducerStats,
)
from agent_events.producers.topics import (
    TopicSpec,
    ensure_topics,
)

__all__ = [
    "CONTENT_TYPE_HEADER",
    "DEFAULT_TOPIC",
    "EVENT_TYPE_HEADER",
    "PRODUCER_ID_HEADER",
    "SEQUENCE_HEADER",
    "TRACEPARENT_HEADER",
    "DeliveryResult",
    "KafkaEventProducer",
    "ProducerConfig",
    "ProducerOptions",
    "ProducerStats",
    "ProducerTuning",
    "TopicSpec",
    "ensure_topics",
    "partition_for_key",
]
