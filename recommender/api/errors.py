"""Errors as HTTP answers: the request's own (`ApiError`, with its status) and the services'."""

from __future__ import annotations

from recommender.service.errors import InvalidRequest, Mismatch, NotFound, ServiceError, Unavailable

STATUS = {InvalidRequest: 400, NotFound: 404, Mismatch: 422, Unavailable: 503}  # the services' errors


class ApiError(ServiceError):
    """An error of the HTTP request itself (its body, key, method or idempotency key), with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status


def status_of(error: ServiceError) -> int:
    return error.status if isinstance(error, ApiError) else STATUS[type(error)]
