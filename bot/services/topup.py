"""Money coming in: admin top-ups and Telegram Stars payments, and Stars refunds.

Every movement is one of `bot.services.money`'s: ONE transaction holding its ledger entry, its
idempotency key (a button tapped twice, a command Telegram delivers twice, a payment update
redelivered: the second one moves nothing) and, through the caller's notice hook, the message
that tells the owner, so a crash can lose neither the money nor the message, and cannot send
the message for money that never moved.

Stars payments are keyed on `telegram_payment_charge_id`, never on the invoice payload: the
same invoice paid again is a new payment with a new charge id and is credited again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final, Literal

from bot.money import UNITS_PER_USD, MoneyError, to_units
from bot.services import money
from bot.services.errors import AppError, PaymentNotFound, WalletNotFound
from bot.services.money import Movement, NoticeHook, StarsCredit, StarsNoticeHook, check_amount
from storage.models import Payment, Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)

# One admin top-up or Stars purchase: a typo such as 10000 for 100.00 is still plausible,
# 1e9 is not.
MAX_TOPUP_UNITS: Final = 10_000 * UNITS_PER_USD
# What the Top up screen offers, in USD.
STARS_PRESETS_USD: Final[tuple[int, ...]] = (1, 5, 10, 25)
STARS_CURRENCY: Final = "XTR"
_PAYLOAD_PREFIX: Final = "v1s"
# wallet:units:stars, then for a "top up and buy" invoice the buy button it stands for:
# :b:country:ref:pool:price:nonce (the fields of a buy button, which never hold ":").
_PAYLOAD = re.compile(
    r"^v1s:(\d{1,18}):(\d{1,18}):(\d{1,12})"
    r"(?::b:([^:]{1,16}):([^:]{1,32}):([^:]{0,32}):(\d{1,12}):([^:]{1,32}))?$"
)
# Telegram's limit on an invoice payload.
_PAYLOAD_MAX_BYTES: Final = 128
# Balance is sold in whole cents.
_CENT: Final = UNITS_PER_USD // 100
_MAX_AMOUNT_TEXT = 32


# --- errors -------------------------------------------------------------------------------


class BadAmount(AppError):
    """A typed amount that is not a usable top-up; nothing was changed.

    `reason` is one of: format (not a number), not_positive, decimals (more than 4), too_large.
    """

    code = "BAD_AMOUNT"

    def __init__(self, text: str, reason: str, *, max_units: int = MAX_TOPUP_UNITS) -> None:
        super().__init__(f"bad amount {text!r}: {reason}")
        self.text = text
        self.reason = reason
        self.max_units = max_units


class PaymentNotCredited(AppError):
    """A successful payment whose invoice we cannot match (the payload is not ours, or the
    amount differs). The Stars were taken: the admins must look at it (and may refund)."""

    code = "PAYMENT_NOT_CREDITED"

    def __init__(self, charge_id: str, reason: str) -> None:
        super().__init__(f"payment {charge_id} not credited: {reason}")
        self.charge_id = charge_id
        self.reason = reason


class RefundRefused(AppError):
    """Telegram definitely refused the refund (not "already refunded"); our books are as
    they were before the attempt."""

    code = "REFUND_REFUSED"

    def __init__(self, message: str) -> None:
        super().__init__(f"Telegram refused the refund: {message}")
        self.message = message


class RefundPending(AppError):
    """Telegram's answer to the refund was lost. The wallet is already debited (money never
    leaves Telegram without our books showing it); asking again finishes it."""

    code = "REFUND_PENDING"

    def __init__(self, payment: Payment) -> None:
        super().__init__(f"refund of payment {payment.id}: no answer from Telegram")
        self.payment = payment


class AlreadyRefundedUpstream(Exception):
    """What a `TelegramRefund` raises on CHARGE_ALREADY_REFUNDED."""


# --- amounts ------------------------------------------------------------------------------

# Plain digits with an optional decimal part: what a person types for money. Exponents
# ("1e3"), signs beyond a leading minus, "NaN" and "Infinity" are what Decimal() would also
# accept, and a typo like "1e3" must not quietly become $1000.
_AMOUNT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_amount(text: str, *, max_units: int = MAX_TOPUP_UNITS) -> int:
    """A USD amount typed by a person ("5", "$5", "12.5", "0,75") as ledger units.

    Refuses (BadAmount) anything that is not a positive number with at most 4 decimals and
    at most `max_units`; "1e3" is not an amount (nobody means $1000 by it).
    """
    raw = text
    cleaned = text.strip().removeprefix("$").strip()
    if "," in cleaned and "." not in cleaned and cleaned.count(",") == 1:
        cleaned = cleaned.replace(",", ".")  # a decimal comma, as many people type it
    if len(cleaned) > _MAX_AMOUNT_TEXT or not _AMOUNT.fullmatch(cleaned):
        raise BadAmount(raw, "format", max_units=max_units)
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise BadAmount(raw, "format", max_units=max_units) from None
    if not value.is_finite():
        raise BadAmount(raw, "format", max_units=max_units)
    if value <= 0:
        raise BadAmount(raw, "not_positive", max_units=max_units)
    # Compared before converting: a huge exponent must not reach the multiplication.
    if value > Decimal(max_units) / UNITS_PER_USD:
        raise BadAmount(raw, "too_large", max_units=max_units)
    try:
        return to_units(value)
    except MoneyError:
        raise BadAmount(raw, "decimals", max_units=max_units) from None


def stars_for(units: int, stars_per_usd: int) -> int:
    """The Stars price of `units` of balance: round(amount × STARS_PER_USD), at least 1."""
    check_amount(units)
    stars = (Decimal(units) * stars_per_usd / UNITS_PER_USD).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return max(1, int(stars))


# --- admin top-up -------------------------------------------------------------------------


async def admin_topup(
    repo: Repo,
    *,
    wallet_id: int,
    amount_units: int,
    admin_id: int,
    key: str,
    notice: NoticeHook | None = None,
    note: str | None = None,
) -> Movement:
    """Credit `amount_units` to a wallet as a 'topup' by `admin_id`, once per `key`; the
    `notice` hook queues the owner's message in the same transaction."""
    amount = check_amount(amount_units)
    if amount > MAX_TOPUP_UNITS:
        raise BadAmount(str(amount), "too_large")
    moved = await money.credit(
        repo,
        wallet_id,
        amount,
        kind="topup",
        actor_id=admin_id,
        note=note or "admin top-up",
        key=f"topup:{key}",
        notice=notice,
    )
    if not moved.duplicate:
        log.info("admin %d topped up wallet %d by %d units", admin_id, wallet_id, amount)
    return moved


