"""Why something the client was asked to do did not happen."""

from __future__ import annotations


class PulseboardError(Exception):
    """An error with a ``code`` to branch on.

    The server's codes (``forbidden``, ``unauthenticated``, ``op_refused``,
    ``store_unavailable``, ``rate_limited``, …) from an ``error`` frame or an HTTP answer;
    ``policy`` (closed with 1008) and ``too_large`` (1009), after which the client stops;
    ``protocol`` (the server speaks another protocol version); ``unknown_outcome`` (the
    connection dropped after a write was sent and before its answer: it may or may not have
    been applied); ``closed``, ``timeout``, ``network``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.close_code = close_code

    def __repr__(self) -> str:
        return f"PulseboardError({self.code!r}, {self.message!r})"
