"""Groups: the bot added to a group opens a group wallet; the group's admins fund it (from their
own wallet or with Stars), set a per-member daily limit and see the spending; members buy with
/buy, paid by the group wallet within their limit.

Who is a group admin is asked from Telegram (getChatMember) on every admin action, never
cached and never read from callback data. The group is always
the chat a button or command is in. This router sees group updates before the private-chat
feature routers, so a buy button pressed in a group is paid by the group, never by the
presser's own wallet.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    CallbackQuery,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.money import UNITS_PER_USD, format_usd
from bot.services import groups as group_service
from bot.services.admin import alert_upstream_exhausted
from bot.services.catalogue import Catalogue, Service, page_of
from bot.services.errors import (
    DailyLimitExceeded,
    InsufficientFunds,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
)
from bot.services.purchase import PurchaseRequest
from bot.services.purchase_queue import PurchaseQueue, Queued, QueueFull
from bot.services.topup import BadAmount, parse_amount, stars_for
from bot.telegram.callbacks import (
    ActCb,
    BuyCb,
    GroupAction,
    GroupCb,
    PrefCb,
    QueueCb,
    ServiceAction,
    ServiceCb,
    ServicesCb,
    new_nonce,
)
from bot.telegram.i18n import LANGUAGES, I18n, Translator, language_for
from bot.telegram.keyboards import (
    buy_button,
    confirm_price_keyboard,
    pools_keyboard,
    retry_keyboard,
)
from bot.telegram.keyboards import service_label as plain_service_label
from bot.telegram.middlewares import KeyedLocks
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.queue_notify import QueueNotifier
from handlers.activation import act_on_card
from handlers.common import edit_or_send, send_card
from handlers.purchase import start_purchase
from handlers.queue import show_place
from handlers.topup import preset_units, send_stars_invoice
from storage.db import Database
from storage.models import Activation, Chat, User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"creator", "administrator"})
PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})
LIMIT_PRESETS_USD = (1, 2, 5, 10, 25)
GROUP_COMMANDS = ("buy", "wallet", "fund", "limit", "spending", "help")


async def is_group_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether Telegram says the user is an admin of the group, asked every time: a demoted
    admin must lose the group's money at once, and one getChatMember per tap is cheap."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError as exc:
        # Fail closed: without Telegram's word nobody moves the group's money.
        logger.warning("getChatMember(%d, %d) failed: %s", chat_id, user_id, exc)
        return False
    return member.status in ADMIN_STATUSES


def _btn(
    text: str, action: GroupAction, *, units: int = 0, nonce: str = ""
) -> InlineKeyboardButton:
    data = GroupCb(action=action, units=units, nonce=nonce).pack()
    return InlineKeyboardButton(text=text, callback_data=data)


def _kb(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _back(t: Translator) -> list[InlineKeyboardButton]:
    return [_btn(t.plain("group-back-button"), GroupAction.PANEL)]


def _limit_text(t: Translator, limit: int | None) -> str:
    if limit is None:
        return t.plain("group-no-limit")
    return format_usd(limit)


async def group_context(db: Database, repo: Repo, message: Message) -> tuple[Chat, Wallet]:
    """The group's row and wallet, created if the bot was added before it kept them."""
    chat = await repo.chats.get(message.chat.id)
    wallet = await group_service.group_wallet(repo, message.chat.id)
    if chat is None or wallet is None:
        chat, wallet, _ = await group_service.ensure_group(
            db, message.chat.id, chat_type=message.chat.type, title=message.chat.title
        )
    return chat, wallet