# --- Telegram Stars -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuyIntent:
    """What a "top up and buy" invoice buys once it is paid: the buy button the user pressed
    when the balance was short (its nonce too, so the purchase happens at most once however
    often the payment is delivered or the button pressed)."""

    country: str
    ref: str
    pool: str  # provider_id, or "" for the cheapest
    price: int  # the user price that button showed, in units
    nonce: str


@dataclass(frozen=True, slots=True)
class StarsInvoice:
    """What an invoice sells: `units` of balance on `wallet_id` for `stars` Stars, and for a
    "top up and buy" invoice the purchase to make once it is paid."""

    wallet_id: int
    units: int
    stars: int
    intent: BuyIntent | None = None

    @property
    def payload(self) -> str:
        # Only ids and numbers: Telegram echoes it back in the pre-checkout query and the
        # payment, and allows 128 bytes.
        payload = f"{_PAYLOAD_PREFIX}:{self.wallet_id}:{self.units}:{self.stars}"
        if self.intent is not None:
            i = self.intent
            payload += f":b:{i.country}:{i.ref}:{i.pool}:{i.price}:{i.nonce}"
        return payload


def new_invoice(wallet_id: int, units: int, stars_per_usd: int) -> StarsInvoice:
    amount = check_amount(units)
    if amount > MAX_TOPUP_UNITS:
        raise BadAmount(str(amount), "too_large")
    return StarsInvoice(wallet_id=wallet_id, units=amount, stars=stars_for(amount, stars_per_usd))


