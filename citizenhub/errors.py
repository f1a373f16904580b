"""The one error type services raise for refusals a caller should show to a person."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A business rule refused the operation; `message` is safe to show, `extra` adds detail.

    The API turns it into a 400 (or `status_code`) in the one error shape; views turn it into
    a form error. Validation of single fields uses Django's ValidationError instead.
    """

    status_code = 400

    def __init__(
        self, message: str, *, code: str = "refused", extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra or {}


class ConflictError(ApplicationError):
    status_code = 409
