"""Errors the caller can act on."""

from __future__ import annotations


class ApiError(Exception):
    """An error the caller can act on: becomes `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
