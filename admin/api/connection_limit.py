"""How many Events API connections each token holds at once (429 with Retry-After past it)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Final

from admin.api.errors import ApiError

#: Seconds a client turned away for too many connections is told to wait.
RETRY_AFTER_SECONDS: Final = 5


class ConnectionLimiter:
    """How many Events API connections each token holds; 429 past the limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, token: str) -> Iterator[None]:
        """One connection of ``token`` for the duration of the block."""
        key = hashlib.sha256(token.encode(errors="surrogateescape")).hexdigest()
        if self._open.get(key, 0) >= self._limit:
            raise ApiError(
                429,
                "too_many_connections",
                f"this token already holds {self._limit} Events API connections",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._open[key] = self._open.get(key, 0) + 1
        try:
            yield
        finally:
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]
