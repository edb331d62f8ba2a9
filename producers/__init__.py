"""producers: SystemEvent -> Kafka (Avro single-object values, keyed by session)."""

from agent_events.producers.config import DEFAULT_TOPIC, KafkaConnectionConfig, ProducerConfig
from agent_events.producers.connect import start_with_backoff
from agent_events.producers.headers import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    PRODUCER_ID_HEADER,
    SEQUENCE_HEADER,
    TRACEPARENT_HEADER,
    SessionSequencer,
    header_value,
)
from agent_events.producers.partitioner import SessionKeyPartitioner, partition_for_key
from agent_events.producers.producer import DeliveryResult, KafkaEventProducer, ProducerStats
from agent_events.producers.topics import TopicSpec, ensure_topics

__all__ = [
    "CONTENT_TYPE_HEADER",
    "DEFAULT_TOPIC",
    "EVENT_TYPE_HEADER",
    "PRODUCER_ID_HEADER",
    "SEQUENCE_HEADER",
    "TRACEPARENT_HEADER",
    "DeliveryResult",
    "KafkaConnectionConfig",
    "KafkaEventProducer",
    "ProducerConfig",
    "ProducerStats",
    "SessionKeyPartitioner",
    "SessionSequencer",
    "TopicSpec",
    "ensure_topics",
    "header_value",
    "partition_for_key",
    "start_with_backoff",
]
