"""Money coming in: admin top-ups and Telegram Stars payments, and Stars refunds.

Every movement is ONE transaction holding its ledger entry, its idempotency key (a button
tapped twice, a command Telegram delivers twice, a payment update redelivered: the second one
moves nothing) and the outbox message that tells the owner, so a crash can lose neither the
money nor the message, and cannot send the message for money that never moved.

Stars payments are keyed on `telegram_payment_charge_id`, never on the invoice payload: the
same invoice paid again is a new payment with a new charge id and is credited again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal

from bot.money import UNITS_PER_USD, MoneyError, to_units
from bot.services.errors import AppError, InsufficientFunds, WalletNotFound
from bot.services.wallet import check_amount
from bot.telegram.outbox import enqueue
from storage.db import Database, Transaction
from storage.models import LedgerEntry, Payment, Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)

# One admin top-up or Stars purchase: a typo such as 10000 for 100.00 is still plausible,
# 1e9 is not.
MAX_TOPUP_UNITS: Final = 10_000 * UNITS_PER_USD
# What the Top up screen offers, in USD.
STARS_PRESETS_USD: Final[tuple[int, ...]] = (1, 5, 10, 25)
STARS_CURRENCY: Final = "XTR"
_PAYLOAD_PREFIX: Final = "v1s"
_PAYLOAD = re.compile(r"^v1s:(\d{1,18}):(\d{1,18}):(\d{1,12})$")
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


class PaymentNotFound(AppError):
    code = "PAYMENT_NOT_FOUND"

    def __init__(self, ref: object) -> None:
        super().__init__(f"no payment {ref!r}")
        self.ref = ref


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


def parse_amount(text: str, *, max_units: int = MAX_TOPUP_UNITS) -> int:
    """A USD amount typed by a person ("5", "$5", "12.5", "0,75") as ledger units.

    Refuses (BadAmount) anything that is not a positive number with at most 4 decimals and
    at most `max_units`; "1e9" is read as the number it is and refused as too large.
    """
    raw = text
    cleaned = text.strip().removeprefix("$").strip()
    if "," in cleaned and "." not in cleaned and cleaned.count(",") == 1:
        cleaned = cleaned.replace(",", ".")  # a decimal comma, as many people type it
    if not cleaned or len(cleaned) > _MAX_AMOUNT_TEXT:
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


# --- outbox notices -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """A message to queue in the outbox together with a movement of money."""

    chat_id: int
    payload: Mapping[str, Any]
    kind: str = "notice"


async def queue_notice(repo: Repo, tx: Transaction, notice: Notice | None, dedupe_key: str) -> bool:
    if notice is None:
        return False
    queued = await enqueue(
        repo, notice.chat_id, notice.kind, notice.payload, dedupe_key=dedupe_key, tx=tx
    )
    return queued is not None


# --- admin top-up -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopUp:
    wallet: Wallet
    entry: LedgerEntry | None  # None: this key was used before; nothing moved this time
    notified: bool

    @property
    def duplicate(self) -> bool:
        return self.entry is None


async def admin_topup(
    db: Database,
    *,
    wallet_id: int,
    amount_units: int,
    admin_id: int,
    key: str,
    notice: Callable[[Wallet], Notice | None] | None = None,
    note: str | None = None,
) -> TopUp:
    """Credit `amount_units` to a wallet as a 'topup' by `admin_id`, once per `key`.

    `notice` renders the owner's notification from the wallet after the credit; it is
    queued in the same transaction.
    """
    amount = check_amount(amount_units)
    if amount > MAX_TOPUP_UNITS:
        raise BadAmount(str(amount), "too_large")
    repo = Repo(db)
    async with db.transaction() as tx:
        wallet = await repo.wallets.get(wallet_id, tx=tx)
        if wallet is None:
            raise WalletNotFound(wallet_id)
        if not await repo.action_keys.claim(tx, f"topup:{key}", "topup"):
            return TopUp(wallet=wallet, entry=None, notified=False)
        entry = await repo.ledger.append(
            tx, wallet_id, amount, "topup", actor_id=admin_id, note=note or "admin top-up"
        )
        await repo.action_keys.attach(tx, f"topup:{key}", entry.id)
        after = await repo.wallets.get(wallet_id, tx=tx)
        assert after is not None
        notified = await queue_notice(
            repo, tx, notice(after) if notice else None, f"topup:{entry.id}"
        )
    log.info("admin %d topped up wallet %d by %d units", admin_id, wallet_id, amount)
    return TopUp(wallet=after, entry=entry, notified=notified)


# --- Telegram Stars -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StarsInvoice:
    """What an invoice sells: `units` of balance on `wallet_id` for `stars` Stars."""

    wallet_id: int
    units: int
    stars: int

    @property
    def payload(self) -> str:
        # Only ids and numbers: Telegram echoes it back in the pre-checkout query and the
        # payment, and allows 128 bytes.
        return f"{_PAYLOAD_PREFIX}:{self.wallet_id}:{self.units}:{self.stars}"


def new_invoice(wallet_id: int, units: int, stars_per_usd: int) -> StarsInvoice:
    amount = check_amount(units)
    if amount > MAX_TOPUP_UNITS:
        raise BadAmount(str(amount), "too_large")
    return StarsInvoice(wallet_id=wallet_id, units=amount, stars=stars_for(amount, stars_per_usd))


def parse_payload(payload: str) -> StarsInvoice | None:
    match = _PAYLOAD.match(payload)
    if match is None:
        return None
    invoice = StarsInvoice(int(match[1]), int(match[2]), int(match[3]))
    if not 0 < invoice.units <= MAX_TOPUP_UNITS or invoice.stars <= 0:
        return None
    return invoice


PreCheckoutProblem = Literal["invalid", "currency", "amount", "wallet", "banned"]


async def check_pre_checkout(
    db: Database, *, payer_id: int, payload: str, currency: str, total_amount: int
) -> PreCheckoutProblem | None:
    """Whether Telegram may take this payment: None when it is fine, else what is wrong."""
    invoice = parse_payload(payload)
    if invoice is None:
        return "invalid"
    if currency != STARS_CURRENCY:
        return "currency"
    if total_amount != invoice.stars:
        return "amount"
    repo = Repo(db)
    if await repo.wallets.get(invoice.wallet_id) is None:
        return "wallet"
    payer = await repo.users.get(payer_id)
    if payer is not None and payer.banned:
        return "banned"
    return None


@dataclass(frozen=True, slots=True)
class StarsCredit:
    payment: Payment
    wallet: Wallet
    credited: bool  # False: this charge id was credited before (a redelivered update)


async def record_stars_payment(
    db: Database,
    *,
    payer_id: int,
    charge_id: str,
    payload: str,
    currency: str,
    total_amount: int,
    notice: Callable[[Wallet, Payment], Notice | None] | None = None,
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
    repo = Repo(db)
    async with db.transaction() as tx:
        if await repo.wallets.get(invoice.wallet_id, tx=tx) is None:
            raise PaymentNotCredited(charge_id, f"wallet {invoice.wallet_id} is gone")
        payment = await repo.payments.create(
            tx,
            wallet_id=invoice.wallet_id,
            user_id=payer_id,
            telegram_payment_charge_id=charge_id,
            stars=invoice.stars,
            amount_units=invoice.units,
            payload=payload,
        )
        credited = payment is not None
        if payment is None:
            payment = await repo.payments.get_by_charge_id(charge_id, tx=tx)
            assert payment is not None
        else:
            await repo.ledger.append(
                tx,
                payment.wallet_id,
                payment.amount_units,
                "stars",
                payment_id=payment.id,
                actor_id=payer_id,
                note=f"{payment.stars} Stars",
            )
        wallet = await repo.wallets.get(payment.wallet_id, tx=tx)
        assert wallet is not None
        if credited and notice is not None:
            await queue_notice(repo, tx, notice(wallet, payment), f"stars:{payment.id}")
    if credited:
        log.info(
            "payment %d: %d Stars credited as %d units to wallet %d",
            payment.id,
            payment.stars,
            payment.amount_units,
            payment.wallet_id,
        )
    else:
        log.info("payment %d was credited before (charge delivered again)", payment.id)
    return StarsCredit(payment=payment, wallet=wallet, credited=credited)


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
    db: Database,
    payment_id: int,
    *,
    actor_id: int,
    telegram_refund: TelegramRefund,
    notice: Callable[[Wallet, Payment], Notice | None] | None = None,
) -> StarsRefund:
    """Give a Stars payment back: debit the wallet (an 'adjustment' reversing the credit),
    then ask Telegram to refund the Stars.

    The debit comes first and is refused (InsufficientFunds, nothing changed) when the wallet
    no longer holds the amount; the balance never goes below zero. If Telegram refuses, the
    debit is reversed; if its answer is lost, the debit stays and calling again finishes the
    refund (Telegram then answers CHARGE_ALREADY_REFUNDED, which counts as done).
    """
    repo = Repo(db)
    booked_now = False
    async with db.transaction() as tx:
        payment = await repo.payments.get(payment_id, tx=tx)
        if payment is None:
            raise PaymentNotFound(payment_id)
        wallet = await repo.wallets.get(payment.wallet_id, tx=tx)
        assert wallet is not None
        if payment.status == "paid":
            if wallet.balance < payment.amount_units:
                raise InsufficientFunds(needed=payment.amount_units, balance=wallet.balance)
            await repo.payments.mark_refunded(tx, payment.id)
            await repo.ledger.append(
                tx,
                wallet.id,
                -payment.amount_units,
                "adjustment",
                payment_id=payment.id,
                actor_id=actor_id,
                note=f"Stars refund of payment {payment.id}",
            )
            booked_now = True
    try:
        await telegram_refund(payment)
    except AlreadyRefundedUpstream:
        outcome: Literal["refunded", "finished", "already"] = (
            "refunded" if booked_now else "already"
        )
    except RefundRefused as exc:
        if booked_now:
            await _unbook_refund(db, repo, payment, actor_id, exc.message)
        log.warning("refund of payment %d refused by Telegram: %s", payment.id, exc.message)
        raise
    except Exception as exc:
        log.warning("refund of payment %d: outcome unknown (%s)", payment.id, exc)
        current = await repo.payments.get(payment.id)
        raise RefundPending(current or payment) from exc
    else:
        outcome = "refunded" if booked_now else "finished"
    current = await repo.payments.get(payment.id)
    after = await repo.wallets.get(payment.wallet_id)
    assert current is not None
    assert after is not None
    if notice is not None:
        # The dedupe key keeps it to one message however many times the admin asks.
        async with db.transaction() as tx:
            await queue_notice(repo, tx, notice(after, current), f"stars-refund:{payment.id}")
    log.info("payment %d refunded (%s) by %d", payment.id, outcome, actor_id)
    return StarsRefund(payment=current, wallet=after, outcome=outcome)


async def _unbook_refund(
    db: Database, repo: Repo, payment: Payment, actor_id: int, reason: str
) -> None:
    async with db.transaction() as tx:
        if await repo.payments.undo_refund(tx, payment.id):
            await repo.ledger.append(
                tx,
                payment.wallet_id,
                payment.amount_units,
                "adjustment",
                payment_id=payment.id,
                actor_id=actor_id,
                note=f"Stars refund refused by Telegram: {reason}"[:200],
            )


__all__ = [
    "MAX_TOPUP_UNITS",
    "STARS_CURRENCY",
    "STARS_PRESETS_USD",
    "AlreadyRefundedUpstream",
    "BadAmount",
    "Notice",
    "PaymentNotCredited",
    "PaymentNotFound",
    "RefundPending",
    "RefundRefused",
    "StarsCredit",
    "StarsInvoice",
    "StarsRefund",
    "TelegramRefund",
    "TopUp",
    "admin_topup",
    "check_pre_checkout",
    "find_payment",
    "new_invoice",
    "parse_amount",
    "parse_payload",
    "queue_notice",
    "record_stars_payment",
    "refund_stars_payment",
    "stars_for",
]