async def panel_view(
    t: Translator, repo: Repo, chat: Chat, wallet: Wallet, user: User, note: str | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    today = await group_service.member_today(repo, chat, wallet, user.id)
    current = await repo.wallets.get(wallet.id) or wallet
    lines = [
        t(
            "group-panel",
            title=chat.title or "",
            balance=format_usd(current.balance),
            limit=_limit_text(t, chat.member_daily_limit_units),
            spent=format_usd(today.spent),
        )
    ]
    if today.remaining is not None:
        lines.append(t("group-panel-left", left=format_usd(today.remaining)))
    if note:
        lines.insert(0, note + "\n")
    keyboard = _kb(
        [
            [
                _btn(t.plain("group-fund-button"), GroupAction.FUND),
                _btn(t.plain("group-stars-button"), GroupAction.STARS),
            ],
            [
                _btn(t.plain("group-limit-button"), GroupAction.LIMIT),
                _btn(t.plain("group-spending-button"), GroupAction.SPENDING),
            ],
        ]
    )
    return "\n".join(lines), keyboard


def services_keyboard(
    t: Translator, services: list[Service], *, country: str, page: int, pages: int
) -> InlineKeyboardMarkup:
    """The service list for a group: no favourites and no menu, which belong to a private
    chat; a single-pool service buys at once, a multi-pool one opens its pools."""
    rows: list[list[InlineKeyboardButton]] = []
    for service in services:
        label = plain_service_label(t, service)
        if service.multi_pool:
            try:
                data = ServiceCb(
                    action=ServiceAction.OPEN, country=country, ref=service.ref, page=page
                ).pack()
            except ValueError:
                continue
            rows.append([InlineKeyboardButton(text=label, callback_data=data)])
        else:
            button = buy_button(label, country, service, None, service.price_units)
            if button is not None:
                rows.append([button])
    nav: list[InlineKeyboardButton] = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                text=t.plain("page-prev-button"),
                callback_data=ServicesCb(country=country, page=page - 1).pack(),
            )
        )
    if page < pages - 1:
        nav.append(
            InlineKeyboardButton(
                text=t.plain("page-next-button"),
                callback_data=ServicesCb(country=country, page=page + 1).pack(),
            )
        )
    if nav:
        rows.append(nav)
    return _kb(rows)


async def services_view(
    t: Translator,
    repo: Repo,
    catalogue: Catalogue,
    chat: Chat,
    wallet: Wallet,
    user: User,
    country: str,
    page: int,
) -> tuple[str, InlineKeyboardMarkup]:
    services = await catalogue.services(country)
    shown, page, pages = page_of(services, page)
    today = await group_service.member_today(repo, chat, wallet, user.id)
    current = await repo.wallets.get(wallet.id) or wallet
    text = t(
        "group-services",
        balance=format_usd(current.balance),
        left=(
            t.plain("group-no-limit") if today.remaining is None else format_usd(today.remaining)
        ),
    )
    if pages > 1:
        text += "\n" + t("services-page", page=page + 1, pages=pages)
    return text, services_keyboard(t, shown, country=country, page=page, pages=pages)


async def deliver(
    bot: Bot,
    repo: Repo,
    group_id: int,
    result: Activation | Queued,
    user: User,
    t: Translator,
    queue: PurchaseQueue | None = None,
    notifier: QueueNotifier | None = None,
) -> None:
    """The card of a group purchase (or its place in line, which becomes the card) goes to
    the buyer privately when they want it so and can be written to (they started the bot),
    otherwise to the group. The code follows the card (the poller sends it where it is)."""

    async def show(chat_id: int) -> None:
        if isinstance(result, Queued):
            assert queue is not None
            await show_place(bot, queue, notifier, chat_id, result, t)
        else:
            await send_card(bot, repo, chat_id, result, t)

    activation = result.activation if isinstance(result, Queued) else result
    if await repo.users.group_codes(user.id) == "private":
        try:
            await show(user.id)
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            logger.info("user %d cannot get the card privately: %s", user.id, exc.message)
        else:
            key = "group-queued-private" if isinstance(result, Queued) else "group-bought-private"
            await bot.send_message(
                group_id, t(key, name=user.first_name, service=activation.service_name)
            )
            return
        await bot.send_message(group_id, t("group-start-hint", name=user.first_name))
    await show(group_id)


