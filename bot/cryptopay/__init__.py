"""The Crypto Pay API client (@CryptoBot's payments): one httpx client, typed results, one
exception per kind of failure. Only the methods the bot uses: getMe, createInvoice,
getInvoices; and the webhook signature check.

    async with CryptoPayClient(MAINNET_URL, token) as client:
        invoice = await client.create_invoice(amount=Decimal("5"), fiat="USD", ...)
"""

from bot.cryptopay.client import MAINNET_URL, TESTNET_URL, CryptoPayClient, network_url
from bot.cryptopay.errors import (
    CryptoPayApiError,
    CryptoPayError,
    CryptoPayMalformed,
    CryptoPayUnauthorized,
    CryptoPayUnavailable,
)
from bot.cryptopay.models import (
    INVOICE_STATUSES,
    CryptoPayApp,
    Invoice,
    InvoiceStatus,
    WebhookUpdate,
    parse_invoice,
    parse_update,
)
from bot.cryptopay.signature import sign_body, verify_signature

__all__ = [
    "INVOICE_STATUSES",
    "MAINNET_URL",
    "TESTNET_URL",
    "CryptoPayApiError",
    "CryptoPayApp",
    "CryptoPayClient",
    "CryptoPayError",
    "CryptoPayMalformed",
    "CryptoPayUnauthorized",
    "CryptoPayUnavailable",
    "Invoice",
    "InvoiceStatus",
    "WebhookUpdate",
    "network_url",
    "parse_invoice",
    "parse_update",
    "sign_body",
    "verify_signature",
]
