"""Moved to :mod:`agent_events.agent_runtime.lru` (the one LRU); kept while callers move."""

from agent_events.agent_runtime.lru import LRUMap, require_positive_int

__all__ = ["LRUMap", "require_positive_int"]
