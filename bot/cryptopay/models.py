"""Typed results of the Crypto Pay API, validated from its JSON (the reference's Invoice,
App and Update objects; only the fields the bot reads are typed, the rest are kept raw).

Amounts are strings in the API ("5.00", "0.0000891"); they become `Decimal`, never float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, cast

from bot.cryptopay.errors import CryptoPayMalformed

InvoiceStatus = Literal["active", "paid", "expired"]
INVOICE_STATUSES: Final[tuple[str, ...]] = ("active", "paid", "expired")
CurrencyType = Literal["crypto", "fiat"]


@dataclass(frozen=True, slots=True)
class CryptoPayApp:
    """getMe: the app the token belongs to."""

    app_id: int
    name: str
    payment_processing_bot_username: str


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: int
    hash: str
    status: InvoiceStatus
    currency_type: CurrencyType
    amount: Decimal
    created_at: str
    bot_invoice_url: str
    fiat: str | None = None  # currency_type fiat
    asset: str | None = None  # currency_type crypto
    accepted_assets: tuple[str, ...] = ()
    paid_asset: str | None = None
    paid_amount: Decimal | None = None
    paid_at: str | None = None
    mini_app_invoice_url: str | None = None
    web_app_invoice_url: str | None = None
    description: str | None = None
    payload: str | None = None
    expiration_date: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WebhookUpdate:
    update_id: int
    update_type: str  # "invoice_paid" is the only one the reference lists
    request_date: str
    payload: Invoice | None  # the invoice, for invoice_paid


def _decimal(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CryptoPayMalformed(f"{name} is not a number string: {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise CryptoPayMalformed(f"{name} is not a number: {value!r}") from None
    if not number.is_finite():
        raise CryptoPayMalformed(f"{name} is not finite: {value!r}")
    return number


def _str(raw: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise CryptoPayMalformed(f"invoice without {name}")
        return None
    if not isinstance(value, str):
        raise CryptoPayMalformed(f"{name} is not a string: {value!r}")
    return value


def parse_invoice(raw: object) -> Invoice:
    if not isinstance(raw, Mapping):
        raise CryptoPayMalformed(f"an invoice must be an object, got {type(raw).__name__}")
    invoice_id = raw.get("invoice_id")
    if isinstance(invoice_id, bool) or not isinstance(invoice_id, int) or invoice_id <= 0:
        raise CryptoPayMalformed(f"bad invoice_id: {invoice_id!r}")
    status = raw.get("status")
    if status not in INVOICE_STATUSES:
        raise CryptoPayMalformed(f"bad invoice status: {status!r}")
    currency_type = raw.get("currency_type", "crypto")
    if currency_type not in ("crypto", "fiat"):
        raise CryptoPayMalformed(f"bad currency_type: {currency_type!r}")
    accepted = raw.get("accepted_assets") or ()
    if isinstance(accepted, str):
        accepted = [a for a in accepted.split(",") if a]
    if not isinstance(accepted, list | tuple) or not all(isinstance(a, str) for a in accepted):
        raise CryptoPayMalformed(f"bad accepted_assets: {accepted!r}")
    paid_amount = raw.get("paid_amount")
    return Invoice(
        invoice_id=invoice_id,
        hash=cast(str, _str(raw, "hash", required=True)),
        status=cast(InvoiceStatus, status),
        currency_type=cast(CurrencyType, currency_type),
        amount=_decimal(raw.get("amount"), "amount"),
        created_at=cast(str, _str(raw, "created_at", required=True)),
        bot_invoice_url=cast(str, _str(raw, "bot_invoice_url", required=True)),
        fiat=_str(raw, "fiat"),
        asset=_str(raw, "asset"),
        accepted_assets=tuple(accepted),
        paid_asset=_str(raw, "paid_asset"),
        paid_amount=None if paid_amount is None else _decimal(paid_amount, "paid_amount"),
        paid_at=_str(raw, "paid_at"),
        mini_app_invoice_url=_str(raw, "mini_app_invoice_url"),
        web_app_invoice_url=_str(raw, "web_app_invoice_url"),
        description=_str(raw, "description"),
        payload=_str(raw, "payload"),
        expiration_date=_str(raw, "expiration_date"),
        raw=dict(raw),
    )


def parse_app(raw: object) -> CryptoPayApp:
    if not isinstance(raw, Mapping):
        raise CryptoPayMalformed("getMe did not return an object")
    app_id = raw.get("app_id")
    name = raw.get("name")
    bot = raw.get("payment_processing_bot_username")
    if not isinstance(app_id, int) or not isinstance(name, str) or not isinstance(bot, str):
        raise CryptoPayMalformed(f"getMe returned {raw!r}")
    return CryptoPayApp(app_id=app_id, name=name, payment_processing_bot_username=bot)


def parse_update(raw: object) -> WebhookUpdate:
    """A webhook body (already JSON-decoded). CryptoPayMalformed if it is not an Update."""
    if not isinstance(raw, Mapping):
        raise CryptoPayMalformed("a webhook update must be an object")
    update_id = raw.get("update_id")
    update_type = raw.get("update_type")
    request_date = raw.get("request_date")
    if not isinstance(update_id, int) or not isinstance(update_type, str):
        raise CryptoPayMalformed(f"bad update: {update_id!r} {update_type!r}")
    payload = parse_invoice(raw.get("payload")) if update_type == "invoice_paid" else None
    return WebhookUpdate(
        update_id=update_id,
        update_type=update_type,
        request_date=request_date if isinstance(request_date, str) else "",
        payload=payload,
    )


__all__ = [
    "INVOICE_STATUSES",
    "CryptoPayApp",
    "CurrencyType",
    "Invoice",
    "InvoiceStatus",
    "WebhookUpdate",
    "parse_app",
    "parse_invoice",
    "parse_update",
]
