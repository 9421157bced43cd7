"""What a card's buttons do (Refresh, Cancel and refund, Show) once the caller has decided the
presser may act: the private card router (the buyer) and the group one (the buyer or a group
admin) share it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.daisysim import COMPLETED, DaisySimClient, DaisySimError, RateLimited
from bot.services import activation as activation_service
from bot.services.errors import (
    ActivationNotActive,
    CancelTooEarly,
    NotYourActivation,
    UpstreamBusy,
    UpstreamUnavailable,
)
from bot.services.notify import Notifier
from bot.telegram.callbacks import ActAction
from bot.telegram.cards import edit_card, send_card
from bot.telegram.i18n import Translator
from bot.telegram.texts import cancel_wait, format_countdown
from storage.models import Activation, User
from storage.repo import Repo

logger = logging.getLogger(__name__)

T = TypeVar("T")

# An upstream call still running after this many seconds gets the tap answered first, well
# before Telegram's ~15 s after which a callback query can no longer be answered at all.
ANSWER_FIRST_AFTER: Final = 1.0


async def check_now(
    repo: Repo, client: DaisySimClient, notifier: Notifier, activation: Activation
) -> bool:
    """Ask the upstream about one waiting activation now (check-all with one id) and settle
    what it says; returns whether a code was stored by this call.

    The poller does the same for every waiting activation on its own schedule; this is the
    user's "Refresh", so a code can land even between two poller rounds. Whatever it
    settles is told through `notifier` in the settling transaction, like the poller's.
    """
    if activation.state != "waiting" or activation.upstream_id is None:
        return False
    results = await client.check_all([activation.upstream_id])
    result = next((r for r in results if r.activation_id == activation.upstream_id), None)
    if result is None or result.is_waiting:
        return False
    if result.status == COMPLETED and result.code:
        return await activation_service.complete(
            repo, activation.id, result.code, notifier=notifier
        )
    if result.is_final:
        await activation_service.resolve_gone(
            repo, activation.id, reason=result.status, notifier=notifier
        )
    return False


@dataclass(eq=False)
class _Tap:
    """The answer to one press: a toast, unless the tap had to be answered before the
    outcome was known; then what the card cannot show comes as a message in the chat."""

    query: CallbackQuery
    answer: CallbackAnswer
    bot: Bot
    answered: bool = False

    async def answer_now(self, text: str) -> None:
        self.answer.disable()
        self.answered = True
        try:
            await self.query.answer(text)
        except TelegramAPIError as exc:
            # Only the toast is lost; the card shows the outcome.
            logger.info("could not answer a card tap early: %s", exc)

    def toast(self, text: str) -> None:
        """An outcome the card shows as well: lost without harm once answered early."""
        if not self.answered:
            self.answer.text = text

    async def problem(self, text: str, *, alert: bool = False) -> None:
        """An outcome the card does not show (the upstream refused, try again)."""
        if not self.answered:
            self.answer.text = text
            self.answer.show_alert = alert
            return
        message = self.query.message
        chat_id = message.chat.id if message is not None else self.query.from_user.id
        try:
            await self.bot.send_message(chat_id, text)
        except TelegramAPIError as exc:
            logger.warning("could not tell chat %d how a cancel ended: %s", chat_id, exc)

    async def answer_first_if_slow(self, call: Awaitable[T], text: str) -> T:
        """`call`'s result; if it takes longer than ANSWER_FIRST_AFTER, the tap is answered
        with `text` meanwhile, so a slow upstream never leaves it to expire unanswered."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=ANSWER_FIRST_AFTER)
            if not done:
                await self.answer_now(text)
            return await task
        finally:
            task.cancel()  # a no-op once it is done; stops it if this handler is cancelled


