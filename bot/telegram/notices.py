"""Notice hooks for the money functions: the owner's message, queued in the outbox inside the
transaction that moved the money, so it commits with the money or not at all."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.services.money import Movement, NoticeHook, StarsNoticeHook
from bot.telegram.outbox import enqueue
from storage.db import Transaction
from storage.models import Payment, Wallet
from storage.repo import Repo

Payload = Mapping[str, Any]


def movement_notice(
    repo: Repo, chat_id: int, render: Callable[[Movement], Payload], *, dedupe: str
) -> NoticeHook:
    """One message per ledger entry (`dedupe:<entry id>`), however often the update comes."""

    async def hook(tx: Transaction, moved: Movement) -> None:
        assert moved.entry is not None  # hooks run only when money moved
        key = f"{dedupe}:{moved.entry.id}"
        await enqueue(repo, chat_id, "notice", render(moved), dedupe_key=key, tx=tx)

    return hook


def payment_notice(
    repo: Repo, chat_id: int, render: Callable[[Wallet, Payment], Payload], *, dedupe: str
) -> StarsNoticeHook:
    """One message per payment (`dedupe:<payment id>`): a Stars credit or its refund."""

    async def hook(tx: Transaction, wallet: Wallet, payment: Payment) -> None:
        key = f"{dedupe}:{payment.id}"
        await enqueue(repo, chat_id, "notice", render(wallet, payment), dedupe_key=key, tx=tx)

    return hook
