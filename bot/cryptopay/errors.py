"""What the Crypto Pay client raises: one base, one class per kind of failure.

The API answers `{"ok": false, "error": {"code": 400, "name": "AMOUNT_INVALID"}}`; `code` is
the HTTP status, `name` the reason. A request whose outcome we cannot know (no answer, a
dropped connection, a 5xx, an answer that is not the envelope) is `CryptoPayUnavailable`: for
createInvoice that means an invoice may exist that we never saw, which costs nothing (nobody
has its link), so the caller may simply ask again.
"""

from __future__ import annotations


class CryptoPayError(Exception):
    """Anything the Crypto Pay client raises."""


class CryptoPayApiError(CryptoPayError):
    """A definite refusal: the API answered `ok: false`."""

    def __init__(self, code: int, name: str, method: str) -> None:
        super().__init__(f"Crypto Pay {method}: {code} {name}")
        self.code = code
        self.name = name
        self.method = method


class CryptoPayUnauthorized(CryptoPayApiError):
    """401 UNAUTHORIZED: the token is wrong, revoked, or of the other network."""


class CryptoPayUnavailable(CryptoPayError):
    """No usable answer (timeout, connection, 5xx): the outcome is unknown."""


class CryptoPayMalformed(CryptoPayUnavailable):
    """An answer that is not what the reference describes (not JSON, a missing field)."""


__all__ = [
    "CryptoPayApiError",
    "CryptoPayError",
    "CryptoPayMalformed",
    "CryptoPayUnauthorized",
    "CryptoPayUnavailable",
]
