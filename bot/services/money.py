"""Every movement of money, one function each: the only code that appends to the ledger.

| movement            | function               | ledger kinds                        |
|---------------------|------------------------|-------------------------------------|
| credit              | `credit`               | topup, adjustment, sandbox_bonus    |
| debit               | `debit`                | adjustment                          |
| transfer            | `transfer`             | transfer_out + transfer_in          |
| Stars credit        | `credit_stars`         | stars (once per Telegram charge id) |
| Crypto Pay credit   | `credit_crypto`        | crypto (once per Crypto Pay invoice) |
| Stars refund        | `book_stars_refund`    | adjustment (`unbook_stars_refund`: back) |
| purchase hold       | `hold_purchase`        | purchase                            |
| refund              | `refund_activation`    | refund (once per activation)        |
| promo code          | `redeem_promo`         | promo (once per redemption)         |
| referral reward     | `credit_referral`      | referral (once per activation)      |

Each runs in ONE transaction with its ledger entries: its own, or the caller's `tx` when the
movement must commit together with something else (a wallet's creation, a queue place, an
activation's new state). The cached balance moves with every entry (a trigger) and can never go
below zero; the database also refuses a second refund of an activation and a second credit of a
payment. An optional action `key` makes a movement idempotent (a double tap, a redelivered
command): the second call with the same key moves nothing and says so (`Movement.duplicate`).
An optional `notice` hook runs inside the same transaction with what moved, so the message that
tells the owner (queued in the outbox by the Telegram edge) commits with the money or not at
all. Services and handlers call these; none of them appends to the ledger itself.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Final, Literal

from bot.services.errors import (
    DailyLimitExceeded,
    InsufficientFunds,
    InvalidAmount,
    PaymentNotFound,
    PromoRefused,
    WalletNotFound,
)
from storage.db import Transaction
from storage.models import (
    COMPLETED,
    Activation,
    ActivationState,
    CryptoInvoice,
    LedgerEntry,
    Payment,
    PromoCode,
    Wallet,
)
from storage.repo import Repo

log = logging.getLogger(__name__)

CreditKind = Literal["topup", "adjustment", "sandbox_bonus"]
DebitKind = Literal["adjustment"]
STARS_KIND: Final = "stars"
CRYPTO_KIND: Final = "crypto"
PROMO_KIND: Final = "promo"
REFERRAL_KIND: Final = "referral"
_TOKEN_BYTES: Final = 5  # 10 hex digits: collisions among one account's orders are out of reach


@dataclass(frozen=True, slots=True)
class Movement:
    """What one movement did. `wallet` is the wallet it credited or debited (a transfer's
    source), as it is after the movement; `counterparty` a transfer's target after it."""

    kind: str
    amount: int
    wallet: Wallet
    entry: LedgerEntry | None  # None: the action key was used before; nothing moved
    counterparty: Wallet | None = None

    @property
    def duplicate(self) -> bool:
        return self.entry is None


# Runs inside the movement's transaction, after the ledger entries, with what moved.
NoticeHook = Callable[[Transaction, Movement], Awaitable[None]]


def check_amount(amount: object) -> int:
    """A money amount must be a positive int of units (no float, no bool, no Decimal)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount(amount)
    return amount


def day_start(now: float | None = None) -> float:
    """Midnight UTC of the current day (the group member limit resets then)."""
    current = time.time() if now is None else now
    return current - (current % 86_400)


@asynccontextmanager
async def _within(repo: Repo, tx: Transaction | None) -> AsyncIterator[Transaction]:
    """The caller's transaction, or a new one around this movement."""
    if tx is not None:
        yield tx
        return
    async with repo.db.transaction() as own:
        yield own


async def _wallet(repo: Repo, tx: Transaction, wallet_id: int) -> Wallet:
    wallet = await repo.wallets.get(wallet_id, tx=tx)
    if wallet is None:
        raise WalletNotFound(wallet_id)
    return wallet


