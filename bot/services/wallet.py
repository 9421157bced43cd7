"""Wallets: the personal wallet of a user and the wallet of a group, created on first use.

Money itself moves only through `bot.services.money`; this module finds or opens wallets.
"""

from __future__ import annotations

import logging

from bot.services import money
from storage.models import Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)


async def get_or_create_user_wallet(
    repo: Repo, user_id: int, *, sandbox_bonus_units: int = 0
) -> Wallet:
    """The user's personal wallet. A new wallet in sandbox mode starts with play money,
    credited in the same transaction that creates it, so it is given exactly once."""
    existing = await repo.wallets.get_by_owner("user", user_id)
    if existing is not None:
        return existing
    async with repo.db.transaction() as tx:
        wallet, created = await repo.wallets.get_or_create(tx, "user", user_id)
        if created and sandbox_bonus_units > 0:
            moved = await money.credit(
                repo,
                wallet.id,
                sandbox_bonus_units,
                kind="sandbox_bonus",
                actor_id=user_id,
                note="sandbox start balance",
                tx=tx,
            )
            wallet = moved.wallet
    return wallet


async def get_or_create_group_wallet(repo: Repo, chat_id: int) -> Wallet:
    existing = await repo.wallets.get_by_owner("group", chat_id)
    if existing is not None:
        return existing
    async with repo.db.transaction() as tx:
        wallet, _ = await repo.wallets.get_or_create(tx, "group", chat_id)
    return wallet
