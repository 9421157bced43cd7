"""Wallets: credit, debit and transfer, each ONE transaction with its ledger entries.

The cached balance moves with every ledger entry (a trigger in the schema), so these functions
only decide whether a movement is allowed and append the entries.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from bot.services.errors import InsufficientFunds, InvalidAmount, WalletNotFound
from storage.db import Database, Transaction
from storage.models import Payment, Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)

CreditKind = Literal["topup", "adjustment", "sandbox_bonus"]
DebitKind = Literal["adjustment"]


def check_amount(amount: object) -> int:
    """A money amount must be a positive int of units (no float, no bool, no Decimal)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount(amount)
    return amount


async def _wallet(repo: Repo, tx: Transaction, wallet_id: int) -> Wallet:
    wallet = await repo.wallets.get(wallet_id, tx=tx)
    if wallet is None:
        raise WalletNotFound(wallet_id)
    return wallet


async def get_or_create_user_wallet(
    db: Database, user_id: int, *, sandbox_bonus_units: int = 0
) -> Wallet:
    """The user's personal wallet. A new wallet in sandbox mode starts with play money,
    credited in the same transaction that creates it, so it is given exactly once."""
    repo = Repo(db)
    existing = await repo.wallets.get_by_owner("user", user_id)
    if existing is not None:
        return existing
    async with db.transaction() as tx:
        wallet, created = await repo.wallets.get_or_create(tx, "user", user_id)
        if created and sandbox_bonus_units > 0:
            await repo.ledger.append(
                tx,
                wallet.id,
                check_amount(sandbox_bonus_units),
                "sandbox_bonus",
                actor_id=user_id,
                note="sandbox start balance",
            )
            wallet = await _wallet(repo, tx, wallet.id)
    return wallet


async def get_or_create_group_wallet(db: Database, chat_id: int) -> Wallet:
    repo = Repo(db)
    existing = await repo.wallets.get_by_owner("group", chat_id)
    if existing is not None:
        return existing
    async with db.transaction() as tx:
        wallet, _ = await repo.wallets.get_or_create(tx, "group", chat_id)
    return wallet


async def credit(
    db: Database,
    wallet_id: int,
    amount: int,
    *,
    kind: CreditKind = "topup",
    actor_id: int | None,
    note: str | None = None,
) -> Wallet:
    """Add money (an admin top-up, a positive adjustment); returns the wallet after it."""
    amount = check_amount(amount)
    repo = Repo(db)
    async with db.transaction() as tx:
        await _wallet(repo, tx, wallet_id)
        await repo.ledger.append(tx, wallet_id, amount, kind, actor_id=actor_id, note=note)
        wallet = await _wallet(repo, tx, wallet_id)
    log.info("credited %d units (%s) to wallet %d by %s", amount, kind, wallet_id, actor_id)
    return wallet


async def debit(
    db: Database,
    wallet_id: int,
    amount: int,
    *,
    kind: DebitKind = "adjustment",
    actor_id: int | None,
    note: str | None = None,
) -> Wallet:
    """Take money out (an admin correction). Below zero → InsufficientFunds, nothing changed."""
    amount = check_amount(amount)
    repo = Repo(db)
    async with db.transaction() as tx:
        wallet = await _wallet(repo, tx, wallet_id)
        if wallet.balance < amount:
            raise InsufficientFunds(needed=amount, balance=wallet.balance)
        await repo.ledger.append(tx, wallet_id, -amount, kind, actor_id=actor_id, note=note)
        wallet = await _wallet(repo, tx, wallet_id)
    log.info("debited %d units (%s) from wallet %d by %s", amount, kind, wallet_id, actor_id)
    return wallet


async def transfer(
    db: Database,
    from_wallet_id: int,
    to_wallet_id: int,
    amount: int,
    *,
    actor_id: int | None,
    note: str | None = None,
) -> tuple[Wallet, Wallet]:
    """Move money between wallets (a member funding a group); returns both wallets after."""
    amount = check_amount(amount)
    if from_wallet_id == to_wallet_id:
        raise InvalidAmount("a transfer needs two different wallets")
    repo = Repo(db)
    async with db.transaction() as tx:
        source = await _wallet(repo, tx, from_wallet_id)
        await _wallet(repo, tx, to_wallet_id)
        if source.balance < amount:
            raise InsufficientFunds(needed=amount, balance=source.balance)
        await repo.ledger.append(
            tx,
            from_wallet_id,
            -amount,
            "transfer_out",
            counterparty_wallet_id=to_wallet_id,
            actor_id=actor_id,
            note=note,
        )
        await repo.ledger.append(
            tx,
            to_wallet_id,
            amount,
            "transfer_in",
            counterparty_wallet_id=from_wallet_id,
            actor_id=actor_id,
            note=note,
        )
        source = await _wallet(repo, tx, from_wallet_id)
        target = await _wallet(repo, tx, to_wallet_id)
    log.info(
        "transferred %d units from wallet %d to %d by %s",
        amount,
        from_wallet_id,
        to_wallet_id,
        actor_id,
    )
    return source, target


@dataclass(frozen=True, slots=True)
class PaymentCredit:
    payment: Payment
    wallet: Wallet
    credited: bool  # False: this charge id was credited before (Telegram redelivered it)


async def credit_stars_payment(
    db: Database,
    *,
    wallet_id: int,
    user_id: int,
    telegram_payment_charge_id: str,
    stars: int,
    amount_units: int,
    payload: str,
) -> PaymentCredit:
    """Record a successful Stars payment and credit its wallet, exactly once per
    `telegram_payment_charge_id` however often the update arrives."""
    check_amount(stars)
    check_amount(amount_units)
    repo = Repo(db)
    async with db.transaction() as tx:
        await _wallet(repo, tx, wallet_id)
        payment = await repo.payments.create(
            tx,
            wallet_id=wallet_id,
            user_id=user_id,
            telegram_payment_charge_id=telegram_payment_charge_id,
            stars=stars,
            amount_units=amount_units,
            payload=payload,
        )
        credited = payment is not None
        if payment is None:
            payment = await repo.payments.get_by_charge_id(telegram_payment_charge_id, tx=tx)
            assert payment is not None
        else:
            await repo.ledger.append(
                tx,
                wallet_id,
                amount_units,
                "stars",
                payment_id=payment.id,
                actor_id=user_id,
                note=f"{stars} Stars",
            )
        wallet = await _wallet(repo, tx, payment.wallet_id)
    if credited:
        log.info("credited %d units for %d Stars to wallet %d", amount_units, stars, wallet_id)
    else:
        log.info("payment %s was already credited", payment.id)
    return PaymentCredit(payment=payment, wallet=wallet, credited=credited)


def day_start(now: float | None = None) -> float:
    """Midnight UTC of the current day (the group member limit resets then)."""
    current = time.time() if now is None else now
    return current - (current % 86_400)
