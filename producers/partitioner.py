"""Java-compatible murmur2 partitioning of session keys.

A key maps to ``toPositive(murmur2(key)) % partitions`` exactly as in the Java
client's default partitioner, so producers in any language put a session on the
same partition. Sessions send many events, so the hash of recent keys is cached.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

from agent_events.agent_runtime.lru import LRUMap

__all__ = ["SessionKeyPartitioner", "partition_for_key"]


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition the Java client's default partitioner picks for ``key``."""
    if num_partitions < 1:
        raise ValueError("num_partitions must be positive")
    return (int(murmur2(key)) & 0x7FFFFFFF) % num_partitions


class SessionKeyPartitioner:
    """An aiokafka partitioner: murmur2 for keyed records, with a bounded hash cache.

    Every record we produce has a key (the session id, or the agent id), so the
    keyless branch only serves foreign callers.
    """

    def __init__(self, cache_size: int = 65_536) -> None:
        self._cache: LRUMap[bytes, int] = LRUMap(cache_size)

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[self._positive(key) % len(all_partitions)]

    def partition(self, key: bytes, num_partitions: int) -> int:
        """The partition of ``key`` among partitions ``0 .. num_partitions - 1``.

        For callers that know the partition count: it spares aiokafka's per-record
        look at which partitions have a leader, which the Java rule never uses.
        """
        return self._positive(key) % num_partitions

    def _positive(self, key: bytes) -> int:
        positive = self._cache.get(key)
        if positive is None:
            positive = int(murmur2(key)) & 0x7FFFFFFF
            self._cache.put(key, positive)
        return positive
