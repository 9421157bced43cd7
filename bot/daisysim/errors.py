"""One exception class per DaisySim error code, under one base.

Every error carries the HTTP status, the machine-readable code and the human message, so a
caller can branch on the class and still log what the upstream said.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar


class DaisySimError(Exception):
    """Base of everything the DaisySim client raises."""

    def __init__(self, message: str, *, http_status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status}, "
            f"message={self.message!r})"
        )


class APIError(DaisySimError):
    """The upstream answered with its error envelope (`success: false`)."""

    code_name: ClassVar[str] = ""
    status: ClassVar[int] = 0

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, code=code or self.code_name)
        self.data = data or {}


class Unauthenticated(APIError):
    code_name = "UNAUTHENTICATED"
    status = 401


class AccountSuspended(APIError):
    code_name = "ACCOUNT_SUSPENDED"
    status = 403


class AccountLocked(APIError):
    code_name = "ACCOUNT_LOCKED"
    status = 403


class NotFound(APIError):
    code_name = "NOT_FOUND"
    status = 404


class ConcurrentError(APIError):
    code_name = "CONCURRENT_ERROR"
    status = 409


class PriceVerificationFailed(APIError):
    code_name = "PRICE_VERIFICATION_FAILED"
    status = 422


class CodeReceived(APIError):
    """Cancel refused because the SMS already arrived; `sms_code` holds it."""

    code_name = "CODE_RECEIVED"
    status = 422

    @property
    def sms_code(self) -> str | None:
        value = self.data.get("code")
        return str(value) if value is not None else None


class TooEarly(APIError):
    """Cancel refused inside the lock; `seconds_left` is parsed from the message."""

    code_name = "TOO_EARLY"
    status = 422

    @property
    def seconds_left(self) -> int:
        return _first_int(self.message, default=1)


class InvalidCountry(APIError):
    code_name = "INVALID_COUNTRY"
    status = 422


class InsufficientBalance(APIError):
    """The upstream account (not the user's wallet) cannot pay for the number."""

    code_name = "INSUFFICIENT_BALANCE"
    status = 400


class RateLimited(APIError):
    """`retry_after` (seconds) is parsed from the message, e.g. "Please wait 43s."."""

    code_name = "RATE_LIMITED"
    status = 429

    @property
    def retry_after(self) -> float:
        return float(_first_int(self.message, default=1))


class OutOfStock(APIError):
    code_name = "OUT_OF_STOCK"
    status = 503


class ProviderError(APIError):
    code_name = "PROVIDER_ERROR"
    status = 502


class ServerError(APIError):
    code_name = "SERVER_ERROR"
    status = 500


class UnknownAPIError(APIError):
    """An error envelope with a code the reference does not list."""


class MalformedResponse(DaisySimError):
    """Not JSON, truncated, or JSON that does not match the documented shape."""


class TransportError(DaisySimError):
    """The request could not be completed (timeout, refused or dropped connection)."""


class PurchaseOutcomeUnknown(DaisySimError):
    """A purchase may or may not have happened upstream (timeout, dropped connection, 5xx,
    unreadable success). It is never retried: the caller reconciles through /history."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message, code="PURCHASE_OUTCOME_UNKNOWN")
        self.cause = cause


ERRORS_BY_CODE: dict[str, type[APIError]] = {
    cls.code_name: cls
    for cls in (
        Unauthenticated,
        AccountSuspended,
        AccountLocked,
        NotFound,
        ConcurrentError,
        PriceVerificationFailed,
        CodeReceived,
        TooEarly,
        InvalidCountry,
        InsufficientBalance,
        RateLimited,
        OutOfStock,
        ProviderError,
        ServerError,
    )
}

_INT = re.compile(r"(\d+)")


def _first_int(text: str, *, default: int) -> int:
    match = _INT.search(text)
    return int(match.group(1)) if match else default


def error_from_envelope(
    http_status: int, code: str, message: str, data: dict[str, Any] | None = None
) -> APIError:
    cls = ERRORS_BY_CODE.get(code, UnknownAPIError)
    return cls(message, http_status=http_status, code=code, data=data)
