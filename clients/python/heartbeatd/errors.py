"""Exceptions raised by the heartbeatd client."""

from __future__ import annotations

from typing import Optional


class HeartbeatdError(Exception):
    """Base class of every error this package raises (besides ValueError for bad arguments)."""


class ApiError(HeartbeatdError):
    """The daemon answered with an error status (docs/API.md, "Errors").

    status: the HTTP status (401, 403, 413, 429, 503, ...); error: the error code
    ("unauthenticated", "forbidden", "batch_too_large", "rate_limited", ...); message: the
    daemon's explanation; retry_after: seconds from the Retry-After header (429, 503), or
    None."""

    def __init__(self, status: int, error: str, message: str,
                 retry_after: Optional[float] = None):
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after


class NetworkError(HeartbeatdError):
    """The daemon could not be reached, or the connection failed before a complete answer
    (refused, reset, timed out, TLS handshake or verification failed). `target` names
    where the client tried to connect; the original exception is `__cause__`."""

    def __init__(self, target: str, cause: BaseException):
        detail = str(cause) or type(cause).__name__
        super().__init__(f"cannot reach heartbeatd at {target}: {detail}")
        self.target = target


class ProtocolError(HeartbeatdError):
    """The daemon's answer was not what the API describes (not JSON, missing fields): a
    version mismatch or something else listening at the address."""
