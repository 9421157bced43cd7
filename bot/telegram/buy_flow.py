"""The Telegram side of the one buy path: read a buy button's tap, hand it to the buy service
(`bot.services.buying`), and show its outcome where the user looks.

Private chats, groups and "Buy again" all come through `BuyFlow.tap`; only the words differ
where the group's wallet pays (the group's balance, the member's limit). Every outcome ends in
an answer with a next step, and says whether anything was charged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from bot.config import Settings
from bot.services.buying import (
    Bought,
    Buying,
    BuyOutcome,
    Gone,
    InLine,
    Insufficient,
    LimitReached,
    LineFull,
    Membership,
    NotMember,
    Pending,
    PriceChanged,
    Rejected,
    Repeated,
    SalesPaused,
    Tap,
)
from bot.services.catalogue import Catalogue
from bot.services.errors import UpstreamBalanceExhausted
from bot.services.purchase_queue import PurchaseQueue, Queued
from bot.services.topup import BuyIntent, shortfall_invoice
from bot.telegram.callbacks import BuyCb, TopupBuyCb
from bot.telegram.cards import send_card, show_place
from bot.telegram.i18n import Translator
from bot.telegram.keyboards import (
    button,
    confirm_price_keyboard,
    insufficient_keyboard,
    pools_keyboard,
    retry_keyboard,
    services_button_keyboard,
)
from bot.telegram.maintenance import paused_notice
from bot.telegram.menu import topup_howto
from bot.telegram.queue_notify import QueueNotifier
from storage.models import Activation, Chat, User, Wallet
from storage.repo import Repo

logger = logging.getLogger(__name__)

_RETRY_SECONDS_FALLBACK = 10
# getChatMember statuses of someone who is in the group.
_MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})


def membership(bot: Bot) -> Membership:
    """Telegram's answer to "is this user in that group?", asked every time: someone who left
    must lose the group's money at once. Fails closed."""

    async def is_member(chat_id: int, user_id: int) -> bool:
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except TelegramAPIError as exc:
            logger.warning("getChatMember(%d, %d) failed: %s", chat_id, user_id, exc)
            return False
        if member.status == "restricted":
            return bool(getattr(member, "is_member", False))
        return member.status in _MEMBER_STATUSES

    return is_member


