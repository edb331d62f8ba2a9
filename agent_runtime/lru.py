"""One bounded map that forgets the least recently used key first.

Sequence counters, partition hashes, seen event ids and per-key state all need "remember
at most N, forget the oldest": one implementation, so its eviction rule and its count of
evictions mean the same thing everywhere.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from agent_events.agent_runtime.errors import ConfigError

__all__ = ["LRUMap", "require_positive_int"]

K = TypeVar("K")
V = TypeVar("V")


def require_positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1; otherwise a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


class LRUMap(Generic[K, V]):
    """At most ``maxsize`` entries; touching a key makes it the last to be evicted.

    ``evicted`` counts the entries forgotten so far (a gauge worth exporting: a cache
    that evicts a lot is too small).
    """

    __slots__ = ("_data", "evicted", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = require_positive_int("maxsize", maxsize)
        self._data: OrderedDict[K, V] = OrderedDict()
        self.evicted = 0

    def _trim(self) -> None:
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
            self.evicted += 1

    def put(self, key: K, value: V) -> None:
        """Set ``key`` to ``value`` and mark it most recently used."""
        self._data[key] = value
        self._data.move_to_end(key)
        self._trim()

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The value for ``key`` (created if missing), marked most recently used."""
        data = self._data
        if key in data:
            data.move_to_end(key)
            return data[key]
        value = data[key] = factory()
        self._trim()
        return value

    def touch(self, key: K) -> bool:
        """Mark ``key`` most recently used; False when it is not held."""
        if key not in self._data:
            return False
        self._data.move_to_end(key)
        return True

    def get(self, key: K) -> V | None:
        """The value for ``key`` without changing its recency."""
        return self._data.get(key)

    def pop(self, key: K) -> V | None:
        """Remove ``key`` and return its value (``None`` when absent)."""
        return self._data.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def items(self) -> list[tuple[K, V]]:
        """The entries, least recently used first."""
        return list(self._data.items())

    def clear(self) -> None:
        """Forget every entry (not counted as evictions)."""
        self._data.clear()