async def _claim(repo: Repo, tx: Transaction, key: str | None, kind: str) -> bool:
    """Take the action key (if any) in the movement's transaction; False if it was taken."""
    return key is None or await repo.action_keys.claim(tx, key, kind)


async def _move(
    repo: Repo,
    wallet_id: int,
    signed: int,
    *,
    kind: str,
    actor_id: int | None,
    note: str | None,
    key: str | None,
    notice: NoticeHook | None,
    tx: Transaction | None,
    crypto_invoice_id: int | None = None,
) -> Movement:
    """One entry on one wallet: a credit (`signed` > 0) or a debit (`signed` < 0, refused
    with InsufficientFunds below zero)."""
    amount = abs(signed)
    async with _within(repo, tx) as t:
        wallet = await _wallet(repo, t, wallet_id)
        if not await _claim(repo, t, key, kind):
            return Movement(kind, amount, wallet, None)
        if wallet.balance + signed < 0:
            raise InsufficientFunds(needed=amount, balance=wallet.balance)
        entry = await repo.ledger.append(
            t,
            wallet_id,
            signed,
            kind,
            actor_id=actor_id,
            note=note,
            crypto_invoice_id=crypto_invoice_id,
        )
        if key is not None:
            await repo.action_keys.attach(t, key, entry.id)
        moved = Movement(kind, amount, await _wallet(repo, t, wallet_id), entry)
        if notice is not None:
            await notice(t, moved)
    log.info("moved %+d units (%s) on wallet %d by %s", signed, kind, wallet_id, actor_id)
    return moved


async def credit(
    repo: Repo,
    wallet_id: int,
    amount: int,
    *,
    kind: CreditKind = "topup",
    actor_id: int | None,
    note: str | None = None,
    key: str | None = None,
    notice: NoticeHook | None = None,
    tx: Transaction | None = None,
) -> Movement:
    """Add money to a wallet (an admin top-up, a positive adjustment, play money)."""
    return await _move(
        repo,
        wallet_id,
        check_amount(amount),
        kind=kind,
        actor_id=actor_id,
        note=note,
        key=key,
        notice=notice,
        tx=tx,
    )


async def debit(
    repo: Repo,
    wallet_id: int,
    amount: int,
    *,
    kind: DebitKind = "adjustment",
    actor_id: int | None,
    note: str | None = None,
    key: str | None = None,
    notice: NoticeHook | None = None,
    tx: Transaction | None = None,
) -> Movement:
    """Take money out (an admin correction). Below zero → InsufficientFunds, nothing moved."""
    return await _move(
        repo,
        wallet_id,
        -check_amount(amount),
        kind=kind,
        actor_id=actor_id,
        note=note,
        key=key,
        notice=notice,
        tx=tx,
    )


async def transfer(
    repo: Repo,
    from_wallet_id: int,
    to_wallet_id: int,
    amount: int,
    *,
    actor_id: int | None,
    note: str | None = None,
    key: str | None = None,
    notice: NoticeHook | None = None,
    tx: Transaction | None = None,
) -> Movement:
    """Move money between two wallets (a member funding a group, a group that became a
    supergroup). `entry` of the result is the target's transfer_in entry."""
    amount = check_amount(amount)
    if from_wallet_id == to_wallet_id:
        raise InvalidAmount("a transfer needs two different wallets")
    async with _within(repo, tx) as t:
        source = await _wallet(repo, t, from_wallet_id)
        target = await _wallet(repo, t, to_wallet_id)
        if not await _claim(repo, t, key, "transfer"):
            return Movement("transfer", amount, source, None, target)
        if source.balance < amount:
            raise InsufficientFunds(needed=amount, balance=source.balance)
        await repo.ledger.append(
            t,
            from_wallet_id,
            -amount,
            "transfer_out",
            counterparty_wallet_id=to_wallet_id,
            actor_id=actor_id,
            note=note,
        )
        entry = await repo.ledger.append(
            t,
            to_wallet_id,
            amount,
            "transfer_in",
            counterparty_wallet_id=from_wallet_id,
            actor_id=actor_id,
            note=note,
        )
        if key is not None:
            await repo.action_keys.attach(t, key, entry.id)
        moved = Movement(
            "transfer",
            amount,
            await _wallet(repo, t, from_wallet_id),
            entry,
            await _wallet(repo, t, to_wallet_id),
        )
        if notice is not None:
            await notice(t, moved)
    log.info(
        "transferred %d units from wallet %d to %d by %s",
        amount,
        from_wallet_id,
        to_wallet_id,
        actor_id,
    )
    return moved


