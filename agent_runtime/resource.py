"""The one shape of everything that starts something: ``async with X(...) as x``.

Entering calls :meth:`start`, leaving calls :meth:`stop` (also on error and on
cancellation), so every bus, producer, consumer service and broker stops cleanly
the same way.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncResource"]


class AsyncResource:
    """Base class: subclasses implement ``start`` and ``stop``; ``async with`` does the rest."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