async def act_on_card(
    query: CallbackQuery,
    action: ActAction,
    activation: Activation,
    *,
    bot: Bot,
    repo: Repo,
    daisysim: DaisySimClient,
    notifier: Notifier,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
    not_yours_key: str = "card-not-yours",
    cancelled_key: str = "card-cancelled",
) -> None:
    """A card button pressed by someone the caller has already found may act on it: the
    private router (the buyer) and the group router (the buyer or a group admin) share it.
    Only the texts that name who may act and where the refund goes differ.

    A code or a refund is never sent from here: the service tells the user through
    `notifier` in the transaction that settled the activation, and only if this press is
    what settled it (the poller may have been first)."""
    if action == ActAction.SHOW:
        if query.message is not None:
            # A fresh copy at the bottom of the chat; it becomes the card the poller edits.
            await send_card(bot, repo, query.message.chat.id, activation, t)
    elif action == ActAction.REFRESH:
        await _refresh(query, activation, repo, daisysim, notifier, t, callback_answer)
    else:
        await _cancel(
            query,
            activation,
            repo,
            daisysim,
            notifier,
            user,
            t,
            _Tap(query, callback_answer, bot),
            not_yours_key=not_yours_key,
            cancelled_key=cancelled_key,
        )


async def _refresh(
    query: CallbackQuery,
    activation: Activation,
    repo: Repo,
    daisysim: DaisySimClient,
    notifier: Notifier,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        await check_now(repo, daisysim, notifier, activation)
    except RateLimited as exc:
        callback_answer.text = t.plain("card-busy", seconds=max(1, round(exc.retry_after)))
        return
    except DaisySimError as exc:
        logger.info("refresh of activation %d failed upstream: %s", activation.id, exc)
        callback_answer.text = t.plain("error-upstream")
        callback_answer.show_alert = True
        return
    current = await repo.activations.get(activation.id) or activation
    if current.state == "completed":
        callback_answer.text = t.plain("card-code-arrived")
    elif current.state == "waiting":
        callback_answer.text = t.plain("card-refreshed")
    elif current.state in ("purchasing", "unknown"):
        callback_answer.text = t.plain("buy-already-pending")
    else:
        callback_answer.text = t.plain("card-finished")
    await edit_card(query, current, t)


async def _cancel(
    query: CallbackQuery,
    activation: Activation,
    repo: Repo,
    daisysim: DaisySimClient,
    notifier: Notifier,
    user: User,
    t: Translator,
    tap: _Tap,
    *,
    not_yours_key: str,
    cancelled_key: str,
) -> None:
    if activation.state != "waiting":
        tap.toast(t.plain("card-finished"))
        await edit_card(query, activation, t)
        return
    wait = cancel_wait(activation, time.time())
    if wait > 0:
        # Still inside the lock by our clock: asking upstream would only spend the
        # cancel budget (10 a minute, shared by every user) to hear TOO_EARLY.
        tap.toast(t.plain("card-cancel-wait", time=format_countdown(wait)))
        await edit_card(query, activation, t)
        return
    try:
        after = await tap.answer_first_if_slow(
            activation_service.cancel(
                repo,
                daisysim,
                activation.id,
                actor_id=user.id,
                # A group admin cancelling a member's number; the caller checked they may.
                actor_is_admin=activation.user_id != user.id,
                notifier=notifier,
            ),
            t.plain("card-cancelling"),
        )
    except CancelTooEarly as exc:
        tap.toast(t.plain("card-cancel-wait", time=format_countdown(exc.seconds_left)))
        await edit_card(query, activation, t, cancel_in=exc.seconds_left)
        return
    except NotYourActivation:
        await tap.problem(t.plain(not_yours_key), alert=True)
        return
    except ActivationNotActive as exc:
        tap.toast(t.plain("card-finished"))
        await edit_card(query, exc.activation, t)
        return
    except UpstreamBusy as exc:
        await tap.problem(t.plain("card-busy", seconds=max(1, round(exc.retry_after))))
        return
    except UpstreamUnavailable:
        await tap.problem(t.plain("error-upstream"), alert=True)
        return
    if after.state == "completed":
        tap.toast(t.plain("card-cancel-code"))
    elif after.state in ("cancelled", "expired"):
        tap.toast(t.plain(cancelled_key, price=t.usd(after.user_price)))
    else:
        tap.toast(t.plain("card-finished"))
    await edit_card(query, after, t)