# --- Telegram Stars -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StarsCredit:
    payment: Payment
    wallet: Wallet
    credited: bool  # False: this charge id was credited before (a redelivered update)


StarsNoticeHook = Callable[[Transaction, Wallet, Payment], Awaitable[None]]


async def credit_stars(
    repo: Repo,
    *,
    wallet_id: int,
    payer_id: int,
    charge_id: str,
    stars: int,
    amount_units: int,
    payload: str,
    notice: StarsNoticeHook | None = None,
) -> StarsCredit:
    """Record a successful Stars payment and credit its wallet, exactly once per Telegram
    charge id however often the update arrives (the payments table's unique charge id is
    the action key). WalletNotFound when the invoice's wallet is gone (nothing recorded)."""
    check_amount(stars)
    check_amount(amount_units)
    async with repo.db.transaction() as tx:
        await _wallet(repo, tx, wallet_id)
        payment = await repo.payments.create(
            tx,
            wallet_id=wallet_id,
            user_id=payer_id,
            telegram_payment_charge_id=charge_id,
            stars=stars,
            amount_units=amount_units,
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
                STARS_KIND,
                payment_id=payment.id,
                actor_id=payer_id,
                note=f"{payment.stars} Stars",
            )
        wallet = await _wallet(repo, tx, payment.wallet_id)
        if credited and notice is not None:
            await notice(tx, wallet, payment)
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


async def book_stars_refund(repo: Repo, payment_id: int, *, actor_id: int) -> tuple[Payment, bool]:
    """Debit a Stars payment's credit back before Telegram is asked to refund the Stars, so
    money never leaves Telegram without our books showing it.

    Returns (payment, booked now). Raises PaymentNotFound, or InsufficientFunds (nothing
    changed) when the wallet no longer holds the amount. A payment already booked as
    refunded books nothing.
    """
    async with repo.db.transaction() as tx:
        payment = await repo.payments.get(payment_id, tx=tx)
        if payment is None:
            raise PaymentNotFound(payment_id)
        wallet = await _wallet(repo, tx, payment.wallet_id)
        if payment.status != "paid":
            return payment, False
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
        booked = await repo.payments.get(payment.id, tx=tx)
    assert booked is not None
    return booked, True


async def unbook_stars_refund(repo: Repo, payment: Payment, *, actor_id: int, reason: str) -> bool:
    """Telegram definitely refused the refund: give the debit back, once."""
    async with repo.db.transaction() as tx:
        if not await repo.payments.undo_refund(tx, payment.id):
            return False
        await repo.ledger.append(
            tx,
            payment.wallet_id,
            payment.amount_units,
            "adjustment",
            payment_id=payment.id,
            actor_id=actor_id,
            note=f"Stars refund refused by Telegram: {reason}"[:200],
        )
    return True


# --- Crypto Pay ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CryptoCredit:
    invoice: CryptoInvoice  # as it is after the call
    wallet: Wallet
    credited: bool  # False: this invoice was credited before (the webhook and the poll)


CryptoNoticeHook = Callable[[Transaction, Wallet, CryptoInvoice], Awaitable[None]]


