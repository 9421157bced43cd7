"""Messages the bot renders from stored state: the activation card and the code message.

Pure functions of (activation, translator, clock), so the poller and the outbox can redraw a
card or send a code exactly as the handlers do, and tests can call them without Telegram.
"""

from __future__ import annotations

from typing import Protocol

from aiogram.types import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.buying import again_nonce
from bot.services.catalogue import service_ref
from bot.telegram.callbacks import ActAction, ActCb, BuyCb
from bot.telegram.i18n import Translator
from storage.models import ACTIVE_STATES, FINAL_STATES, UNSETTLED_STATES


class CardActivation(Protocol):
    """The fields of a stored activation a card needs (storage's Activation has them all)."""

    @property
    def id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def service_code(self) -> str: ...
    @property
    def service_name(self) -> str: ...
    @property
    def provider_id(self) -> str | None: ...
    @property
    def country(self) -> str: ...
    @property
    def user_price(self) -> int: ...
    @property
    def phone_number(self) -> str | None: ...
    @property
    def code(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def purchased_at(self) -> float | None: ...
    @property
    def cancel_after(self) -> float | None: ...
    @property
    def finished_at(self) -> float | None: ...
    @property
    def chat_id(self) -> int | None: ...


def format_duration(seconds: float) -> str:
    """`0:07`, `2:41`, `1:02:03`: how long, as a phone shows a timer."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_countdown(seconds: float) -> str:
    """Like format_duration, rounded up: "Cancel in 0:00" would be a lie while still locked."""
    whole = int(seconds)
    return format_duration(whole + 1 if seconds > whole else whole)


def cancel_wait(activation: CardActivation, now: float) -> float:
    """Seconds until the cancel lock ends (0 when cancelling is allowed)."""
    if activation.cancel_after is None:
        return 0.0
    return max(0.0, activation.cancel_after - now)


def paid_by_group(activation: CardActivation) -> bool:
    """Whether a group's wallet paid: a purchase on a group's money belongs to that group's
    chat (negative ids are groups), wherever its card was sent."""
    return activation.chat_id is not None and activation.chat_id < 0


def status_text(activation: CardActivation, t: Translator) -> str:
    return t(f"card-status-{activation.state}", price=t.usd(activation.user_price))


def render_card(
    activation: CardActivation, t: Translator, now: float, *, cancel_in: float | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """The card's text and buttons as of `now` (unix seconds).

    `cancel_in` overrides the countdown with the seconds the upstream itself named in a
    TOO_EARLY answer, which are the truth when our clock and its clock disagree.
    """
    started = activation.purchased_at or activation.created_at
    if activation.state in ACTIVE_STATES:
        elapsed = now - started
    else:
        elapsed = (activation.finished_at or now) - started
    args: dict[str, str | int] = {
        "service": activation.service_name,
        "phone": activation.phone_number or t.plain("card-no-number"),
        "price": t.usd(activation.user_price),
        "status": status_text(activation, t),
        "elapsed": format_duration(elapsed),
    }
    if activation.code:
        text = t("card-text-code", code=activation.code, **args)
    else:
        text = t("card-text", **args)
    if paid_by_group(activation):
        text += "\n" + t("card-paid-by-group")
    if activation.state == "waiting":
        text += "\n\n" + t("card-hint-waiting")
    elif activation.state in UNSETTLED_STATES:
        text += "\n\n" + t("card-hint-confirming")
    return text, card_keyboard(activation, t, now, cancel_in=cancel_in)


def card_keyboard(
    activation: CardActivation, t: Translator, now: float, *, cancel_in: float | None = None
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if activation.code:
        rows.append([_copy(t.plain("card-copy-code-button"), activation.code)])
    if activation.phone_number and activation.state in {"waiting", "completed"}:
        rows.append([_copy(t.plain("card-copy-number-button"), activation.phone_number)])
    if activation.state in UNSETTLED_STATES:
        # While the purchase is being confirmed there is nothing to cancel yet, but a tap
        # redraws the card as it stands (the timer, or the number if it was found meanwhile).
        rows.append([_act(t.plain("card-refresh-button"), ActAction.REFRESH, activation.id)])
    if activation.state == "waiting":
        rows.append([_act(t.plain("card-refresh-button"), ActAction.REFRESH, activation.id)])
        wait = cancel_wait(activation, now) if cancel_in is None else cancel_in
        if wait > 0:
            label = t.plain("card-cancel-locked-button", time=format_countdown(wait))
        else:
            label = t.plain("card-cancel-button")
        rows.append([_act(label, ActAction.CANCEL, activation.id)])
    if activation.state in FINAL_STATES:
        again = buy_again_button(activation, t)
        if again is not None:
            rows.append([again])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def buy_again_button(activation: CardActivation, t: Translator) -> InlineKeyboardButton | None:
    """One tap repeats the purchase at the price paid (a changed price is confirmed first).

    The nonce is derived from the activation rather than random: the card is redrawn many
    times (countdown, code, refund) and every version of its "Buy again" must be the same
    button, or a double tap that straddles a redraw would buy twice. It also tells the buy
    service which purchase is repeated, so the wallet that paid it pays again.
    """
    try:
        data = BuyCb(
            country=activation.country,
            ref=service_ref(activation.service_code),
            pool=activation.provider_id or "",
            price=activation.user_price,
            nonce=again_nonce(activation.id),
        ).pack()
    except ValueError:
        return None
    key = "card-buy-again-group-button" if paid_by_group(activation) else "card-buy-again-button"
    label = t.plain(key, price=t.usd(activation.user_price))
    return InlineKeyboardButton(text=label, callback_data=data)


def render_code_message(
    activation: CardActivation, t: Translator
) -> tuple[str, InlineKeyboardMarkup]:
    """The new message that makes the phone buzz when a code arrives."""
    code = activation.code or ""
    text = t(
        "code-text",
        service=activation.service_name,
        phone=activation.phone_number or "",
        code=code,
    )
    markup = InlineKeyboardMarkup(inline_keyboard=[[_copy(t.plain("card-copy-code-button"), code)]])
    return text, markup


def _copy(label: str, value: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=label, copy_text=CopyTextButton(text=value))


def _act(label: str, action: ActAction, activation_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=label, callback_data=ActCb(action=action, id=activation_id).pack()
    )
