"""A size-capped mapping that forgets the least recently used key first."""

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
    """At most ``maxsize`` entries; touching a key makes it the last to be evicted."""

    __slots__ = ("_data", "evicted", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = require_positive_int("maxsize", maxsize)
        self._data: OrderedDict[K, V] = OrderedDict()
        self.evicted = 0

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The value for ``key`` (created if missing), marked most recently used."""
        data = self._data
        value = data.get(key)
        if value is None and key not in data:
            value = data[key] = factory()
            if len(data) > self.maxsize:
                data.popitem(last=False)
                self.evicted += 1
        else:
            data.move_to_end(key)
        return value  # type: ignore[return-value]

    def get(self, key: K) -> V | None:
        """The value for ``key`` without changing its recency."""
        return self._data.get(key)

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def items(self) -> list[tuple[K, V]]:
        return list(self._data.items())

    def clear(self) -> None:
        self._data.clear()
