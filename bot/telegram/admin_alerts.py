"""The admins' alerts about the upstream account: its balance running low (a periodic check)
and running out (a purchase rejected with INSUFFICIENT_BALANCE)."""

from __future__ import annotations

from typing import Any

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import format_usd
from bot.services import admin as admin_service
from bot.telegram.i18n import I18n
from bot.telegram.outbox import OutboxSender, message_payload
from storage.db import Database

LOW_BALANCE_JOB_ID = "low-balance-alert"
LOW_BALANCE_CHECK_SECONDS = 300.0
# The first check soon after start-up, not a whole interval later.
LOW_BALANCE_FIRST_CHECK_SECONDS = 10.0


async def low_balance_check(
    db: Database,
    client: DaisySimClient,
    settings: Settings,
    i18n: I18n,
    outbox: OutboxSender | None,
) -> admin_service.BalanceCheck:
    """One look at the upstream balance; admins are alerted once per low episode."""

    def payload(admin_id: int, lang: str | None, balance: int) -> dict[str, Any]:
        t = i18n.translator(lang)
        text = t(
            "admin-alert-low-balance",
            balance=format_usd(balance),
            threshold=format_usd(settings.low_balance_alert_units),
        )
        return message_payload(text)

    check = await admin_service.check_upstream_balance(db, client, settings, payload)
    if check.alerted and outbox is not None:
        outbox.wake()
    return check


async def alert_upstream_exhausted(
    db: Database, settings: Settings, i18n: I18n, outbox: OutboxSender | None
) -> None:
    """INSUFFICIENT_BALANCE from the upstream: tell the admins (once an hour at most)."""
    queued = await admin_service.alert_upstream_exhausted(db, settings, i18n)
    if queued and outbox is not None:
        outbox.wake()