def build_router() -> Router:
    """The my_chat_member handler, the group router and the private preference router."""
    root = Router(name=__name__)
    group = Router(name=f"{__name__}.group")
    private = Router(name=f"{__name__}.private")
    root.include_routers(group, private)
    group_types = {"group", "supergroup"}
    group.message.filter(F.chat.type.in_(group_types))
    group.callback_query.filter(F.message.chat.type.in_(group_types))
    private.message.filter(F.chat.type == "private")
    private.callback_query.filter(F.message.chat.type == "private")

    @root.startup()
    async def set_group_commands(bot: Bot, i18n: I18n | None = None) -> None:
        if i18n is None:
            return
        for lang in LANGUAGES:
            t = i18n.translator(lang)
            commands = [
                BotCommand(command=name, description=t.plain(f"group-cmd-{name}"))
                for name in GROUP_COMMANDS
            ]
            try:
                await bot.set_my_commands(
                    commands,
                    scope=BotCommandScopeAllGroupChats(),
                    language_code=None if lang == "en" else lang,
                )
            except TelegramAPIError as exc:
                logger.warning("setMyCommands for groups (%s) failed: %s", lang, exc)

    # --- the bot joins or leaves ----------------------------------------------------------

    @root.my_chat_member()
    async def membership(
        event: ChatMemberUpdated, bot: Bot, db: Database, repo: Repo, i18n: I18n
    ) -> None:
        status = event.new_chat_member.status
        was = event.old_chat_member.status
        if event.chat.type == "private":
            # A user blocked (kicked) or unblocked the bot: broadcasts skip blocked users.
            await repo.users.set_inactive(event.chat.id, status == "kicked")
            return
        if event.chat.type not in group_types:
            return
        if status in PRESENT_STATUSES and was not in PRESENT_STATUSES:
            _, wallet, _ = await group_service.ensure_group(
                db, event.chat.id, chat_type=event.chat.type, title=event.chat.title
            )
            stored = await repo.users.get(event.from_user.id)
            lang = stored.language if stored else language_for(event.from_user.language_code)
            t = i18n.translator(lang)
            try:
                await bot.send_message(event.chat.id, t("group-welcome"))
            except TelegramAPIError as exc:
                logger.info("cannot greet group %d: %s", event.chat.id, exc)
            logger.info("added to group %d (wallet %d)", event.chat.id, wallet.id)
        elif status not in PRESENT_STATUSES:
            logger.info("removed from group %d (%s)", event.chat.id, status)

    @group.message(F.migrate_to_chat_id)
    async def migrated(message: Message, db: Database) -> None:
        # A group that became a supergroup gets a new id: its money and limit move along.
        new_id = message.migrate_to_chat_id
        assert new_id is not None
        moved = await group_service.migrate_group(
            db, message.chat.id, new_id, title=message.chat.title
        )
        logger.info("group %d became %d; %d units moved", message.chat.id, new_id, moved)

    # --- help, the panel ------------------------------------------------------------------

    @group.message(Command("start", "help"))
    async def group_help(message: Message, t: Translator) -> None:
        await message.answer(t("group-help"))

    @group.message(Command("wallet", "group"))
    async def wallet_command(
        message: Message, db: Database, repo: Repo, t: Translator, user: User
    ) -> None:
        chat, wallet = await group_context(db, repo, message)
        text, keyboard = await panel_view(t, repo, chat, wallet, user)
        await message.answer(text, reply_markup=keyboard)

    async def require_admin(
        bot: Bot, query: CallbackQuery, user: User, t: Translator, answer: CallbackAnswer
    ) -> Message | None:
        """The pressed message when the presser is an admin of its group."""
        message = query.message
        if not isinstance(message, Message):
            return None
        if not await is_group_admin(bot, message.chat.id, user.id):
            answer.text = t.plain("group-admins-only")
            answer.show_alert = True
            return None
        return message

    async def admin_command(bot: Bot, message: Message, user: User, t: Translator) -> bool:
        """Whether the sender of a command is an admin of its group; told so if not."""
        if not await is_group_admin(bot, message.chat.id, user.id):
            await message.reply(t("group-admins-only"))
            return False
        return True

    async def command_amount(message: Message, text: str, t: Translator) -> int | None:
        """The USD amount a command names, or None after telling the sender what is wrong."""
        try:
            return parse_amount(text)
        except BadAmount as exc:
            await message.reply(
                t(f"admin-amount-{exc.reason}", text=exc.text[:32], max=format_usd(exc.max_units))
            )
            return None

    async def show_panel(
        query: CallbackQuery,
        db: Database,
        repo: Repo,
        message: Message,
        user: User,
        t: Translator,
        note: str | None = None,
    ) -> None:
        chat, wallet = await group_context(db, repo, message)
        text, keyboard = await panel_view(t, repo, chat, wallet, user, note)
        await edit_or_send(query, text, keyboard)

    @group.callback_query(GroupCb.filter(F.action == GroupAction.PANEL))
    async def panel(
        query: CallbackQuery, db: Database, repo: Repo, t: Translator, user: User
    ) -> None:
        if not isinstance(query.message, Message):
            return
        await show_panel(query, db, repo, query.message, user, t)

    # --- funding from a personal wallet ---------------------------------------------------

    @group.callback_query(GroupCb.filter(F.action == GroupAction.FUND))
    async def fund_amounts(
        query: CallbackQuery,
        bot: Bot,
        user: User,
        wallet: Wallet,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        if await require_admin(bot, query, user, t, callback_answer) is None:
            return
        amounts = [
            _btn(format_usd(units), GroupAction.FUND_AMOUNT, units=units, nonce=new_nonce())
            for units in preset_units()
        ]
        # The presser's own balance is theirs to see, not the group's: in the answer only.
        callback_answer.text = t.plain("group-your-balance", balance=format_usd(wallet.balance))
        await edit_or_send(query, t("group-fund-text"), _kb([amounts[:2], amounts[2:], _back(t)]))

    async def fund(
        db: Database,
        repo: Repo,
        message: Message,
        user: User,
        units: int,
        key: str,
        t: Translator,
    ) -> str:
        chat, _ = await group_context(db, repo, message)
        try:
            result = await group_service.fund_group(
                db, chat_id=chat.id, from_user_id=user.id, amount_units=units, key=key
            )
        except InsufficientFunds as exc:
            return t(
                "group-fund-insufficient", amount=format_usd(units), balance=format_usd(exc.balance)
            )
        if result.duplicate:
            return t("group-fund-duplicate")
        return t(
            "group-funded",
            name=user.first_name,
            amount=format_usd(units),
            balance=format_usd(result.target.balance),
        )

    @group.callback_query(GroupCb.filter(F.action == GroupAction.FUND_AMOUNT))
    async def fund_button(
        query: CallbackQuery,
        callback_data: GroupCb,
        bot: Bot,
        db: Database,
        repo: Repo,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        message = await require_admin(bot, query, user, t, callback_answer)
        if message is None:
            return
        if callback_data.units not in preset_units() or not callback_data.nonce:
            callback_answer.text = t.plain("stale-answer")
            return
        note = await fund(
            db, repo, message, user, callback_data.units, f"{user.id}:{callback_data.nonce}", t
        )
        await show_panel(query, db, repo, message, user, t, note)

    @group.message(Command("fund"))
    async def fund_command(
        message: Message,
        command: CommandObject,
        bot: Bot,
        db: Database,
        repo: Repo,
        user: User,
        t: Translator,
    ) -> None:
        if not await admin_command(bot, message, user, t):
            return
        if not command.args:
            await message.reply(t("group-fund-usage"))
            return
        units = await command_amount(message, command.args, t)
        if units is None:
            return
        # One command, one transfer, even if Telegram delivers it twice.
        key = f"cmd:{message.chat.id}:{message.message_id}"
        await message.reply(await fund(db, repo, message, user, units, key, t))

    # --- Stars invoices in the group ------------------------------------------------------

    @group.callback_query(GroupCb.filter(F.action == GroupAction.STARS))
    async def stars_amounts(
        query: CallbackQuery,
        bot: Bot,
        user: User,
        t: Translator,
        settings: Settings,
        callback_answer: CallbackAnswer,
    ) -> None:
        if await require_admin(bot, query, user, t, callback_answer) is None:
            return
        rows = [
            [
                _btn(
                    t.plain(
                        "topup-amount-button",
                        price=format_usd(units),
                        stars=stars_for(units, settings.stars_per_usd),
                    ),
                    GroupAction.STARS_AMOUNT,
                    units=units,
                )
            ]
            for units in preset_units()
        ]
        await edit_or_send(query, t("group-stars-text"), _kb([*rows, _back(t)]))

    @group.callback_query(GroupCb.filter(F.action == GroupAction.STARS_AMOUNT))
    async def stars_invoice(
        query: CallbackQuery,
        callback_data: GroupCb,
        bot: Bot,
        db: Database,
        repo: Repo,
        user: User,
        t: Translator,
        settings: Settings,
        callback_answer: CallbackAnswer,
    ) -> None:
        message = await require_admin(bot, query, user, t, callback_answer)
        if message is None:
            return
        if callback_data.units not in preset_units():
            callback_answer.text = t.plain("stale-answer")
            return
        _, wallet = await group_context(db, repo, message)
        await send_stars_invoice(
            bot, message.chat.id, wallet, callback_data.units, t, settings, for_group=True
        )

    # --- the member limit -----------------------------------------------------------------

    @group.callback_query(GroupCb.filter(F.action == GroupAction.LIMIT))
    async def limit_choices(
        query: CallbackQuery, bot: Bot, user: User, t: Translator, callback_answer: CallbackAnswer
    ) -> None:
        if await require_admin(bot, query, user, t, callback_answer) is None:
            return
        presets = [
            _btn(format_usd(usd * UNITS_PER_USD), GroupAction.LIMIT_SET, units=usd * UNITS_PER_USD)
            for usd in LIMIT_PRESETS_USD
        ]
        rows = [presets[:3], presets[3:]]
        rows.append([_btn(t.plain("group-limit-none-button"), GroupAction.LIMIT_SET, units=-1)])
        rows.append(_back(t))
        await edit_or_send(query, t("group-limit-text"), _kb(rows))

    async def set_limit(
        db: Database, repo: Repo, message: Message, units: int | None, t: Translator
    ) -> str:
        await group_context(db, repo, message)
        chat = await group_service.set_member_limit(db, message.chat.id, units)
        return t("group-limit-set", limit=_limit_text(t, chat.member_daily_limit_units))

    @group.callback_query(GroupCb.filter(F.action == GroupAction.LIMIT_SET))
    async def limit_button(
        query: CallbackQuery,
        callback_data: GroupCb,
        bot: Bot,
        db: Database,
        repo: Repo,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        message = await require_admin(bot, query, user, t, callback_answer)
        if message is None:
            return
        units = None if callback_data.units < 0 else callback_data.units
        try:
            note = await set_limit(db, repo, message, units, t)
        except (BadAmount, ValueError):
            callback_answer.text = t.plain("stale-answer")
            return
        await show_panel(query, db, repo, message, user, t, note)

    @group.message(Command("limit"))
    async def limit_command(
        message: Message,
        command: CommandObject,
        bot: Bot,
        db: Database,
        repo: Repo,
        user: User,
        t: Translator,
    ) -> None:
        if not await admin_command(bot, message, user, t):
            return
        args = (command.args or "").strip().lower()
        if not args:
            chat, _ = await group_context(db, repo, message)
            await message.reply(
                t("group-limit-usage", limit=_limit_text(t, chat.member_daily_limit_units))
            )
            return
        units: int | None
        if args in ("off", "none", "no", "нет", "выкл"):
            units = None
        elif args in ("0", "$0"):
            units = 0
        else:
            units = await command_amount(message, args, t)
            if units is None:
                return
        await message.reply(await set_limit(db, repo, message, units, t))

    # --- spending -------------------------------------------------------------------------

    async def spending_text(repo: Repo, chat_id: int, t: Translator) -> str:
        report = await group_service.spending(repo, chat_id)
        if report is None:
            return t("group-spending-none")
        names: dict[int, str] = {}
        for member in {m.user_id for m in report.month}:
            known = await repo.users.get(member)
            names[member] = known.first_name if known and known.first_name else str(member)
        lines = [
            t(
                "group-spending",
                balance=format_usd(report.wallet.balance),
                today=format_usd(report.today_units),
                month=format_usd(report.month_units),
                funded=format_usd(report.funded_month),
            )
        ]
        if report.today:
            lines.append(t("group-spending-today"))
            lines.extend(
                t(
                    "group-spending-line",
                    name=names.get(m.user_id, str(m.user_id)),
                    count=m.count,
                    amount=format_usd(m.units),
                )
                for m in report.today
            )
        if report.month:
            lines.append(t("group-spending-month"))
            lines.extend(
                t(
                    "group-spending-line",
                    name=names.get(m.user_id, str(m.user_id)),
                    count=m.count,
                    amount=format_usd(m.units),
                )
                for m in report.month
            )
        return "\n".join(lines)

    @group.callback_query(GroupCb.filter(F.action == GroupAction.SPENDING))
    async def spending_button(
        query: CallbackQuery,
        bot: Bot,
        repo: Repo,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        message = await require_admin(bot, query, user, t, callback_answer)
        if message is None:
            return
        await edit_or_send(query, await spending_text(repo, message.chat.id, t), _kb([_back(t)]))

    @group.message(Command("spending"))
    async def spending_command(
        message: Message, bot: Bot, repo: Repo, user: User, t: Translator
    ) -> None:
        if not await admin_command(bot, message, user, t):
            return
        await message.answer(await spending_text(repo, message.chat.id, t))

    # --- buying in the group --------------------------------------------------------------

    @group.message(Command("buy"))
    async def buy_command(
        message: Message,
        db: Database,
        repo: Repo,
        catalogue: Catalogue,
        user: User,
        t: Translator,
    ) -> None:
        chat, wallet = await group_context(db, repo, message)
        country = await catalogue.default_country()
        text, keyboard = await services_view(t, repo, catalogue, chat, wallet, user, country, 0)
        await message.answer(text, reply_markup=keyboard)

    @group.callback_query(ServicesCb.filter())
    async def services_page(
        query: CallbackQuery,
        callback_data: ServicesCb,
        db: Database,
        repo: Repo,
        catalogue: Catalogue,
        user: User,
        t: Translator,
    ) -> None:
        if not isinstance(query.message, Message):
            return
        chat, wallet = await group_context(db, repo, query.message)
        text, keyboard = await services_view(
            t, repo, catalogue, chat, wallet, user, callback_data.country, callback_data.page
        )
        await edit_or_send(query, text, keyboard)

    @group.callback_query(ServiceCb.filter(F.action == ServiceAction.OPEN))
    async def open_service(
        query: CallbackQuery, callback_data: ServiceCb, t: Translator, catalogue: Catalogue
    ) -> None:
        service = await catalogue.find(callback_data.country, callback_data.ref)
        if service is None:
            await edit_or_send(query, t("buy-gone", name=callback_data.ref))
            return
        key = "pools-text" if service.available else "pools-none"
        await edit_or_send(
            query,
            t(key, name=service.name),
            pools_keyboard(t, service, country=callback_data.country, page=callback_data.page),
        )

    @group.callback_query(BuyCb.filter())
    async def buy(
        query: CallbackQuery,
        callback_data: BuyCb,
        bot: Bot,
        db: Database,
        repo: Repo,
        daisysim: DaisySimClient,
        catalogue: Catalogue,
        settings: Settings,
        buy_locks: KeyedLocks,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer,
        notifier: TelegramNotifier,
        purchase_queue: PurchaseQueue | None = None,
        queue_notifier: QueueNotifier | None = None,
    ) -> None:
        message = query.message
        if not isinstance(message, Message):
            return
        chat, wallet = await group_context(db, repo, message)
        key = f"{user.id}:{callback_data.nonce}"
        async with buy_locks.hold(key):
            existing = await repo.activations.get_by_key(key)
            if existing is not None:
                queued = (
                    await purchase_queue.place_of(existing.id)
                    if purchase_queue is not None
                    else None
                )
                if queued is not None:
                    callback_answer.text = t.plain("queue-already-answer", place=queued.place)
                elif existing.state in ("purchasing", "unknown"):
                    callback_answer.text = t.plain("buy-already-pending")
                else:
                    callback_answer.text = t.plain(
                        "buy-failed" if existing.state == "failed" else "buy-already"
                    )
                return
            country = callback_data.country
            pool = callback_data.pool or None
            quote = await catalogue.quote(country, callback_data.ref, pool)
            if quote is None:
                await message.answer(t("buy-gone", name=callback_data.ref))
                return
            if quote.price_units != callback_data.price:
                await message.answer(
                    t(
                        "buy-price-changed",
                        name=quote.service.name,
                        price=format_usd(quote.price_units),
                        old=format_usd(callback_data.price),
                    ),
                    reply_markup=confirm_price_keyboard(
                        t, country, quote.service, pool, quote.price_units
                    ),
                )
                return
            request = PurchaseRequest(
                user_id=user.id,
                wallet_id=wallet.id,
                service_code=quote.service.code,
                service_name=quote.service.name,
                user_price=callback_data.price,
                upstream_price=quote.upstream_units,
                idempotency_key=key,
                country=country,
                provider_id=quote.provider_id,
                chat_id=chat.id,
                # Checked by the purchase service in the transaction that holds the money.
                member_daily_limit=chat.member_daily_limit_units,
            )
            try:
                # The group's members wait in the same fair line as everyone else.
                result = await start_purchase(
                    query, request, t, callback_answer, db, daisysim, settings, purchase_queue
                )
            except QueueFull as exc:
                await message.answer(t("queue-full", limit=exc.limit))
                return
            except InsufficientFunds as exc:
                await message.answer(
                    t(
                        "group-insufficient",
                        name=user.first_name,
                        price=format_usd(exc.needed),
                        balance=format_usd(exc.balance),
                    )
                )
                return
            except DailyLimitExceeded as exc:
                await message.answer(
                    t(
                        "group-limit-reached",
                        name=user.first_name,
                        limit=format_usd(exc.limit),
                        spent=format_usd(exc.spent),
                        price=format_usd(exc.needed),
                    )
                )
                return
            except PurchaseRejected as exc:
                if isinstance(exc, UpstreamBalanceExhausted):
                    await alert_upstream_exhausted(db, settings, notifier)
                await rejected(
                    message, exc, quote.service, quote.provider_id, country, t, catalogue
                )
                return
            except PurchasePending as exc:
                await message.answer(t("buy-pending", name=quote.service.name))
                await deliver(bot, repo, chat.id, exc.activation, user, t)
                return
            await deliver(bot, repo, chat.id, result, user, t, purchase_queue, queue_notifier)

    async def rejected(
        message: Message,
        exc: PurchaseRejected,
        service: Service,
        provider_id: str | None,
        country: str,
        t: Translator,
        catalogue: Catalogue,
    ) -> None:
        code = exc.upstream_code
        if code == "OUT_OF_STOCK":
            catalogue.invalidate(country)
            fresh = await catalogue.find(country, service.ref) or service
            if provider_id is not None:
                await message.answer(
                    t("buy-out-of-stock-pool", pool=provider_id, name=fresh.name),
                    reply_markup=pools_keyboard(t, fresh, country=country, excluding=provider_id),
                )
            else:
                await message.answer(
                    t("buy-out-of-stock", name=fresh.name),
                    reply_markup=retry_keyboard(t, country, fresh, None, fresh.price_units),
                )
            return
        if code == "PRICE_VERIFICATION_FAILED":
            catalogue.invalidate(country)
            await message.answer(t("buy-price-verification"))
            return
        if isinstance(exc, UpstreamBalanceExhausted) or not exc.retryable:
            await message.answer(t("buy-unavailable"))
            return
        await message.answer(
            t("buy-failed"),
            reply_markup=retry_keyboard(t, country, service, provider_id, service.price_units),
        )

    # --- the cards of group purchases -----------------------------------------------------

    async def may_act(bot: Bot, activation: Activation, user: User) -> bool:
        """The buyer, or an admin of the group the number was bought in."""
        if activation.user_id == user.id:
            return True
        if activation.chat_id is None or activation.chat_id >= 0:
            return False  # bought in a private chat: only its buyer
        return await is_group_admin(bot, activation.chat_id, user.id)

    @group.callback_query(ActCb.filter())
    async def card_button(
        query: CallbackQuery,
        callback_data: ActCb,
        bot: Bot,
        db: Database,
        repo: Repo,
        daisysim: DaisySimClient,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        message = query.message
        if not isinstance(message, Message):
            return
        activation = await repo.activations.get(callback_data.id)
        if activation is None:
            callback_answer.text = t.plain("card-not-found")
            return
        if not await may_act(bot, activation, user):
            logger.warning(
                "user %d pressed a card button of activation %d in group %d",
                user.id,
                activation.id,
                message.chat.id,
            )
            callback_answer.text = t.plain("group-card-not-yours")
            callback_answer.show_alert = True
            return
        await act_on_card(
            query,
            callback_data.action,
            activation,
            bot=bot,
            db=db,
            repo=repo,
            daisysim=daisysim,
            user=user,
            t=t,
            callback_answer=callback_answer,
            not_yours_key="group-card-not-yours",
            cancelled_key="group-card-cancelled",
        )

    # Leaving the purchase queue works anywhere (its handler checks the buyer).
    @group.callback_query(~QueueCb.filter())
    async def other_button(
        query: CallbackQuery, t: Translator, callback_answer: CallbackAnswer
    ) -> None:
        # A private-chat button (menu, favourites, top-up) in a group: it belongs elsewhere.
        logger.info("group button %r not handled in groups", query.data)
        callback_answer.text = t.plain("group-private-button")

    # --- where group purchases are delivered (a private setting) ---------------------------

    def prefs_view(t: Translator, where: str) -> tuple[str, InlineKeyboardMarkup]:
        def choice(value: str, key: str) -> InlineKeyboardButton:
            mark = "✓ " if value == where else ""
            return InlineKeyboardButton(
                text=mark + t.plain(key), callback_data=PrefCb(group_codes=value).pack()
            )

        keyboard = _kb(
            [[choice("private", "prefs-private-button")], [choice("group", "prefs-group-button")]]
        )
        return t("prefs-text"), keyboard

    @private.message(Command("settings"))
    async def settings_command(message: Message, repo: Repo, user: User, t: Translator) -> None:
        text, keyboard = prefs_view(t, await repo.users.group_codes(user.id))
        await message.answer(text, reply_markup=keyboard)

    @private.callback_query(PrefCb.filter())
    async def set_pref(
        query: CallbackQuery,
        callback_data: PrefCb,
        repo: Repo,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        where = (
            callback_data.group_codes
            if callback_data.group_codes in ("private", "group")
            else "private"
        )
        await repo.users.set_group_codes(user.id, where)
        callback_answer.text = t.plain("prefs-saved")
        text, keyboard = prefs_view(t, where)
        await edit_or_send(query, text, keyboard)

    return root


__all__ = ["ADMIN_STATUSES", "build_router", "deliver", "is_group_admin"]