class BuyView:
    """Everything one tap's answer needs; built per tap by the handler."""

    def __init__(
        self,
        query: CallbackQuery | None,
        message: Message,
        *,
        bot: Bot,
        repo: Repo,
        catalogue: Catalogue,
        settings: Settings,
        queue: PurchaseQueue,
        notifier: QueueNotifier,
        user: User,
        t: Translator,
        callback_answer: CallbackAnswer | None,
        pressed: BuyCb,
    ) -> None:
        # `query` and `callback_answer` are None when no button was pressed: the purchase of a
        # "top up and buy" invoice, made when its payment arrives.
        self.query = query
        self.message = message
        self.chat_id = message.chat.id
        self.bot = bot
        self.repo = repo
        self.catalogue = catalogue
        self.settings = settings
        self.queue = queue
        self.notifier = notifier
        self.user = user
        self.t = t
        self.callback_answer = callback_answer
        self.pressed = pressed

    async def say(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """A new message in the chat the button lives in; the tap's toast says to look
        there, since the button may be far up the chat from where the answer lands."""
        await self.bot.send_message(self.chat_id, text, reply_markup=markup)
        answer = self.callback_answer
        if answer is not None and not answer.disabled and answer.text is None:
            answer.text = self.t.plain("answer-below")

    async def mark_bought(self) -> None:
        """Put "bought" on the face of a one-purchase prompt's button (buy at the new price,
        try again), so the prompt no longer looks like an offer. Not on a list, whose other
        buttons still buy and which would cost an edit a purchase when the bot is busiest;
        not in a group, whose messages serve every member."""
        query, keyboard = self.query, self.message.reply_markup
        if query is None or query.data is None or keyboard is None or self.chat_id < 0:
            return
        buys = [
            b
            for row in keyboard.inline_keyboard
            for b in row
            if b.callback_data is not None and b.callback_data.startswith(f"{BuyCb.__prefix__}:")
        ]
        if len(buys) != 1:
            return
        rows = [
            [
                InlineKeyboardButton(
                    text=self.t.plain("buy-done-button"),
                    callback_data=b.callback_data,
                )
                if b.callback_data == query.data
                else b
                for b in row
            ]
            for row in keyboard.inline_keyboard
        ]
        try:
            await self.bot.edit_message_reply_markup(
                chat_id=self.chat_id,
                message_id=self.message.message_id,
                reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
            )
        except TelegramAPIError as exc:
            # Only the label is lost; the card is on its way or there.
            logger.info("could not mark the buy button: %s", exc)

    async def started(self, place: int | None) -> None:
        """The purchase is in the queue's hands: stop the spinner now, with the place in line
        or "buying…", while the purchase runs."""
        t = self.t
        if self.query is None or self.callback_answer is None:
            return
        toast = (
            t.plain("buy-started") if place is None else t.plain("queue-joined-answer", place=place)
        )
        self.callback_answer.disable()
        try:
            await self.query.answer(toast)
        except TelegramAPIError as exc:
            # Only the toast is lost; the purchase is under way and its message follows.
            logger.info("could not answer the buy tap: %s", exc)

    # --- where a purchase is shown --------------------------------------------------------

    async def show(self, result: Activation | Queued) -> None:
        """The card (or the place in line, which becomes the card). A purchase on a group's
        money made in that group goes to the buyer privately when they want it so and can be
        written to, otherwise to the group; anything else goes where the button was."""
        activation = result.activation if isinstance(result, Queued) else result
        in_its_group = self.chat_id < 0 and activation.chat_id == self.chat_id
        if not in_its_group:
            await self._show_in(self.chat_id, result)
            return
        user, t = self.user, self.t
        if await self.repo.users.group_codes(user.id) == "private":
            try:
                await self._show_in(user.id, result)
            except (TelegramForbiddenError, TelegramBadRequest) as exc:
                logger.info("user %d cannot get the card privately: %s", user.id, exc.message)
            else:
                key = (
                    "group-queued-private" if isinstance(result, Queued) else "group-bought-private"
                )
                await self.say(t(key, name=user.first_name, service=activation.service_name))
                return
            await self.say(t("group-start-hint", name=user.first_name))
        await self._show_in(self.chat_id, result)

    async def _show_in(self, chat_id: int, result: Activation | Queued) -> None:
        if isinstance(result, Queued):
            await show_place(self.bot, self.queue, self.notifier, chat_id, result, self.t)
        else:
            await send_card(self.bot, self.repo, chat_id, result, self.t)

    # --- outcomes -------------------------------------------------------------------------

    async def render(self, outcome: BuyOutcome, country: str) -> None:
        t = self.t
        match outcome:
            case Bought(activation=activation):
                await self.show(activation)
                await self.mark_bought()
            case InLine(queued=queued):
                # No label edit here: a line forms when the bot is busiest, and the place
                # message already answers the tap where the user looks.
                await self.show(queued)
            case Repeated():
                await self._repeated(outcome)
            case Gone(ref=ref):
                await self.say(t("buy-gone", name=ref), services_button_keyboard(t, country))
            case PriceChanged(quote=quote, shown=shown):
                # Never charge a price the user did not see: show the new one and ask.
                await self.say(
                    t(
                        "buy-price-changed",
                        name=quote.service.name,
                        price=t.usd(quote.price_units),
                        old=t.usd(shown),
                    ),
                    confirm_price_keyboard(
                        t, country, quote.service, quote.provider_id, quote.price_units
                    ),
                )
            case Insufficient(needed=needed, balance=balance, group=group):
                if group is not None:
                    await self.say(
                        t(
                            "group-insufficient",
                            name=self.user.first_name,
                            price=t.usd(needed),
                            balance=t.usd(balance),
                        )
                    )
                else:
                    text = t(
                        "buy-insufficient",
                        price=t.usd(needed),
                        balance=t.usd(balance),
                        howto=topup_howto(t, self.settings),
                    )
                    keyboard = insufficient_keyboard(t, country, self._top_up_and_buy(balance))
                    await self.say(text, keyboard)
            case LimitReached(limit=limit, spent=spent, needed=needed):
                await self.say(
                    t(
                        "group-limit-reached",
                        name=self.user.first_name,
                        limit=t.usd(limit),
                        spent=t.usd(spent),
                        price=t.usd(needed),
                    )
                )
            case LineFull(limit=limit):
                await self.say(t("queue-full", limit=limit))
            case NotMember(group=group):
                await self.say(t("buy-again-not-member", group=group.title or str(group.id)))
            case Pending(activation=activation, quote=quote):
                await self.say(t("buy-pending", name=quote.service.name))
                await self.show(activation)
            case Rejected():
                await self._rejected(outcome, country)
            case SalesPaused(minutes_left=minutes):
                await self.say(paused_notice(t, minutes))

    def _top_up_and_buy(self, balance: int) -> InlineKeyboardButton | None:
        """ "Top up $0.67 and buy": a Stars invoice for the shortfall that, once paid, makes
        this very purchase (None in a group, or when it cannot be packed)."""
        if self.chat_id < 0:
            return None
        p = self.pressed
        intent = BuyIntent(p.country, p.ref, p.pool, p.price, p.nonce)
        invoice = shortfall_invoice(0, balance, intent, self.settings.stars_per_usd)
        if invoice is None:
            return None
        data = TopupBuyCb(country=p.country, ref=p.ref, pool=p.pool, price=p.price, nonce=p.nonce)
        try:
            data.pack()
        except ValueError:
            return None
        label = self.t.plain(
            "buy-topup-and-buy", amount=self.t.usd(invoice.units), stars=invoice.stars
        )
        return button(label, data)

    async def _repeated(self, outcome: Repeated) -> None:
        """The same button again (a double tap, a tap on an old message): buy nothing."""
        existing, t, answer = outcome.activation, self.t, self.callback_answer
        if answer is None:
            # A "top up and buy" payment delivered again, or its invoice paid twice: the
            # purchase was made the first time; show its card only if it never was.
            if existing.card_message_id is None and existing.state not in ("failed",):
                await self.show(existing)
            return
        if outcome.place is not None:
            answer.text = t.plain("queue-already-answer", place=outcome.place)
        elif existing.state == "failed":
            answer.text = t.plain("buy-failed")
        elif existing.state in ("purchasing", "unknown"):
            answer.text = t.plain("buy-already-pending")
        else:
            answer.text = t.plain("buy-already")
            if existing.card_message_id is None:
                # The first tap bought but never showed the card (it crashed or was stopped).
                await self.show(existing)

    async def _rejected(self, outcome: Rejected, country: str) -> None:
        t, exc, quote = self.t, outcome.error, outcome.quote
        service = quote.service
        code = exc.upstream_code
        logger.info("purchase of %s rejected: %s", service.code, code)
        if isinstance(exc, UpstreamBalanceExhausted):
            await self.say(t("buy-unavailable"), services_button_keyboard(t, country))
            return
        if code == "OUT_OF_STOCK":
            # Stock moved: look again, so the alternatives offered are ones that exist now.
            self.catalogue.invalidate(country)
            fresh = await self.catalogue.find(country, service.ref) or service
            if quote.provider_id is not None:
                await self.say(
                    t("buy-out-of-stock-pool", pool=quote.provider_id, name=fresh.name),
                    pools_keyboard(t, fresh, country=country, excluding=quote.provider_id),
                )
            else:
                await self.say(
                    t("buy-out-of-stock", name=fresh.name),
                    retry_keyboard(t, country, fresh, None, fresh.price_units),
                )
            return
        if code == "PRICE_VERIFICATION_FAILED":
            self.catalogue.invalidate(country)
            await self.say(t("buy-price-verification"), services_button_keyboard(t, country))
            return
        retry = retry_keyboard(t, country, service, quote.provider_id, quote.price_units)
        if code == "RATE_LIMITED":
            seconds = round(exc.retry_after) if exc.retry_after else _RETRY_SECONDS_FALLBACK
            await self.say(t("buy-rate-limited", seconds=max(1, seconds)), retry)
            return
        if code in ("PROVIDER_ERROR", "SERVER_ERROR", "CONCURRENT_ERROR", "UPSTREAM_UNREACHABLE"):
            await self.say(t("buy-provider-error"), retry)
            return
        if not exc.retryable:
            await self.say(t("buy-unavailable"), services_button_keyboard(t, country))
            return
        await self.say(t("buy-failed"), retry)


@dataclass(frozen=True, slots=True)
class BuyFlow:
    """The edge of the one buy path, built once by the composition root; the private and the
    group routers' buy buttons both end in `tap`."""

    buying: Buying
    bot: Bot
    repo: Repo
    catalogue: Catalogue
    settings: Settings
    queue: PurchaseQueue
    notifier: QueueNotifier

    async def tap(
        self,
        query: CallbackQuery,
        callback_data: BuyCb,
        *,
        user: User,
        wallet: Wallet,
        group: Chat | None,
        t: Translator,
        callback_answer: CallbackAnswer,
    ) -> None:
        """A buy button was pressed: buy through the one buy path and show what came of it.
        `wallet` pays unless the button repeats a purchase another wallet paid; `group` is
        the group the button was pressed in."""
        message = query.message
        if not isinstance(message, Message):
            return
        await self._buy(
            query,
            message,
            callback_data,
            user=user,
            wallet=wallet,
            group=group,
            t=t,
            callback_answer=callback_answer,
        )

    async def after_topup(
        self, message: Message, intent: BuyIntent, *, user: User, wallet: Wallet, t: Translator
    ) -> None:
        """A "top up and buy" invoice was paid into `wallet` (read after the credit): make the
        purchase its button stood for, at the price that button showed — or ask again if the
        price changed. Its nonce is the buy button's, so it is bought at most once."""
        pressed = BuyCb(
            country=intent.country,
            ref=intent.ref,
            pool=intent.pool,
            price=intent.price,
            nonce=intent.nonce,
        )
        await self._buy(
            None,
            message,
            pressed,
            user=user,
            wallet=wallet,
            group=None,
            t=t,
            callback_answer=None,
        )

    async def _buy(
        self,
        query: CallbackQuery | None,
        message: Message,
        pressed: BuyCb,
        *,
        user: User,
        wallet: Wallet,
        group: Chat | None,
        t: Translator,
        callback_answer: CallbackAnswer | None,
    ) -> None:
        view = BuyView(
            query,
            message,
            bot=self.bot,
            repo=self.repo,
            catalogue=self.catalogue,
            settings=self.settings,
            queue=self.queue,
            notifier=self.notifier,
            user=user,
            t=t,
            callback_answer=callback_answer,
            pressed=pressed,
        )
        tap = Tap(
            user_id=user.id,
            chat_id=view.chat_id,
            wallet=wallet,
            group=group,
            country=pressed.country,
            ref=pressed.ref,
            pool=pressed.pool or None,
            price=pressed.price,
            nonce=pressed.nonce,
        )

        async def show(outcome: BuyOutcome) -> None:
            await view.render(outcome, pressed.country)

        await self.buying.buy(tap, started=view.started, show=show)