def shortfall_invoice(
    wallet_id: int, balance: int, intent: BuyIntent, stars_per_usd: int
) -> StarsInvoice | None:
    """The invoice for what the balance lacks to buy `intent`: the shortfall rounded up to a
    cent, for whole Stars rounded up (never less than the balance it buys). None when the
    balance already covers the price, or the purchase does not fit an invoice payload."""
    short = check_amount(intent.price) - balance
    if short <= 0:
        return None
    units = -(-short // _CENT) * _CENT
    if units > MAX_TOPUP_UNITS:
        raise BadAmount(str(units), "too_large")
    stars = max(1, -(-units * stars_per_usd // UNITS_PER_USD))
    invoice = StarsInvoice(wallet_id, units, stars, intent)
    if len(invoice.payload.encode()) > _PAYLOAD_MAX_BYTES or parse_payload(invoice.payload) is None:
        return None
    return invoice


def parse_payload(payload: str) -> StarsInvoice | None:
    match = _PAYLOAD.match(payload)
    if match is None:
        return None
    intent = (
        None
        if match[4] is None
        else BuyIntent(match[4], match[5], match[6], int(match[7]), match[8])
    )
    invoice = StarsInvoice(int(match[1]), int(match[2]), int(match[3]), intent)
    if not 0 < invoice.units <= MAX_TOPUP_UNITS or invoice.stars <= 0:
        return None
    if intent is not None and intent.price <= 0:
        return None
    return invoice


PreCheckoutProblem = Literal["invalid", "currency", "amount", "wallet", "banned"]


async def check_pre_checkout(
    repo: Repo, *, payer_id: int, payload: str, currency: str, total_amount: int
) -> PreCheckoutProblem | None:
    """Whether Telegram may take this payment: None when it is fine, else what is wrong."""
    invoice = parse_payload(payload)
    if invoice is None:
        return "invalid"
    if currency != STARS_CURRENCY:
        return "currency"
    if total_amount != invoice.stars:
        return "amount"
    if await repo.wallets.get(invoice.wallet_id) is None:
        return "wallet"
    payer = await repo.users.get(payer_id)
    if payer is not None and payer.banned:
        return "banned"
    return None


async def record_stars_payment(
    repo: Repo,
    *,
    payer_id: int,
    charge_id: str,
    payload: str,
    currency: str,
    total_amount: int,
    notice: StarsNoticeHook | None = None,
) -> StarsCredit:
    """Record a successful payment and credit its wallet exactly once per charge id.

    Raises PaymentNotCredited when the payment does not match an invoice of ours (nothing is
    credited; the admins should look at it).
    """
    if not charge_id:
        raise PaymentNotCredited(charge_id, "no charge id")
    invoice = parse_payload(payload)
    if invoice is None:
        raise PaymentNotCredited(charge_id, "unknown invoice payload")
    if currency != STARS_CURRENCY or total_amount != invoice.stars:
        raise PaymentNotCredited(
            charge_id, f"paid {total_amount} {currency}, the invoice asked {invoice.stars}"
        )
    try:
        return await money.credit_stars(
            repo,
            wallet_id=invoice.wallet_id,
            payer_id=payer_id,
            charge_id=charge_id,
            stars=invoice.stars,
            amount_units=invoice.units,
            payload=payload,
            notice=notice,
        )
    except WalletNotFound:
        raise PaymentNotCredited(charge_id, f"wallet {invoice.wallet_id} is gone") from None


# Refunds the Stars of one payment at Telegram. Raises AlreadyRefundedUpstream for
# CHARGE_ALREADY_REFUNDED, RefundRefused for any other definite refusal; anything else it
# raises means the outcome is unknown.
TelegramRefund = Callable[[Payment], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StarsRefund:
    payment: Payment
    wallet: Wallet
    # refunded: booked and done now; finished: an earlier attempt was booked, now confirmed;
    # already: refunded before, nothing changed.
    outcome: Literal["refunded", "finished", "already"]


async def find_payment(repo: Repo, ref: str) -> Payment | None:
    """A payment by our id ("12") or by its Telegram charge id."""
    text = ref.strip()
    if text.isdigit() and len(text) < 19:
        found = await repo.payments.get(int(text))
        if found is not None:
            return found
    return await repo.payments.get_by_charge_id(text) if text else None


async def refund_stars_payment(
    repo: Repo,
    payment_id: int,
    *,
    actor_id: int,
    telegram_refund: TelegramRefund,
    notice: StarsNoticeHook | None = None,
) -> StarsRefund:
    """Give a Stars payment back: debit the wallet (`money.book_stars_refund`), then ask
    Telegram to refund the Stars.

    The debit comes first and is refused (InsufficientFunds, nothing changed) when the wallet
    no longer holds the amount; the balance never goes below zero. If Telegram refuses, the
    debit is reversed; if its answer is lost, the debit stays and calling again finishes the
    refund (Telegram then answers CHARGE_ALREADY_REFUNDED, which counts as done). The
    `notice` hook runs in a transaction of its own once Telegram confirmed; it must dedupe
    on the payment, as the admin may ask again.
    """
    payment, booked_now = await money.book_stars_refund(repo, payment_id, actor_id=actor_id)
    try:
        await telegram_refund(payment)
    except AlreadyRefundedUpstream:
        outcome: Literal["refunded", "finished", "already"] = (
            "refunded" if booked_now else "already"
        )
    except RefundRefused as exc:
        if booked_now:
            await money.unbook_stars_refund(repo, payment, actor_id=actor_id, reason=exc.message)
        log.warning("refund of payment %d refused by Telegram: %s", payment.id, exc.message)
        raise
    except Exception as exc:
        log.warning("refund of payment %d: outcome unknown (%s)", payment.id, exc)
        current = await repo.payments.get(payment.id)
        raise RefundPending(current or payment) from exc
    else:
        outcome = "refunded" if booked_now else "finished"
    async with repo.db.transaction() as tx:
        current = await repo.payments.get(payment.id, tx=tx)
        after = await repo.wallets.get(payment.wallet_id, tx=tx)
        assert current is not None
        assert after is not None
        if notice is not None:
            await notice(tx, after, current)
    log.info("payment %d refunded (%s) by %d", payment.id, outcome, actor_id)
    return StarsRefund(payment=current, wallet=after, outcome=outcome)


__all__ = [
    "MAX_TOPUP_UNITS",
    "STARS_CURRENCY",
    "STARS_PRESETS_USD",
    "AlreadyRefundedUpstream",
    "BadAmount",
    "PaymentNotCredited",
    "PaymentNotFound",
    "RefundPending",
    "RefundRefused",
    "StarsCredit",
    "StarsInvoice",
    "StarsRefund",
    "TelegramRefund",
    "admin_topup",
    "check_pre_checkout",
    "find_payment",
    "new_invoice",
    "parse_amount",
    "parse_payload",
    "record_stars_payment",
    "refund_stars_payment",
    "stars_for",
]
