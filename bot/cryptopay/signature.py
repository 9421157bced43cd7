"""The webhook signature: the header `crypto-pay-api-signature` is the hex HMAC-SHA-256 of
the raw request body, keyed with SHA-256 of the app's API token (the reference's "Verifying
webhook updates"). Checked on the bytes as they arrived, never on re-serialised JSON."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "crypto-pay-api-signature"


def sign_body(token: str, body: bytes) -> str:
    secret = hashlib.sha256(token.encode("utf-8")).digest()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(token: str, body: bytes, signature: str | None) -> bool:
    """True only for the right signature; a missing or malformed one is simply False."""
    if not signature:
        return False
    expected = sign_body(token, body)
    # Constant time: the comparison must not tell a forger how many characters were right.
    return hmac.compare_digest(expected, signature.strip().lower())


__all__ = ["SIGNATURE_HEADER", "sign_body", "verify_signature"]
