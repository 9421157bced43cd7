"""The bot admins' panel (`/admin`, ADMIN_IDS only): stats and the upstream balance, user
lookup with top-up, ban and unban, Stars refunds, broadcasts, the markup and the ledger export.

The router's filter lets only admins in, in private chats: for anyone else `/admin`,
`/topup` and the rest fall through to the catch-all, which answers them like any unknown
command, and an admin button pressed by someone else is just a stale button. Every button
is checked again by that filter (ADMIN_IDS), never trusted from its data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject, Filter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from aiogram.types import User as TgUser
from aiogram.utils.callback_answer import CallbackAnswer
from apscheduler.schedulers.base import BaseScheduler

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import format_usd
from bot.services import admin as admin_service
from bot.services.errors import InsufficientFunds
from bot.services.topup import (
    AlreadyRefundedUpstream,
    BadAmount,
    Notice,
    PaymentNotFound,
    RefundPending,
    RefundRefused,
    TelegramRefund,
    admin_topup,
    find_payment,
    parse_amount,
    refund_stars_payment,
)
from bot.telegram.callbacks import AdminAction, AdminCb, new_nonce
from bot.telegram.i18n import I18n, Translator
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.outbox import OutboxSender, message_payload
from bot.telegram.texts import format_date
from handlers.common import edit_or_send
from handlers.topup import preset_units
from storage.db import Database
from storage.models import Payment, User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)

LOW_BALANCE_JOB_ID = "low-balance-alert"
LOW_BALANCE_CHECK_SECONDS = 300.0
# The first check soon after start-up, not a whole interval later.
LOW_BALANCE_FIRST_CHECK_SECONDS = 10.0
PAYMENTS_SHOWN = 8


class IsAdmin(Filter):
    """The update comes from one of ADMIN_IDS."""

    async def __call__(
        self, event: TelegramObject, settings: Settings, event_from_user: TgUser | None = None
    ) -> bool:
        return admin_service.is_admin(settings, event_from_user.id if event_from_user else None)


class AdminStates(StatesGroup):
    find_user = State()
    topup_amount = State()  # data: user_id
    broadcast_text = State()
    markup_value = State()


# --- rendering ----------------------------------------------------------------------------


def _btn(
    text: str, action: AdminAction, *, id: int = 0, units: int = 0, nonce: str = ""
) -> InlineKeyboardButton:
    data = AdminCb(action=action, id=id, units=units, nonce=nonce).pack()
    return InlineKeyboardButton(text=text, callback_data=data)


def _kb(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def home_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return _kb(
        [
            [
                _btn(t.plain("admin-stats-button"), AdminAction.STATS),
                _btn(t.plain("admin-find-button"), AdminAction.FIND),
            ],
            [
                _btn(t.plain("admin-broadcast-button"), AdminAction.BROADCAST),
                _btn(t.plain("admin-markup-button"), AdminAction.MARKUP),
            ],
            [_btn(t.plain("admin-export-button"), AdminAction.EXPORT)],
        ]
    )


def back_home(t: Translator) -> list[InlineKeyboardButton]:
    return [_btn(t.plain("admin-home-button"), AdminAction.HOME)]


def stats_text(t: Translator, stats: admin_service.Stats, settings: Settings) -> str:
    lines = [
        t(
            "admin-stats",
            users=stats.users,
            reachable=stats.active_users,
            active=stats.active_activations,
            today_count=stats.today.count,
            today_revenue=format_usd(stats.today.revenue_units),
            today_cost=format_usd(stats.today.cost_units),
            today_margin=format_usd(stats.today_margin),
            month_count=stats.month.count,
            month_revenue=format_usd(stats.month.revenue_units),
            month_cost=format_usd(stats.month.cost_units),
            month_margin=format_usd(stats.month_margin),
            held=format_usd(stats.user_balances),
        )
    ]
    if stats.upstream_balance is None:
        lines.append(t("admin-upstream-unavailable"))
    else:
        lines.append(t("admin-upstream", balance=format_usd(stats.upstream_balance)))
        if stats.upstream_balance < settings.low_balance_alert_units:
            lines.append(
                t("admin-upstream-low", threshold=format_usd(settings.low_balance_alert_units))
            )
    return "\n".join(lines)


async def home_view(
    t: Translator, repo: Repo, client: DaisySimClient, settings: Settings
) -> tuple[str, InlineKeyboardMarkup]:
    stats = await admin_service.collect_stats(repo, client)
    text = f"{t('admin-title')}\n\n{stats_text(t, stats, settings)}"
    return text, home_keyboard(t)


def _user_status(t: Translator, user: User) -> str:
    if user.banned:
        return t.plain("admin-user-banned")
    if user.inactive:
        return t.plain("admin-user-inactive")
    return t.plain("admin-user-active")


async def card_view(
    t: Translator, repo: Repo, user_id: int, note: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    card = await admin_service.user_card(repo, user_id)
    if card is None:
        return t("admin-user-unknown", ref=str(user_id)), _kb([back_home(t)])
    user = card.user
    text = t(
        "admin-user-card",
        name=user.first_name or "—",
        username=f"@{user.username}" if user.username else "—",
        id=user.id,
        language=user.language or "—",
        joined=format_date(user.created_at),
        balance=format_usd(card.balance),
        purchases=card.purchases,
        payments=card.payments,
        status=_user_status(t, user),
    )
    if note:
        text = f"{note}\n\n{text}"
    ban = (
        _btn(t.plain("admin-unban-button"), AdminAction.UNBAN, id=user.id)
        if user.banned
        else _btn(t.plain("admin-ban-button"), AdminAction.BAN, id=user.id)
    )
    rows = [
        [_btn(t.plain("admin-topup-button"), AdminAction.TOPUP, id=user.id), ban],
        [_btn(t.plain("admin-payments-button"), AdminAction.PAYMENTS, id=user.id)],
        back_home(t),
    ]
    return text, _kb(rows)


def topup_amounts_keyboard(t: Translator, user_id: int) -> InlineKeyboardMarkup:
    amounts = [
        _btn(format_usd(units), AdminAction.TOPUP_AMOUNT, id=user_id, units=units)
        for units in preset_units()
    ]
    return _kb(
        [
            amounts[:2],
            amounts[2:],
            [_btn(t.plain("admin-topup-other-button"), AdminAction.TOPUP_OTHER, id=user_id)],
            [_btn(t.plain("admin-back-button"), AdminAction.USER, id=user_id)],
        ]
    )


def topup_confirm(t: Translator, user: User, units: int) -> tuple[str, InlineKeyboardMarkup]:
    text = t("admin-topup-confirm", name=user.first_name, id=user.id, amount=format_usd(units))
    # The nonce makes this one button credit once, however often it is tapped.
    ok = _btn(
        t.plain("admin-confirm-button", amount=format_usd(units)),
        AdminAction.TOPUP_AMOUNT,
        id=user.id,
        units=units,
        nonce=new_nonce(),
    )
    return text, _kb([[ok], [_btn(t.plain("admin-back-button"), AdminAction.USER, id=user.id)]])


def _topup_notice(i18n: I18n, user: User, units: int) -> Callable[[Wallet], Notice]:
    t = i18n.translator(user.language)

    def notice(after: Wallet) -> Notice:
        text = t("topup-admin-notice", amount=format_usd(units), balance=format_usd(after.balance))
        return Notice(user.id, message_payload(text))

    return notice


def amount_problem(t: Translator, exc: BadAmount) -> str:
    return t(f"admin-amount-{exc.reason}", text=exc.text[:32], max=format_usd(exc.max_units))


def markup_text(t: Translator, current: admin_service.MarkupSetting) -> str:
    markup = current.markup
    return t(
        "admin-markup-text",
        percent=str(markup.percent),
        fixed=format_usd(markup.fixed_units),
        source=t.plain("admin-markup-stored" if current.stored else "admin-markup-env"),
        example=format_usd(markup.apply(10_000)),
    )


def markup_keyboard(t: Translator, stored: bool) -> InlineKeyboardMarkup:
    rows = []
    if stored:
        rows.append([_btn(t.plain("admin-markup-reset-button"), AdminAction.MARKUP_RESET)])
    rows.append(back_home(t))
    return _kb(rows)


def payment_line(t: Translator, payment: Payment) -> str:
    return t(
        "admin-payment-line",
        id=payment.id,
        date=format_date(payment.created_at),
        stars=payment.stars,
        amount=format_usd(payment.amount_units),
        status=t.plain(f"admin-payment-{payment.status}"),
    )


def telegram_refunder(bot: Bot) -> TelegramRefund:
    async def refund(payment: Payment) -> None:
        try:
            await bot.refund_star_payment(payment.user_id, payment.telegram_payment_charge_id)
        except TelegramBadRequest as exc:
            if "CHARGE_ALREADY_REFUNDED" in exc.message:
                raise AlreadyRefundedUpstream from exc
            raise RefundRefused(exc.message) from exc

    return refund


# --- the low-balance job ------------------------------------------------------------------


async def low_balance_check(
    db: Database, client: DaisySimClient, settings: Settings, notifier: TelegramNotifier
) -> admin_service.BalanceCheck:
    """One look at the upstream balance; admins are alerted once per low episode."""
    return await admin_service.check_upstream_balance(db, client, settings, notifier)


# --- the router ---------------------------------------------------------------------------


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private", IsAdmin())
    router.callback_query.filter(IsAdmin())

    @router.startup()
    async def schedule_balance_check(
        scheduler: BaseScheduler | None = None,
        db: Database | None = None,
        daisysim: DaisySimClient | None = None,
        settings: Settings | None = None,
        notifier: TelegramNotifier | None = None,
    ) -> None:
        if scheduler is None or db is None or daisysim is None or settings is None or not notifier:
            return  # a dispatcher built without the app's parts (a bare test): no job

        async def job() -> None:
            try:
                await low_balance_check(db, daisysim, settings, notifier)
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
            next_run_time=datetime.fromtimestamp(
                time.time() + LOW_BALANCE_FIRST_CHECK_SECONDS, UTC
            ),
        )

    # --- home and stats -------------------------------------------------------------------

    @router.message(Command("admin"))
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

    @router.message(Command("stats"))
    async def stats_command(
        message: Message, t: Translator, repo: Repo, daisysim: DaisySimClient, settings: Settings
    ) -> None:
        text, keyboard = await home_view(t, repo, daisysim, settings)
        await message.answer(text, reply_markup=keyboard)

    @router.callback_query(AdminCb.filter(F.action.in_({AdminAction.HOME, AdminAction.STATS})))
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

    # --- users ----------------------------------------------------------------------------

    @router.callback_query(AdminCb.filter(F.action == AdminAction.FIND))
    async def find_prompt(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
        await state.set_state(AdminStates.find_user)
        await edit_or_send(query, t("admin-find-prompt"), _kb([back_home(t)]))

    async def show_user(message: Message, t: Translator, repo: Repo, ref: str) -> None:
        try:
            user = await admin_service.find_user(repo, ref)
        except admin_service.UnknownUser:
            await message.answer(
                t("admin-user-unknown", ref=ref[:64]), reply_markup=_kb([back_home(t)])
            )
            return
        text, keyboard = await card_view(t, repo, user.id)
        await message.answer(text, reply_markup=keyboard)

    @router.message(AdminStates.find_user, F.text & ~F.text.startswith("/"))
    async def find_typed(message: Message, state: FSMContext, t: Translator, repo: Repo) -> None:
        await state.clear()
        await show_user(message, t, repo, message.text or "")

    @router.message(Command("user"))
    async def user_command(
        message: Message, command: CommandObject, t: Translator, repo: Repo
    ) -> None:
        if not command.args:
            await message.answer(t("admin-user-usage"))
            return
        await show_user(message, t, repo, command.args)

    @router.callback_query(AdminCb.filter(F.action == AdminAction.USER))
    async def user_button(
        query: CallbackQuery, callback_data: AdminCb, state: FSMContext, t: Translator, repo: Repo
    ) -> None:
        await state.clear()
        text, keyboard = await card_view(t, repo, callback_data.id)
        await edit_or_send(query, text, keyboard)

    async def ban(t: Translator, repo: Repo, settings: Settings, user_id: int, banned: bool) -> str:
        try:
            changed = await admin_service.set_banned(repo, settings, user_id, banned)
        except admin_service.CannotBanAdmin:
            return t("admin-ban-admin")
        if banned:
            return t("admin-banned" if changed else "admin-already-banned")
        return t("admin-unbanned" if changed else "admin-already-unbanned")

    @router.callback_query(AdminCb.filter(F.action.in_({AdminAction.BAN, AdminAction.UNBAN})))
    async def ban_button(
        query: CallbackQuery,
        callback_data: AdminCb,
        t: Translator,
        repo: Repo,
        settings: Settings,
    ) -> None:
        note = await ban(
            t, repo, settings, callback_data.id, callback_data.action == AdminAction.BAN
        )
        text, keyboard = await card_view(t, repo, callback_data.id, note)
        await edit_or_send(query, text, keyboard)

    @router.message(Command("ban", "unban"))
    async def ban_command(
        message: Message,
        command: CommandObject,
        t: Translator,
        repo: Repo,
        settings: Settings,
    ) -> None:
        if not command.args:
            await message.answer(t("admin-ban-usage"))
            return
        try:
            user = await admin_service.find_user(repo, command.args)
        except admin_service.UnknownUser:
            await message.answer(t("admin-user-unknown", ref=command.args[:64]))
            return
        note = await ban(t, repo, settings, user.id, command.command == "ban")
        text, keyboard = await card_view(t, repo, user.id, note)
        await message.answer(text, reply_markup=keyboard)

    # --- top-ups --------------------------------------------------------------------------

    async def do_topup(
        db: Database,
        i18n: I18n,
        t: Translator,
        user: User,
        units: int,
        admin: User,
        key: str,
        outbox: OutboxSender | None,
    ) -> str:
        repo = Repo(db)
        wallet = await repo.wallets.get_by_owner("user", user.id)
        if wallet is None:
            return t("admin-user-no-wallet", id=user.id)
        try:
            result = await admin_topup(
                db,
                wallet_id=wallet.id,
                amount_units=units,
                admin_id=admin.id,
                key=key,
                notice=_topup_notice(i18n, user, units),
            )
        except BadAmount as exc:
            return amount_problem(t, exc)
        if result.duplicate:
            return t("admin-topup-duplicate")
        if outbox is not None:
            outbox.wake()
        return t(
            "admin-topup-done",
            name=user.first_name,
            amount=format_usd(units),
            balance=format_usd(result.wallet.balance),
        )

    @router.message(Command("topup"))
    async def topup_command(
        message: Message,
        command: CommandObject,
        db: Database,
        repo: Repo,
        i18n: I18n,
        t: Translator,
        user: User,
        outbox: OutboxSender | None = None,
    ) -> None:
        parts = (command.args or "").split()
        if len(parts) != 2:
            await message.answer(t("admin-topup-usage"))
            return
        ref, amount_text = parts
        try:
            units = parse_amount(amount_text)
        except BadAmount as exc:
            await message.answer(amount_problem(t, exc))
            return
        try:
            target = await admin_service.find_user(repo, ref)
        except admin_service.UnknownUser:
            await message.answer(t("admin-user-unknown", ref=ref[:64]))
            return
        # Telegram may deliver one command twice; its message id makes it one top-up.
        key = f"cmd:{message.chat.id}:{message.message_id}"
        await message.answer(await do_topup(db, i18n, t, target, units, user, key, outbox))

    @router.callback_query(AdminCb.filter(F.action == AdminAction.TOPUP))
    async def topup_amounts(
        query: CallbackQuery, callback_data: AdminCb, t: Translator, repo: Repo
    ) -> None:
        target = await repo.users.get(callback_data.id)
        if target is None:
            await edit_or_send(query, t("admin-user-unknown", ref=str(callback_data.id)))
            return
        await edit_or_send(
            query,
            t("admin-topup-choose", name=target.first_name, id=target.id),
            topup_amounts_keyboard(t, target.id),
        )

    @router.callback_query(AdminCb.filter(F.action == AdminAction.TOPUP_OTHER))
    async def topup_other(
        query: CallbackQuery, callback_data: AdminCb, state: FSMContext, t: Translator
    ) -> None:
        await state.set_state(AdminStates.topup_amount)
        await state.update_data(user_id=callback_data.id)
        await edit_or_send(
            query,
            t("admin-topup-prompt"),
            _kb([[_btn(t.plain("admin-back-button"), AdminAction.USER, id=callback_data.id)]]),
        )

    @router.message(AdminStates.topup_amount, F.text & ~F.text.startswith("/"))
    async def topup_typed(message: Message, state: FSMContext, t: Translator, repo: Repo) -> None:
        data = await state.get_data()
        target = await repo.users.get(int(data.get("user_id", 0)))
        if target is None:
            await state.clear()
            await message.answer(t("admin-user-unknown", ref=str(data.get("user_id"))))
            return
        try:
            units = parse_amount(message.text or "")
        except BadAmount as exc:
            # Stay in the state: the next line is another try.
            await message.answer(amount_problem(t, exc))
            return
        await state.clear()
        text, keyboard = topup_confirm(t, target, units)
        await message.answer(text, reply_markup=keyboard)

    @router.callback_query(AdminCb.filter(F.action == AdminAction.TOPUP_AMOUNT))
    async def topup_amount(
        query: CallbackQuery,
        callback_data: AdminCb,
        db: Database,
        repo: Repo,
        i18n: I18n,
        t: Translator,
        user: User,
        callback_answer: CallbackAnswer,
        outbox: OutboxSender | None = None,
    ) -> None:
        target = await repo.users.get(callback_data.id)
        if target is None:
            await edit_or_send(query, t("admin-user-unknown", ref=str(callback_data.id)))
            return
        units = callback_data.units
        if not callback_data.nonce:
            text, keyboard = topup_confirm(t, target, units)
            await edit_or_send(query, text, keyboard)
            return
        key = f"btn:{user.id}:{callback_data.nonce}"
        note = await do_topup(db, i18n, t, target, units, user, key, outbox)
        callback_answer.text = t.plain("admin-done")
        text, keyboard = await card_view(t, repo, target.id, note)
        await edit_or_send(query, text, keyboard)

    # --- Stars payments and refunds -------------------------------------------------------

    async def payments_view(
        t: Translator, repo: Repo, user_id: int, note: str | None = None
    ) -> tuple[str, InlineKeyboardMarkup]:
        payments = await repo.payments.list_for_user(user_id, limit=PAYMENTS_SHOWN)
        if payments:
            body = "\n".join(payment_line(t, p) for p in payments)
        else:
            body = t("admin-payments-none")
        text = f"{t('admin-payments-title', id=user_id)}\n{body}"
        if note:
            text = f"{note}\n\n{text}"
        rows = [
            [
                _btn(
                    t.plain("admin-refund-button", id=p.id, stars=p.stars),
                    AdminAction.REFUND,
                    id=p.id,
                )
            ]
            for p in payments
            if p.status == "paid"
        ]
        rows.append([_btn(t.plain("admin-back-button"), AdminAction.USER, id=user_id)])
        return text, _kb(rows)

    @router.callback_query(AdminCb.filter(F.action == AdminAction.PAYMENTS))
    async def payments_button(
        query: CallbackQuery, callback_data: AdminCb, t: Translator, repo: Repo
    ) -> None:
        text, keyboard = await payments_view(t, repo, callback_data.id)
        await edit_or_send(query, text, keyboard)

    def refund_confirm(t: Translator, payment: Payment) -> tuple[str, InlineKeyboardMarkup]:
        text = t(
            "admin-refund-confirm",
            id=payment.id,
            stars=payment.stars,
            amount=format_usd(payment.amount_units),
            user=payment.user_id,
        )
        ok = _btn(t.plain("admin-refund-ok-button"), AdminAction.REFUND_OK, id=payment.id)
        back = _btn(t.plain("admin-back-button"), AdminAction.PAYMENTS, id=payment.user_id)
        return text, _kb([[ok], [back]])

    @router.callback_query(AdminCb.filter(F.action == AdminAction.REFUND))
    async def refund_button(
        query: CallbackQuery, callback_data: AdminCb, t: Translator, repo: Repo
    ) -> None:
        payment = await repo.payments.get(callback_data.id)
        if payment is None:
            await edit_or_send(query, t("admin-payment-unknown"), _kb([back_home(t)]))
            return
        text, keyboard = refund_confirm(t, payment)
        await edit_or_send(query, text, keyboard)

    @router.message(Command("refund"))
    async def refund_command(
        message: Message, command: CommandObject, t: Translator, repo: Repo
    ) -> None:
        payment = await find_payment(repo, command.args or "") if command.args else None
        if payment is None:
            await message.answer(t("admin-refund-usage"))
            return
        text, keyboard = refund_confirm(t, payment)
        await message.answer(text, reply_markup=keyboard)

    async def do_refund(
        bot: Bot,
        db: Database,
        i18n: I18n,
        t: Translator,
        payment_id: int,
        admin: User,
        outbox: OutboxSender | None,
    ) -> str:
        repo = Repo(db)
        payment = await repo.payments.get(payment_id)
        if payment is None:
            return t("admin-payment-unknown")
        payer = await repo.users.get(payment.user_id)
        pt = i18n.translator(payer.language if payer else None)
        wallet = await repo.wallets.get(payment.wallet_id)
        in_group = wallet is not None and wallet.owner_kind == "group"
        chat_id = wallet.owner_id if wallet is not None and in_group else payment.user_id

        def notice(after: Wallet, done: Payment) -> Notice:
            text = pt(
                "topup-refunded",
                stars=done.stars,
                amount=format_usd(done.amount_units),
                balance=format_usd(after.balance),
            )
            return Notice(chat_id, message_payload(text))

        try:
            result = await refund_stars_payment(
                db,
                payment_id,
                actor_id=admin.id,
                telegram_refund=telegram_refunder(bot),
                notice=notice,
            )
        except PaymentNotFound:
            return t("admin-payment-unknown")
        except InsufficientFunds as exc:
            return t(
                "admin-refund-no-funds",
                amount=format_usd(exc.needed),
                balance=format_usd(exc.balance),
            )
        except RefundRefused as exc:
            return t("admin-refund-refused", reason=exc.message)
        except RefundPending:
            return t("admin-refund-pending")
        if outbox is not None:
            outbox.wake()
        if result.outcome == "already":
            return t("admin-refund-already", id=payment_id)
        return t(
            "admin-refund-done",
            id=payment_id,
            stars=result.payment.stars,
            amount=format_usd(result.payment.amount_units),
            balance=format_usd(result.wallet.balance),
        )

    @router.callback_query(AdminCb.filter(F.action == AdminAction.REFUND_OK))
    async def refund_ok(
        query: CallbackQuery,
        callback_data: AdminCb,
        bot: Bot,
        db: Database,
        repo: Repo,
        i18n: I18n,
        t: Translator,
        user: User,
        outbox: OutboxSender | None = None,
    ) -> None:
        note = await do_refund(bot, db, i18n, t, callback_data.id, user, outbox)
        payment = await repo.payments.get(callback_data.id)
        if payment is None:
            await edit_or_send(query, note, _kb([back_home(t)]))
            return
        text, keyboard = await payments_view(t, repo, payment.user_id, note)
        await edit_or_send(query, text, keyboard)

    # --- broadcasts -----------------------------------------------------------------------

    @router.callback_query(AdminCb.filter(F.action == AdminAction.BROADCAST))
    async def broadcast_prompt(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
        await state.set_state(AdminStates.broadcast_text)
        await edit_or_send(query, t("admin-broadcast-prompt"), _kb([back_home(t)]))

    async def preview(message: Message, t: Translator, repo: Repo, html_text: str) -> None:
        try:
            draft = await admin_service.draft_broadcast(repo, message.chat.id, html_text)
        except admin_service.BroadcastTooLong:
            await message.answer(t("admin-broadcast-too-long"))
            return
        recipients = len(await admin_service.broadcast_recipients(repo, message.chat.id))
        await message.answer(t("admin-broadcast-preview", count=recipients))
        keyboard = _kb(
            [
                [
                    _btn(
                        t.plain("admin-broadcast-send-button", count=recipients),
                        AdminAction.BROADCAST_SEND,
                        id=draft.id,
                    )
                ],
                [
                    _btn(
                        t.plain("admin-broadcast-cancel-button"),
                        AdminAction.BROADCAST_CANCEL,
                        id=draft.id,
                    )
                ],
            ]
        )
        try:
            await message.answer(draft.text, reply_markup=keyboard)
        except TelegramBadRequest as exc:
            # Telegram could not render it (e.g. an entity it refuses): nobody else could
            # either, so it is never sent.
            logger.info("broadcast %d preview refused: %s", draft.id, exc.message)
            await repo.broadcasts.cancel(draft.id)
            await message.answer(t("admin-broadcast-bad", reason=exc.message))

    @router.message(AdminStates.broadcast_text, F.text & ~F.text.startswith("/"))
    async def broadcast_typed(
        message: Message, state: FSMContext, t: Translator, repo: Repo
    ) -> None:
        await state.clear()
        await preview(message, t, repo, message.html_text)

    @router.message(Command("broadcast"))
    async def broadcast_command(
        message: Message, command: CommandObject, state: FSMContext, t: Translator, repo: Repo
    ) -> None:
        if not command.args:
            await state.set_state(AdminStates.broadcast_text)
            await message.answer(t("admin-broadcast-prompt"), reply_markup=_kb([back_home(t)]))
            return
        # The text after the command, with its formatting (html_text covers the command too).
        html = message.html_text
        head = f"/{command.command}"
        if command.mention:
            head += f"@{command.mention}"
        await preview(message, t, repo, html.removeprefix(head).strip())

    @router.callback_query(AdminCb.filter(F.action == AdminAction.BROADCAST_SEND))
    async def broadcast_send(
        query: CallbackQuery,
        callback_data: AdminCb,
        db: Database,
        t: Translator,
        callback_answer: CallbackAnswer,
        notifier: TelegramNotifier,
    ) -> None:
        result = await admin_service.confirm_broadcast(db, callback_data.id, notifier)
        message = query.message
        if result is None:
            callback_answer.text = t.plain("admin-broadcast-gone")
            return
        if not result.confirmed_now:
            callback_answer.text = t.plain("admin-broadcast-already")
            return
        # An alert, not a message: this chat has just had several messages, and the outbox
        # must find room in it for other admins' alerts.
        callback_answer.text = t.plain("admin-broadcast-queued", count=result.queued)
        callback_answer.show_alert = True
        if isinstance(message, Message):
            try:
                await message.edit_reply_markup(reply_markup=_kb([back_home(t)]))
            except TelegramBadRequest as exc:
                logger.info("could not clear the broadcast buttons: %s", exc.message)

    @router.callback_query(AdminCb.filter(F.action == AdminAction.BROADCAST_CANCEL))
    async def broadcast_cancel(
        query: CallbackQuery,
        callback_data: AdminCb,
        repo: Repo,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        cancelled = await repo.broadcasts.cancel(callback_data.id)
        callback_answer.text = t.plain(
            "admin-broadcast-cancelled" if cancelled else "admin-broadcast-already"
        )
        message = query.message
        if cancelled and isinstance(message, Message):
            try:
                await message.edit_reply_markup(reply_markup=None)
            except TelegramBadRequest as exc:
                logger.info("could not clear the broadcast buttons: %s", exc.message)

    # --- markup ---------------------------------------------------------------------------

    @router.callback_query(AdminCb.filter(F.action == AdminAction.MARKUP))
    async def markup_button(
        query: CallbackQuery, state: FSMContext, t: Translator, repo: Repo, settings: Settings
    ) -> None:
        current = await admin_service.current_markup(repo, settings)
        await state.set_state(AdminStates.markup_value)
        await edit_or_send(query, markup_text(t, current), markup_keyboard(t, current.stored))

    async def set_markup(
        message: Message, t: Translator, db: Database, repo: Repo, settings: Settings, text: str
    ) -> bool:
        try:
            markup = admin_service.parse_markup(text)
        except admin_service.BadMarkup:
            await message.answer(t("admin-markup-bad", text=text[:32]))
            return False
        await admin_service.store_markup(db, markup)
        current = await admin_service.current_markup(repo, settings)
        await message.answer(
            f"{t('admin-markup-saved')}\n\n{markup_text(t, current)}",
            reply_markup=markup_keyboard(t, current.stored),
        )
        return True

    @router.message(AdminStates.markup_value, F.text & ~F.text.startswith("/"))
    async def markup_typed(
        message: Message,
        state: FSMContext,
        t: Translator,
        db: Database,
        repo: Repo,
        settings: Settings,
    ) -> None:
        if await set_markup(message, t, db, repo, settings, message.text or ""):
            await state.clear()

    @router.message(Command("markup"))
    async def markup_command(
        message: Message,
        command: CommandObject,
        t: Translator,
        db: Database,
        repo: Repo,
        settings: Settings,
    ) -> None:
        args = (command.args or "").strip()
        if args.lower() == "reset":
            await admin_service.reset_markup(db)
            args = ""
        if args:
            await set_markup(message, t, db, repo, settings, args)
            return
        current = await admin_service.current_markup(repo, settings)
        await message.answer(
            markup_text(t, current), reply_markup=markup_keyboard(t, current.stored)
        )

    @router.callback_query(AdminCb.filter(F.action == AdminAction.MARKUP_RESET))
    async def markup_reset(
        query: CallbackQuery, t: Translator, db: Database, repo: Repo, settings: Settings
    ) -> None:
        await admin_service.reset_markup(db)
        current = await admin_service.current_markup(repo, settings)
        await edit_or_send(
            query,
            f"{t('admin-markup-saved')}\n\n{markup_text(t, current)}",
            markup_keyboard(t, current.stored),
        )

    # --- ledger export --------------------------------------------------------------------

    async def send_export(
        bot: Bot, chat_id: int, t: Translator, repo: Repo, days: int | None
    ) -> None:
        since = time.time() - days * 86_400 if days else None
        export = await admin_service.export_ledger(repo, since=since)
        caption = t(
            "admin-export-caption", entries=export.entries, total=format_usd(export.total_units)
        )
        try:
            await bot.send_document(
                chat_id,
                BufferedInputFile(export.data, filename=export.filename),
                caption=caption,
            )
        except TelegramAPIError as exc:
            logger.warning("ledger export could not be sent: %s", exc)
            await bot.send_message(chat_id, t("admin-export-failed"))

    @router.callback_query(AdminCb.filter(F.action == AdminAction.EXPORT))
    async def export_button(
        query: CallbackQuery, bot: Bot, t: Translator, repo: Repo, callback_answer: CallbackAnswer
    ) -> None:
        if query.message is None:
            return
        callback_answer.text = t.plain("admin-export-started")
        await send_export(bot, query.message.chat.id, t, repo, None)

    @router.message(Command("export"))
    async def export_command(
        message: Message, command: CommandObject, bot: Bot, t: Translator, repo: Repo
    ) -> None:
        args = (command.args or "").strip()
        days = int(args) if args.isdigit() and 0 < int(args) <= 3650 else None
        if args and days is None:
            await message.answer(t("admin-export-usage"))
            return
        await send_export(bot, message.chat.id, t, repo, days)

    return router


__all__ = [
    "LOW_BALANCE_JOB_ID",
    "AdminStates",
    "IsAdmin",
    "build_router",
    "low_balance_check",
    "telegram_refunder",
]
