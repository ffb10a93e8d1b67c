"""What the services refuse, as errors the caller can act on: a stable `code` and a plain
`message`. The HTTP layer answers each kind with its status (`api/endpoint.py`)."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class InvalidRequest(ServiceError):
    """The request cannot be done as asked; nothing was written."""


class NotFound(ServiceError):
    """A listener or episode that does not exist."""


class Mismatch(ServiceError):
    """A reference that does not belong to what the request names (another listener's suggestion)."""


class Unavailable(ServiceError):
    """A service this depends on cannot answer now; the same request can be retried."""
