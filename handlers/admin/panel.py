"""The panel's home: `/admin`, `/stats` and the stats screen, and the job that checks the
upstream balance in the background and alerts the admins when it runs low."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from apscheduler.schedulers.base import BaseScheduler

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.services import admin as admin_service
from bot.telegram.admin_alerts import (
    LOW_BALANCE_CHECK_SECONDS,
    LOW_BALANCE_FIRST_CHECK_SECONDS,
    LOW_BALANCE_JOB_ID,
    low_balance_check,
)
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import button, markup
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.replies import edit_or_send
from storage.repo import Repo

logger = logging.getLogger(__name__)


def home_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return markup(
        [
            [
                button(t.plain("admin-stats-button"), AdminCb(action=AdminAction.STATS)),
                button(t.plain("admin-find-button"), AdminCb(action=AdminAction.FIND)),
            ],
            [
                button(t.plain("admin-broadcast-button"), AdminCb(action=AdminAction.BROADCAST)),
                button(t.plain("admin-markup-button"), AdminCb(action=AdminAction.MARKUP)),
            ],
            [
                button(t.plain("admin-export-button"), AdminCb(action=AdminAction.EXPORT)),
                button(
                    t.plain("admin-maintenance-button"), AdminCb(action=AdminAction.MAINTENANCE)
                ),
            ],
            [button(t.plain("admin-promo-button"), AdminCb(action=AdminAction.PROMO))],
        ]
    )


def stats_text(t: Translator, stats: admin_service.Stats, settings: Settings) -> str:
    lines = [
        t(
            "admin-stats",
            users=stats.users,
            reachable=stats.active_users,
            active=stats.active_activations,
            today_count=stats.today.count,
            today_revenue=t.usd(stats.today.revenue_units),
            today_cost=t.usd(stats.today.cost_units),
            today_margin=t.usd(stats.today_margin),
            month_count=stats.month.count,
            month_revenue=t.usd(stats.month.revenue_units),
            month_cost=t.usd(stats.month.cost_units),
            month_margin=t.usd(stats.month_margin),
            held=t.usd(stats.user_balances),
        )
    ]
    sources = [
        t.plain("admin-stats-source", kind=t.plain(f"ledger-kind-{kind}"), amount=t.usd(units))
        for kind, units in stats.month_credits.items()
    ]
    lines.append(
        t("admin-stats-sources", sources=" · ".join(sources) or t.plain("admin-stats-no-credits"))
    )
    lines.append(
        t(
            "admin-stats-referrals",
            friends=stats.referred_users,
            earned=t.usd(stats.referral_earned),
            codes=stats.promo_codes,
        )
    )
    if stats.upstream_balance is None:
        lines.append(t("admin-upstream-unavailable"))
    else:
        lines.append(t("admin-upstream", balance=t.usd(stats.upstream_balance)))
        if stats.upstream_balance < settings.low_balance_alert_units:
            lines.append(t("admin-upstream-low", threshold=t.usd(settings.low_balance_alert_units)))
    return "\n".join(lines)


async def home_view(
    t: Translator, repo: Repo, client: DaisySimClient, settings: Settings
) -> tuple[str, InlineKeyboardMarkup]:
    stats = await admin_service.collect_stats(repo, client)
    text = f"{t('admin-title')}\n\n{stats_text(t, stats, settings)}"
    return text, home_keyboard(t)


async def schedule_balance_check(
    scheduler: BaseScheduler,
    repo: Repo,
    daisysim: DaisySimClient,
    settings: Settings,
    notifier: TelegramNotifier,
) -> None:
    async def job() -> None:
        try:
            await low_balance_check(repo, daisysim, settings, notifier)
        except Exception:
            logger.exception("the upstream balance check failed")

    scheduler.add_job(
        job,
        "interval",
        seconds=LOW_BALANCE_CHECK_SECONDS,
        id=LOW_BALANCE_JOB_ID,
        name="alert admins when the upstream balance is low",
        max_instances=1,
        coalesce=True,
        replace_existing=True,
        next_run_time=datetime.fromtimestamp(time.time() + LOW_BALANCE_FIRST_CHECK_SECONDS, UTC),
    )


async def admin_command(
    message: Message,
    state: FSMContext,
    t: Translator,
    repo: Repo,
    daisysim: DaisySimClient,
    settings: Settings,
) -> None:
    await state.clear()
    text, keyboard = await home_view(t, repo, daisysim, settings)
    await message.answer(text, reply_markup=keyboard)


async def stats_command(
    message: Message, t: Translator, repo: Repo, daisysim: DaisySimClient, settings: Settings
) -> None:
    text, keyboard = await home_view(t, repo, daisysim, settings)
    await message.answer(text, reply_markup=keyboard)


async def home(
    query: CallbackQuery,
    state: FSMContext,
    t: Translator,
    repo: Repo,
    daisysim: DaisySimClient,
    settings: Settings,
) -> None:
    await state.clear()
    text, keyboard = await home_view(t, repo, daisysim, settings)
    await edit_or_send(query, text, keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.startup.register(schedule_balance_check)
    router.message.register(admin_command, Command("admin"))
    router.message.register(stats_command, Command("stats"))
    router.callback_query.register(
        home, AdminCb.filter(F.action.in_({AdminAction.HOME, AdminAction.STATS}))
    )
    return router
