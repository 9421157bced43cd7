"""Group wallets: created when the bot joins a group, funded by its admins, spent by members
within a per-member daily limit.

Who is a group admin is Telegram's to say (the handlers ask `getChatMember`); these functions
take that answer as given and only do the bookkeeping. The limit itself is enforced by the
purchase service, in the same transaction as the hold (`PurchaseRequest.member_daily_limit`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Final

from bot.services import money
from bot.services.errors import InsufficientFunds, InvalidAmount, WalletNotFound
from bot.services.money import Movement, NoticeHook, check_amount, day_start
from bot.services.topup import BadAmount
from storage.models import Chat, MemberSpending, Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)

GROUP_CHAT_TYPES: Final = frozenset({"group", "supergroup"})
# A member limit above this is a typo, not a policy.
MAX_LIMIT_UNITS: Final = 10_000 * 10_000
MONTH_SECONDS: Final = 30 * 86_400


def is_group(chat_type: str) -> bool:
    return chat_type in GROUP_CHAT_TYPES


async def ensure_group(
    repo: Repo, chat_id: int, *, chat_type: str, title: str | None
) -> tuple[Chat, Wallet, bool]:
    """Record the group and its wallet (once); returns (chat, wallet, wallet_created)."""
    if not is_group(chat_type):
        raise ValueError(f"chat {chat_id} is a {chat_type}, not a group")
    async with repo.db.transaction() as tx:
        chat = await repo.chats.upsert(chat_id, type=chat_type, title=title, tx=tx)
        wallet, created = await repo.wallets.get_or_create(tx, "group", chat_id)
    if created:
        log.info("group %d: wallet %d created", chat_id, wallet.id)
    return chat, wallet, created


async def group_wallet(repo: Repo, chat_id: int) -> Wallet | None:
    return await repo.wallets.get_by_owner("group", chat_id)


async def fund_group(
    repo: Repo,
    *,
    chat_id: int,
    from_user_id: int,
    amount_units: int,
    key: str,
    notice: NoticeHook | None = None,
) -> Movement:
    """Move money from a member's personal wallet to the group's, once per `key`
    (`money.transfer`: `wallet` is the member's after, `counterparty` the group's).
    InsufficientFunds (nothing changed) when the personal wallet cannot pay."""
    amount = check_amount(amount_units)
    target = await repo.wallets.get_by_owner("group", chat_id)
    if target is None:
        raise WalletNotFound(chat_id)
    source = await repo.wallets.get_by_owner("user", from_user_id)
    if source is None:
        raise InsufficientFunds(needed=amount, balance=0)
    moved = await money.transfer(
        repo,
        source.id,
        target.id,
        amount,
        actor_id=from_user_id,
        note=f"group {chat_id} funded by {from_user_id}",
        key=f"fund:{key}",
        notice=notice,
    )
    if not moved.duplicate:
        log.info(
            "group %d funded with %d units from wallet %d by %d",
            chat_id,
            amount,
            source.id,
            from_user_id,
        )
    return moved


def check_limit(units: int | None) -> int | None:
    """A member daily limit: None (no limit), 0 (members cannot buy) or a positive amount."""
    if units is None:
        return None
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise InvalidAmount(units)
    if units > MAX_LIMIT_UNITS:
        raise BadAmount(str(units), "too_large", max_units=MAX_LIMIT_UNITS)
    return units


async def set_member_limit(repo: Repo, chat_id: int, units: int | None) -> Chat:
    limit = check_limit(units)
    async with repo.db.transaction() as tx:
        if not await repo.chats.set_member_daily_limit(chat_id, limit, tx=tx):
            raise WalletNotFound(chat_id)
        chat = await repo.chats.get(chat_id, tx=tx)
    assert chat is not None
    log.info("group %d: member daily limit set to %s", chat_id, limit)
    return chat


async def migrate_group(
    repo: Repo, old_chat_id: int, new_chat_id: int, *, title: str | None
) -> int:
    """A group upgraded to a supergroup (Telegram gives it a new id): open the new group's
    wallet, move the old one's balance there as a transfer and keep its member limit, all
    in one transaction. Returns the units moved; 0 when there was nothing (or it was done
    before: the old wallet is empty afterwards)."""
    async with repo.db.transaction() as tx:
        old_chat = await repo.chats.get(old_chat_id, tx=tx)
        new_chat = await repo.chats.upsert(new_chat_id, type="supergroup", title=title, tx=tx)
        if old_chat is not None and new_chat.member_daily_limit_units is None:
            await repo.chats.set_member_daily_limit(
                new_chat_id, old_chat.member_daily_limit_units, tx=tx
            )
        target, _ = await repo.wallets.get_or_create(tx, "group", new_chat_id)
        source = await repo.wallets.get_by_owner("group", old_chat_id, tx=tx)
        if source is None or source.balance <= 0:
            return 0
        note = f"group {old_chat_id} became supergroup {new_chat_id}"
        await money.transfer(
            repo, source.id, target.id, source.balance, actor_id=None, note=note, tx=tx
        )
    log.info("%s: %d units moved", note, source.balance)
    return source.balance


@dataclass(frozen=True, slots=True)
class MemberToday:
    limit: int | None
    spent: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.spent)


async def member_today(
    repo: Repo, chat: Chat, wallet: Wallet, user_id: int, *, now: float | None = None
) -> MemberToday:
    spent = await repo.activations.member_spent(wallet.id, user_id, day_start(now))
    return MemberToday(limit=chat.member_daily_limit_units, spent=spent)


@dataclass(frozen=True, slots=True)
class GroupSpending:
    chat: Chat
    wallet: Wallet
    today: list[MemberSpending]
    month: list[MemberSpending]
    funded_month: int  # what came in over the last 30 days (transfers and Stars)

    @property
    def today_units(self) -> int:
        return sum(m.units for m in self.today)

    @property
    def month_units(self) -> int:
        return sum(m.units for m in self.month)


async def spending(repo: Repo, chat_id: int, *, now: float | None = None) -> GroupSpending | None:
    current = time.time() if now is None else now
    chat = await repo.chats.get(chat_id)
    wallet = await group_wallet(repo, chat_id)
    if chat is None or wallet is None:
        return None
    since = current - MONTH_SECONDS
    totals = await repo.ledger.totals_by_kind(since=since, wallet_id=wallet.id)
    funded = sum(totals.get(kind, 0) for kind in ("transfer_in", "stars", "crypto", "topup"))
    return GroupSpending(
        chat=chat,
        wallet=wallet,
        today=await repo.activations.spending_by_member(wallet.id, day_start(current)),
        month=await repo.activations.spending_by_member(wallet.id, since),
        funded_month=funded,
    )


__all__ = [
    "GROUP_CHAT_TYPES",
    "MAX_LIMIT_UNITS",
    "GroupSpending",
    "MemberToday",
    "check_limit",
    "ensure_group",
    "fund_group",
    "group_wallet",
    "is_group",
    "member_today",
    "migrate_group",
    "set_member_limit",
    "spending",
]
