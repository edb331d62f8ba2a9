"""Copies of source records (dead letters, late events), sized so they can always be written.

A copy is the source record plus headers. A record near the source topic's
``max.message.bytes`` plus those headers can be over what the copy's producer or topic
takes; retried, it fails forever and its partition stops. So, in this order:

1. the copy's producer takes ``max_request_size`` = the source limit plus
   :data:`COPY_HEADROOM`, and a copy topic we create takes as much (:meth:`CopySizes.topic_configs`);
2. a copy that is still over its topic's limit (a topic that exists with less) is
   written without its value (:func:`without_value`): the headers say the value's
   size and SHA-256, and topic/partition/offset say where to re-read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent_events.producers.headers import Headers
from agent_events.transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    KafkaConnectionConfig,
    max_message_bytes,
)

__all__ = ["COPY_HEADROOM", "CopySizes", "copy_sizes", "record_size", "without_value"]

COPY_HEADROOM = 64 * 1024
"""Room for the headers a copy adds (error message, stack trace, late reason)."""

_RECORD_OVERHEAD = 128
"""Batch header (61 bytes) and the record's own lengths, rounded up."""


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes a record takes in a batch of its own, rounded up (what a broker compares)."""
    size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    return size + sum(len(k) + len(v or b"") + 2 for k, v in headers)


def without_value(headers: Headers, value: bytes | None, *, prefix: str) -> Headers:
    """Headers of a copy written without its value: the value's size and SHA-256.

    A stack trace under ``prefix`` goes too (it can be large); message and class stay.
    """
    kept: Headers = [(k, v) for k, v in headers if k != f"{prefix}.exception.stacktrace"]
    body = value or b""
    kept += [
        (f"{prefix}.value.truncated", b"true"),
        (f"{prefix}.value.size", str(len(body)).encode()),
        (f"{prefix}.value.sha256", hashlib.sha256(body).hexdigest().encode()),
    ]
    return kept


@dataclass(frozen=True, slots=True)
class CopySizes:
    """The source limit and each copy topic's limit, as the broker told them."""

    source_limit: int
    topic_limits: Mapping[str, int]

    @property
    def copy_limit(self) -> int:
        """What a copy topic we create takes: the source limit plus :data:`COPY_HEADROOM`."""
        return self.source_limit + COPY_HEADROOM

    @property
    def max_request_size(self) -> int:
        """The copy producer's ``max_request_size``: the largest copy any topic takes."""
        return max([self.copy_limit, *self.topic_limits.values()])

    def topic_configs(self) -> dict[str, str]:
        """Topic configs for a copy topic this process creates (step 1)."""
        return {"max.message.bytes": str(self.copy_limit)}

    def limit_of(self, topic: str) -> int:
        return self.topic_limits.get(topic, self.copy_limit)

    def fits(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> bool:
        return record_size(key, value, headers) <= self.limit_of(topic)


async def copy_sizes(
    connection: KafkaConnectionConfig, sources: Iterable[str], copies: Iterable[str]
) -> CopySizes:
    """Ask the broker for the limits of ``sources`` and of the ``copies`` topics that exist."""
    sources, copies = list(sources), list(copies)
    found = await max_message_bytes(connection, [*sources, *copies])
    source_limit = max((found[t] for t in sources if t in found), default=DEFAULT_MAX_MESSAGE_BYTES)
    return CopySizes(source_limit, {t: found[t] for t in copies if t in found})
