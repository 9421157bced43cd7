"""The maintenance switch: on for a while (the estimate users see) or until turned off, and
off again; the screen says when MAINTENANCE=1 forces it on."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup

from bot.services.maintenance import DURATIONS_MINUTES, Maintenance, MaintenanceStatus
from bot.telegram.admin_views import back_home
from bot.telegram.callbacks import AdminAction, AdminCb
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import Rows, button, markup
from bot.telegram.replies import edit_or_send


def maintenance_text(t: Translator, status: MaintenanceStatus) -> str:
    if not status.on:
        lines = [t("admin-maintenance-off")]
    elif status.until is not None and not status.forced:
        lines = [
            t(
                "admin-maintenance-on-until",
                until=t.when(status.until),
                minutes=status.minutes_left or 1,
            )
        ]
    else:
        lines = [t("admin-maintenance-on-manual")]
    if status.forced:
        lines.append(t("admin-maintenance-forced"))
    else:
        lines.append(t("admin-maintenance-pick"))
    return "\n\n".join(lines)


def maintenance_keyboard(t: Translator, status: MaintenanceStatus) -> InlineKeyboardMarkup:
    rows: Rows = []
    if not status.forced:
        durations = [
            button(
                t.plain("admin-maintenance-minutes-button", minutes=minutes),
                AdminCb(action=AdminAction.MAINTENANCE_ON, units=minutes),
            )
            for minutes in DURATIONS_MINUTES
        ]
        rows += [durations[:2], durations[2:]]
        manual = AdminCb(action=AdminAction.MAINTENANCE_ON, units=0)
        rows.append([button(t.plain("admin-maintenance-manual-button"), manual)])
        if status.on:
            off = AdminCb(action=AdminAction.MAINTENANCE_OFF)
            rows.append([button(t.plain("admin-maintenance-off-button"), off)])
    rows.append(back_home(t))
    return markup(rows)


async def show(query: CallbackQuery, t: Translator, maintenance: Maintenance) -> None:
    status = await maintenance.status()
    await edit_or_send(query, maintenance_text(t, status), maintenance_keyboard(t, status))


async def turn_on(
    query: CallbackQuery, callback_data: AdminCb, t: Translator, maintenance: Maintenance
) -> None:
    minutes = callback_data.units
    if maintenance.forced or (minutes != 0 and minutes not in DURATIONS_MINUTES):
        # Forged data: only the durations the screen offers. While MAINTENANCE=1 it offers
        # none: a button from an older screen would store a switch the forced screen does not
        # show, and it would keep the shop closed after MAINTENANCE=1 is unset.
        await show(query, t, maintenance)
        return
    status = await maintenance.turn_on(None if minutes == 0 else minutes)
    text = f"{t('admin-maintenance-saved')}\n\n{maintenance_text(t, status)}"
    await edit_or_send(query, text, maintenance_keyboard(t, status))


async def turn_off(query: CallbackQuery, t: Translator, maintenance: Maintenance) -> None:
    status = await maintenance.turn_off()
    text = f"{t('admin-maintenance-saved')}\n\n{maintenance_text(t, status)}"
    await edit_or_send(query, text, maintenance_keyboard(t, status))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(show, AdminCb.filter(F.action == AdminAction.MAINTENANCE))
    router.callback_query.register(turn_on, AdminCb.filter(F.action == AdminAction.MAINTENANCE_ON))
    router.callback_query.register(
        turn_off, AdminCb.filter(F.action == AdminAction.MAINTENANCE_OFF)
    )
    return router
