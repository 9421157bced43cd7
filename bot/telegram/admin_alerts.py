"""The admins' alert about the upstream account running low: a periodic check (running out,
INSUFFICIENT_BALANCE, is reported by the buy path and the purchase queue)."""

from __future__ import annotations

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.services import admin as admin_service
from bot.telegram.notifier import TelegramNotifier
from storage.repo import Repo

LOW_BALANCE_JOB_ID = "low-balance-alert"
LOW_BALANCE_CHECK_SECONDS = 300.0
# The first check soon after start-up, not a whole interval later.
LOW_BALANCE_FIRST_CHECK_SECONDS = 10.0


async def low_balance_check(
    repo: Repo, client: DaisySimClient, settings: Settings, notifier: TelegramNotifier
) -> admin_service.BalanceCheck:
    """One look at the upstream balance; admins are alerted once per low episode."""
    return await admin_service.check_upstream_balance(repo, client, settings, notifier)