def crypto_key(invoice: CryptoInvoice) -> str:
    """The action key of an invoice's credit: one per network and Crypto Pay invoice id."""
    return f"crypto:{invoice.network}:{invoice.invoice_id}"


async def credit_crypto(
    repo: Repo,
    invoice_row_id: int,
    *,
    paid_asset: str | None,
    paid_amount: str | None,
    notice: CryptoNoticeHook | None = None,
    now: float | None = None,
) -> CryptoCredit:
    """Credit a paid Crypto Pay invoice to its wallet, exactly once per invoice however many
    times (and from however many places at once) its payment is reported: the action key
    `crypto:<network>:<invoice id>`, the invoice row turning 'paid' and the ledger's unique
    index on the invoice all live in this ONE transaction. The amount is the invoice's own
    `amount_units` as we stored it at creation, never a figure from the report."""
    async with repo.db.transaction() as tx:
        invoice = await repo.crypto.get(invoice_row_id, tx=tx)
        if invoice is None:
            raise PaymentNotFound(invoice_row_id)
        check_amount(invoice.amount_units)
        moved = await _move(
            repo,
            invoice.wallet_id,
            invoice.amount_units,
            kind=CRYPTO_KIND,
            actor_id=invoice.user_id,
            note=f"Crypto Pay invoice {invoice.invoice_id}"
            + (f" ({paid_asset})" if paid_asset else ""),
            key=crypto_key(invoice),
            notice=None,
            tx=tx,
            crypto_invoice_id=invoice.id,
        )
        if not moved.duplicate:
            await repo.crypto.mark_paid(
                tx, invoice.id, paid_asset=paid_asset, paid_amount=paid_amount, now=now
            )
        after = await repo.crypto.get(invoice.id, tx=tx)
        assert after is not None
        if not moved.duplicate and notice is not None:
            await notice(tx, moved.wallet, after)
    if moved.duplicate:
        log.info("crypto invoice %d was credited before", invoice.invoice_id)
    return CryptoCredit(invoice=after, wallet=moved.wallet, credited=not moved.duplicate)


# --- purchases ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurchaseRequest:
    """What the user agreed to buy, at the price they were shown, and which wallet pays."""

    user_id: int
    wallet_id: int
    service_code: str
    service_name: str
    user_price: int
    upstream_price: int
    idempotency_key: str
    country: str = "USA"
    provider_id: str | None = None
    chat_id: int | None = None
    # Set for a purchase from a group wallet: the member's limit for the current UTC day.
    member_daily_limit: int | None = None


def new_recon_token() -> str:
    return secrets.token_hex(_TOKEN_BYTES)


async def hold_purchase(
    repo: Repo, tx: Transaction, request: PurchaseRequest, *, now: float
) -> Activation:
    """Hold the price: inside the caller's transaction, check the wallet (and a group
    member's daily limit), write the activation as `purchasing` and debit the user price
    with its 'purchase' entry. Raises WalletNotFound, InsufficientFunds or
    DailyLimitExceeded with nothing written. The idempotency key must be new (the UNIQUE
    index refuses a repeated one)."""
    check_amount(request.user_price)
    if request.upstream_price < 0:
        raise InvalidAmount(request.upstream_price)
    wallet = await _wallet(repo, tx, request.wallet_id)
    if wallet.balance < request.user_price:
        raise InsufficientFunds(needed=request.user_price, balance=wallet.balance)
    if request.member_daily_limit is not None:
        spent = await repo.activations.member_spent(
            wallet.id, request.user_id, day_start(now), tx=tx
        )
        if spent + request.user_price > request.member_daily_limit:
            raise DailyLimitExceeded(
                limit=request.member_daily_limit, spent=spent, needed=request.user_price
            )
    activation = await repo.activations.create(
        tx,
        user_id=request.user_id,
        wallet_id=wallet.id,
        chat_id=request.chat_id,
        service_code=request.service_code,
        service_name=request.service_name,
        provider_id=request.provider_id,
        country=request.country,
        user_price=request.user_price,
        upstream_price=request.upstream_price,
        idempotency_key=request.idempotency_key,
        recon_token=new_recon_token(),
        now=now,
    )
    await repo.ledger.append(
        tx,
        wallet.id,
        -request.user_price,
        "purchase",
        activation_id=activation.id,
        actor_id=request.user_id,
        now=now,
    )
    log.info(
        "activation %d: holding %d units of wallet %d for %s",
        activation.id,
        request.user_price,
        wallet.id,
        request.service_code,
    )
    return activation


