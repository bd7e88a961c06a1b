"""Errors a service raises for a request it refuses; the API maps them to HTTP answers."""
from __future__ import annotations


class ServiceError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with and
    ``code`` a stable machine-readable reason."""

    def __init__(self, message: str, status: int = 422, code: str = "refused") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
