"""The services' events as Telegram messages: `TelegramNotifier` implements
`bot.services.notify.Notifier` and `CardCountdown` on top of the outbox.

Each durable event is rendered in its recipient's language and stored in the outbox inside the
caller's transaction, with a dedupe key that makes a repeated report queue nothing:

* a code: `code:<activation>`, kind "code", a new message replying to the card;
* a refund: `refund:<activation>`, kind "notice", likewise;
* a card redraw: `card:<activation>:<state>`, kind "card", an edit of the card;
* an alert: `alert:<dedupe>:<admin>`, kind "alert";
* a broadcast: `broadcast:<broadcast>:<user>`, kind "broadcast";
* a referral reward: `referral:<ledger entry>`, kind "notice", to the referrer.

Countdown redraws travel in the sender's in-memory lane under the key `card:<activation>`,
rendered from the database just before they go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.services.money import Movement
from bot.services.notify import (
    AdminAlert,
    BackupFailed,
    LowUpstreamBalance,
    RefundReason,
    UncreditedCryptoPayment,
    UncreditedPayment,
    UpstreamExhausted,
)
from bot.telegram.i18n import I18n, Translator
from bot.telegram.outbox import OutboxSender, edit_payload, enqueue, message_payload
from bot.telegram.texts import format_duration, render_card, render_code_message
from storage.db import Transaction
from storage.models import UNSETTLED_STATES, WAITING, Activation, Broadcast
from storage.repo import Repo

logger = logging.getLogger(__name__)

_REFUND_TEXT: Mapping[RefundReason, str] = {
    "gone": "poller-gone-refund",
    "expired": "poller-expired-refund",
}


def card_key(activation_id: int) -> str:
    """The sender's transient-lane key of an activation card's countdown redraw."""
    return f"card:{activation_id}"


def chat_of(activation: Activation) -> int:
    """Where the buyer watches: the card's chat, else where it was bought, else private."""
    if activation.card_chat_id is not None:
        return activation.card_chat_id
    if activation.chat_id is not None:
        return activation.chat_id
    return activation.user_id


def _reply_to(activation: Activation, chat_id: int) -> int | None:
    return activation.card_message_id if activation.card_chat_id == chat_id else None