async def refund_activation(
    repo: Repo,
    tx: Transaction,
    activation: Activation,
    *,
    state: ActivationState,
    from_states: Sequence[str],
    now: float,
    error_code: str | None = None,
    upstream_id: str | None = None,
    phone_number: str | None = None,
    upstream_amount: int | None = None,
    actor_id: int | None = None,
    note: str | None = None,
) -> bool:
    """End the activation without a code and give the full price back to the wallet that
    paid, once; False if it was not in one of `from_states` any more (someone else settled
    it first: a double cancel, the poller against a user's tap, two reconcilers). The
    `ledger_one_refund` unique index would make a second refund fail even if a bug got here.
    """
    changed = await repo.activations.mark_ended(
        tx,
        activation.id,
        state=state,
        finished_at=now,
        from_states=from_states,
        error_code=error_code,
        upstream_id=upstream_id,
        phone_number=phone_number,
        upstream_amount=upstream_amount,
    )
    if not changed:
        return False
    await repo.ledger.append(
        tx,
        activation.wallet_id,
        activation.user_price,
        "refund",
        activation_id=activation.id,
        actor_id=actor_id,
        note=note or state,
        now=now,
    )
    log.info(
        "activation %d %s: refunded %d units to wallet %d",
        activation.id,
        state,
        activation.user_price,
        activation.wallet_id,
    )
    return True


# --- promo codes and referrals ------------------------------------------------------------


async def redeem_promo(
    repo: Repo,
    *,
    code: str,
    user_id: int,
    wallet_id: int,
    key: str | None = None,
    notice: NoticeHook | None = None,
    now: float | None = None,
) -> tuple[PromoCode, Movement]:
    """Redeem a promo code onto a user's wallet: take one use, record the redemption and
    credit its amount as one 'promo' entry, all in ONE transaction.

    Raises PromoRefused (nothing changed) for an unknown, expired, used-up or (once per
    user) already redeemed code. The last use is taken by a conditional UPDATE, so two
    users racing for it credit once; a once-per-user code redeemed twice at once by one user
    credits once (the unique index on the redemption). `key` makes a repeated request (the
    same message or button delivered twice) move nothing for a code that may be used again.
    """
    current = time.time() if now is None else now
    text = code.strip()
    async with repo.db.transaction() as tx:
        wallet = await _wallet(repo, tx, wallet_id)
        promo = await repo.promo.find(text, tx=tx)
        if promo is None:
            raise PromoRefused(text, "unknown")
        if promo.once_per_user and await repo.promo.redeemed_by(promo.id, user_id, tx=tx):
            raise PromoRefused(promo.code, "already_used")
        if promo.expired(current):
            raise PromoRefused(promo.code, "expired")
        if not await _claim(repo, tx, key, PROMO_KIND):
            return promo, Movement(PROMO_KIND, promo.amount_units, wallet, None)
        if not await repo.promo.take_use(tx, promo.id, now=current):
            raise PromoRefused(promo.code, "used_up")  # the rollback gives the key back
        redemption = await repo.promo.add_redemption(
            tx, code=promo, user_id=user_id, wallet_id=wallet_id, now=current
        )
        if redemption is None:
            raise PromoRefused(promo.code, "already_used")  # ... and the use
        entry = await repo.ledger.append(
            tx,
            wallet_id,
            promo.amount_units,
            PROMO_KIND,
            actor_id=user_id,
            note=f"promo code {promo.code}",
            promo_redemption_id=redemption.id,
            now=current,
        )
        if key is not None:
            await repo.action_keys.attach(tx, key, entry.id)
        moved = Movement(PROMO_KIND, promo.amount_units, await _wallet(repo, tx, wallet_id), entry)
        if notice is not None:
            await notice(tx, moved)
        taken = await repo.promo.get(promo.id, tx=tx)
    assert taken is not None
    log.info(
        "promo code %d redeemed by user %d: %d units on wallet %d (use %d of %d)",
        promo.id,
        user_id,
        promo.amount_units,
        wallet_id,
        taken.uses,
        taken.max_uses,
    )
    return taken, moved


