"""What a card's buttons do (Refresh, Cancel and refund, Show) once the caller has decided the
presser may act: the private card router (the buyer) and the group one (the buyer or a group
admin) share it."""

from __future__ import annotations

import logging
import time

from aiogram import Bot
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from bot.daisysim import COMPLETED, DaisySimClient, DaisySimError, RateLimited
from bot.money import format_usd
from bot.services import activation as activation_service
from bot.services.errors import (
    ActivationNotActive,
    CancelTooEarly,
    NotYourActivation,
    UpstreamBusy,
    UpstreamUnavailable,
)
from bot.telegram.callbacks import ActAction
from bot.telegram.cards import edit_card, send_card
from bot.telegram.i18n import Translator
from bot.telegram.texts import cancel_wait, format_countdown, render_code_message
from storage.models import Activation, User
from storage.repo import Repo

logger = logging.getLogger(__name__)


async def check_now(repo: Repo, client: DaisySimClient, activation: Activation) -> bool:
    """Ask the upstream about one waiting activation now (check-all with one id) and settle
    what it says; returns whether a code was stored by this call.

    The poller does the same for every waiting activation on its own schedule; this is the
    user's "Refresh", so a code can land even between two poller rounds.
    """
    if activation.state != "waiting" or activation.upstream_id is None:
        return False
    results = await client.check_all([activation.upstream_id])
    result = next((r for r in results if r.activation_id == activation.upstream_id), None)
    if result is None or result.is_waiting:
        return False
    if result.status == COMPLETED and result.code:
        return await activation_service.complete(repo, activation.id, result.code)
    if result.is_final:
        await activation_service.resolve_gone(repo, activation.id, reason=result.status)
    return False


async def announce_code(bot: Bot, chat_id: int, activation: Activation, t: Translator) -> None:
    text, markup = render_code_message(activation, t)
    await bot.send_message(chat_id, text, reply_markup=markup)


async def act_on_card(
    query: CallbackQuery,
    action: ActAction,
    activation: Activation,
    *,
    bot: Bot,
    repo: Repo,
    daisysim: DaisySimClient,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
    not_yours_key: str = "card-not-yours",
    cancelled_key: str = "card-cancelled",
) -> None:
    """A card button pressed by someone the caller has already found may act on it: the
    private router (the buyer) and the group router (the buyer or a group admin) share it.
    Only the texts that name who may act and where the refund goes differ."""
    if action == ActAction.SHOW:
        if query.message is not None:
            # A fresh copy at the bottom of the chat; it becomes the card the poller edits.
            await send_card(bot, repo, query.message.chat.id, activation, t)
    elif action == ActAction.REFRESH:
        await _refresh(query, activation, bot, repo, daisysim, t, callback_answer)
    else:
        await _cancel(
            query,
            activation,
            bot,
            repo,
            daisysim,
            user,
            t,
            callback_answer,
            not_yours_key=not_yours_key,
            cancelled_key=cancelled_key,
        )


async def _refresh(
    query: CallbackQuery,
    activation: Activation,
    bot: Bot,
    repo: Repo,
    daisysim: DaisySimClient,
    t: Translator,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        got_code = await check_now(repo, daisysim, activation)
    except RateLimited as exc:
        callback_answer.text = t.plain("card-busy", seconds=max(1, round(exc.retry_after)))
        return
    except DaisySimError as exc:
        logger.info("refresh of activation %d failed upstream: %s", activation.id, exc)
        callback_answer.text = t.plain("error-upstream")
        callback_answer.show_alert = True
        return
    current = await repo.activations.get(activation.id) or activation
    if got_code and query.message is not None:
        await announce_code(bot, query.message.chat.id, current, t)
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
    bot: Bot,
    repo: Repo,
    daisysim: DaisySimClient,
    user: User,
    t: Translator,
    callback_answer: CallbackAnswer,
    *,
    not_yours_key: str,
    cancelled_key: str,
) -> None:
    if activation.state != "waiting":
        callback_answer.text = t.plain("card-finished")
        await edit_card(query, activation, t)
        return
    wait = cancel_wait(activation, time.time())
    if wait > 0:
        # Still inside the lock by our clock: asking upstream would only spend the
        # cancel budget (10 a minute, shared by every user) to hear TOO_EARLY.
        callback_answer.text = t.plain("card-cancel-wait", time=format_countdown(wait))
        await edit_card(query, activation, t)
        return
    try:
        after = await activation_service.cancel(
            repo,
            daisysim,
            activation.id,
            actor_id=user.id,
            # A group admin cancelling a member's number; the caller checked they may.
            actor_is_admin=activation.user_id != user.id,
        )
    except CancelTooEarly as exc:
        callback_answer.text = t.plain("card-cancel-wait", time=format_countdown(exc.seconds_left))
        await edit_card(query, activation, t, cancel_in=exc.seconds_left)
        return
    except NotYourActivation:
        callback_answer.text = t.plain(not_yours_key)
        callback_answer.show_alert = True
        return
    except ActivationNotActive as exc:
        callback_answer.text = t.plain("card-finished")
        await edit_card(query, exc.activation, t)
        return
    except UpstreamBusy as exc:
        callback_answer.text = t.plain("card-busy", seconds=max(1, round(exc.retry_after)))
        return
    except UpstreamUnavailable:
        callback_answer.text = t.plain("error-upstream")
        callback_answer.show_alert = True
        return
    if after.state == "completed":
        callback_answer.text = t.plain("card-cancel-code")
        if query.message is not None:
            await announce_code(bot, query.message.chat.id, after, t)
    elif after.state in ("cancelled", "expired"):
        callback_answer.text = t.plain(cancelled_key, price=format_usd(after.user_price))
    else:
        callback_answer.text = t.plain("card-finished")
    await edit_card(query, after, t)