@dataclass(eq=False)
class TelegramNotifier:
    repo: Repo
    i18n: I18n
    sender: OutboxSender
    # What the cards' countdowns are drawn against.
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.db = self.repo.db

    # --- Notifier -------------------------------------------------------------------------

    async def code_arrived(self, tx: Transaction, activation: Activation) -> None:
        t = await self._translator(activation.user_id, tx)
        text, markup = render_code_message(activation, t)
        chat_id = chat_of(activation)
        await enqueue(
            self.repo,
            chat_id,
            "code",
            message_payload(text, markup, reply_to_message_id=_reply_to(activation, chat_id)),
            dedupe_key=f"code:{activation.id}",
            tx=tx,
        )

    async def refunded(
        self, tx: Transaction, activation: Activation, reason: RefundReason, *, waited: float
    ) -> None:
        t = await self._translator(activation.user_id, tx)
        text = t(
            _REFUND_TEXT[reason],
            service=activation.service_name,
            phone=activation.phone_number or "",
            price=t.usd(activation.user_price),
            waited=format_duration(waited),
        )
        chat_id = chat_of(activation)
        await enqueue(
            self.repo,
            chat_id,
            "notice",
            message_payload(text, reply_to_message_id=_reply_to(activation, chat_id)),
            dedupe_key=f"refund:{activation.id}",
            tx=tx,
        )

    async def card_changed(self, tx: Transaction, activation: Activation) -> None:
        if activation.card_chat_id is None or activation.card_message_id is None:
            return
        t = await self._translator(activation.user_id, tx)
        text, markup = render_card(activation, t, self.wall())
        await enqueue(
            self.repo,
            activation.card_chat_id,
            "card",
            edit_payload(activation.card_message_id, text, markup),
            dedupe_key=f"card:{activation.id}:{activation.state}",
            tx=tx,
        )

    async def referral_earned(
        self, tx: Transaction, moved: Movement, activation: Activation
    ) -> None:
        assert moved.entry is not None  # reported only when money moved
        referrer_id = moved.wallet.owner_id
        t = await self._translator(referrer_id, tx)
        text = t(
            "referral-earned",
            amount=t.usd(moved.amount),
            balance=t.usd(moved.wallet.balance),
        )
        await enqueue(
            self.repo,
            referrer_id,
            "notice",
            message_payload(text),
            dedupe_key=f"referral:{moved.entry.id}",
            tx=tx,
        )

    async def admin_alert(
        self, tx: Transaction, admin_id: int, alert: AdminAlert, *, dedupe: str
    ) -> bool:
        t = await self._translator(admin_id, tx)
        queued = await enqueue(
            self.repo,
            admin_id,
            "alert",
            message_payload(_alert_text(t, alert)),
            dedupe_key=f"alert:{dedupe}:{admin_id}",
            tx=tx,
        )
        return queued is not None

    async def broadcast(self, tx: Transaction, broadcast: Broadcast, user_id: int) -> bool:
        queued = await enqueue(
            self.repo,
            user_id,
            "broadcast",
            message_payload(broadcast.text),
            dedupe_key=f"broadcast:{broadcast.id}:{user_id}",
            tx=tx,
        )
        return queued is not None

    def wake(self) -> None:
        self.sender.wake()

    # --- CardCountdown --------------------------------------------------------------------

    def redraw(self, activation: Activation, *, on_refused: Callable[[int], None]) -> None:
        if activation.card_chat_id is None:
            return
        drawn: list[int] = []

        async def render() -> Mapping[str, Any] | None:
            # Drawn from the database just before it goes, so it is never older than the
            # state it shows; a settled activation's card is redrawn by the outbox instead.
            current = await self.repo.activations.get(activation.id)
            if (
                current is None
                or current.state not in (WAITING, *UNSETTLED_STATES)
                or current.card_chat_id is None
                or current.card_message_id is None
            ):
                return None
            user = await self.repo.users.get(current.user_id)
            if user is not None and user.inactive:
                return None
            t = self.i18n.translator(user.language if user is not None else None)
            text, markup = render_card(current, t, self.wall())
            drawn.append(current.card_message_id)
            return edit_payload(current.card_message_id, text, markup)

        def refused(error: str) -> None:
            logger.info("card of activation %d cannot be redrawn (%s)", activation.id, error)
            if drawn:
                on_refused(drawn[-1])

        self.sender.post_transient(
            card_key(activation.id), activation.card_chat_id, render, on_refused=refused
        )

    def forget(self, activation_id: int) -> None:
        self.sender.discard_transient(card_key(activation_id))

    def redraws_per_second(self) -> float:
        return float(self.sender.limits.background_limit)

    # --- rendering ------------------------------------------------------------------------

    async def _translator(self, user_id: int, tx: Transaction) -> Translator:
        user = await self.repo.users.get(user_id, tx=tx)
        return self.i18n.translator(user.language if user is not None else None)


def _alert_text(t: Translator, alert: AdminAlert) -> str:
    match alert:
        case UpstreamExhausted():
            return t("admin-alert-exhausted")
        case LowUpstreamBalance(balance_units=balance, threshold_units=threshold):
            return t(
                "admin-alert-low-balance",
                balance=t.usd(balance),
                threshold=t.usd(threshold),
            )
        case UncreditedPayment(charge_id=charge, user_id=user, stars=stars, reason=reason):
            return t("admin-alert-payment", charge=charge, user=user, stars=stars, reason=reason)
        case BackupFailed(reason=reason):
            return t("admin-alert-backup", reason=reason)
        case UncreditedCryptoPayment(invoice_id=invoice_id, reason=reason):
            return t("admin-alert-crypto", invoice=str(invoice_id), reason=reason)