def referral_reward(price_units: int, percent: Decimal, *, earned: int, cap_units: int) -> int:
    """What a referee's purchase at `price_units` earns the referrer: `percent` of it,
    rounded down to a unit, and never past `cap_units` earned from this referee."""
    if percent <= 0 or cap_units <= 0:
        return 0
    share = int((Decimal(price_units) * percent / 100).to_integral_value(rounding=ROUND_DOWN))
    return max(0, min(share, cap_units - earned))


async def credit_referral(
    repo: Repo,
    tx: Transaction,
    activation: Activation,
    *,
    percent: Decimal,
    cap_units: int,
    notice: NoticeHook | None = None,
) -> Movement | None:
    """A referee's purchase got its code: credit their referrer `percent` of its price as a
    'referral' entry, inside the caller's transaction (the one that stored the code), up to
    `cap_units` per referee. None when nothing is owed (no referrer, the feature off, the cap
    reached, the referrer has no wallet) or it was credited before. Only a completed
    purchase earns (the `ledger_referral_source` trigger refuses any other), and a
    completed purchase is never refunded, so nothing is ever clawed back."""
    if activation.state != COMPLETED:
        return None
    referral = await repo.referrals.of_referee(activation.user_id, tx=tx)
    if referral is None:
        return None
    units = referral_reward(
        activation.user_price, percent, earned=referral.earned_units, cap_units=cap_units
    )
    if units <= 0:
        return None
    wallet = await repo.wallets.get_by_owner("user", referral.referrer_id, tx=tx)
    if wallet is None:
        return None
    # The activation's id is the action key: one reward per purchase, whatever settles it.
    if not await _claim(repo, tx, f"referral:{activation.id}", REFERRAL_KIND):
        return None
    entry = await repo.ledger.append(
        tx,
        wallet.id,
        units,
        REFERRAL_KIND,
        activation_id=activation.id,
        actor_id=activation.user_id,
        note=f"referral: purchase {activation.id} of user {activation.user_id}",
    )
    await repo.action_keys.attach(tx, f"referral:{activation.id}", entry.id)
    await repo.referrals.add_earned(tx, activation.user_id, units)
    moved = Movement(REFERRAL_KIND, units, await _wallet(repo, tx, wallet.id), entry)
    if notice is not None:
        await notice(tx, moved)
    log.info(
        "activation %d earned referrer %d %d units (wallet %d)",
        activation.id,
        referral.referrer_id,
        units,
        wallet.id,
    )
    return moved


__all__ = [
    "CRYPTO_KIND",
    "CreditKind",
    "CryptoCredit",
    "CryptoNoticeHook",
    "DebitKind",
    "Movement",
    "NoticeHook",
    "PurchaseRequest",
    "StarsCredit",
    "StarsNoticeHook",
    "book_stars_refund",
    "check_amount",
    "credit",
    "credit_crypto",
    "credit_referral",
    "credit_stars",
    "crypto_key",
    "day_start",
    "debit",
    "hold_purchase",
    "new_recon_token",
    "redeem_promo",
    "referral_reward",
    "refund_activation",
    "transfer",
    "unbook_stars_refund",
]
