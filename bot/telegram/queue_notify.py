"""What a buyer waiting in the purchase queue sees, and how it reaches Telegram.

A queued purchase has one message: "3rd in line, about 20 s" with a button to leave. It is
redrawn in place, through the outbox sender's low-priority lane of transient redraws, only when
the place or the estimate's bucket changed (estimates move by steps that grow with them, so a
long wait is not redrawn every second), and each redraw is rendered from the database just
before it goes, so it is never older than the line. When the purchase is served the same
message becomes the activation card: a durable outbox edit written in the transaction that
settled the purchase, so a crash cannot leave a served buyer looking at their old place.

The composition root builds the queue and this notifier; handlers find them as the workflow
data `purchase_queue` and `queue_notifier`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from babel import Locale

from bot.config import Settings
from bot.services import admin as admin_service
from bot.services.errors import PurchaseRejected
from bot.services.notify import Notifier
from bot.services.purchase_queue import PurchaseQueue
from bot.telegram.callbacks import QueueAction, QueueCb
from bot.telegram.i18n import I18n, Translator
from bot.telegram.outbox import OutboxSender, TransientRender, edit_payload, enqueue
from bot.telegram.texts import render_card
from storage.db import Transaction
from storage.models import Activation
from storage.repo import Repo

logger = logging.getLogger(__name__)

# Estimates up to this many seconds read "any moment now".
SOON_SECONDS: Final = 5
# Below this, estimates move in steps of 10 s; above, in whole minutes.
SECONDS_STEP_UNTIL: Final = 120
# Redraw passes over the line happen at most this often, and at least this often while people
# wait (their estimates tick down), in real seconds at time scale 1.
MIN_PASS_GAP: Final = 1.0
IDLE_PASS_EVERY: Final = 5.0
# The outbox kind of the edit that turns a served buyer's place into their card: the number
# they waited for is news, ahead of countdown redraws.
SERVED_KIND: Final = "notice"


def queue_key(activation_id: int) -> str:
    return f"queue:{activation_id}"


def ordinal_category(lang: str, number: int) -> str:
    """CLDR's ordinal category (one/two/few/other), for "1st", "2nd", "3rd", "4th"."""
    try:
        return str(Locale.parse(lang).ordinal_form(number))
    except (ValueError, LookupError):
        return "other"


def estimate_bucket(seconds: float) -> int:
    """The estimate as shown, in seconds: 0 for "any moment now", then rounded up to 10 s,
    then to whole minutes. A redraw happens only when this changes."""
    if seconds <= SOON_SECONDS:
        return 0
    if seconds < SECONDS_STEP_UNTIL:
        return math.ceil(seconds / 10) * 10
    return math.ceil(seconds / 60) * 60


def wait_text(t: Translator, seconds: float) -> str:
    bucket = estimate_bucket(seconds)
    if bucket == 0:
        return t.plain("queue-wait-soon")
    if bucket < SECONDS_STEP_UNTIL:
        return t.plain("queue-wait-seconds", seconds=bucket)
    return t.plain("queue-wait-minutes", minutes=bucket // 60)


def render_place(
    activation: Activation, place: int, wait: float, t: Translator
) -> tuple[str, InlineKeyboardMarkup]:
    """The message of a purchase waiting in line: its place, the estimate, a way out."""
    text = t(
        "queue-text",
        service=activation.service_name,
        price=t.usd(activation.user_price),
        place=place,
        ordinal=ordinal_category(t.lang, place),
        wait=wait_text(t, wait),
    )
    leave = InlineKeyboardButton(
        text=t.plain("queue-leave-button"),
        callback_data=QueueCb(action=QueueAction.LEAVE, id=activation.id).pack(),
    )
    return text, InlineKeyboardMarkup(inline_keyboard=[[leave]])


@dataclass(eq=False)
class QueueNotifier:
    """The purchase queue's listener on the Telegram side; `start()`/`stop()` with the app."""

    repo: Repo
    i18n: I18n
    settings: Settings
    queue: PurchaseQueue
    sender: OutboxSender
    # Where an empty upstream account is reported to the admins.
    notifier: Notifier
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        self.db = self.repo.db
        # What each buyer's message shows now: (place, estimate bucket).
        self._shown: dict[int, tuple[int, int]] = {}
        # Messages Telegram refused to edit for good (deleted): not redrawn again.
        self._dead: set[int] = set()
        self._moved = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.min_gap = max(0.05, MIN_PASS_GAP / self.time_scale)
        self.idle_every = max(0.5, IDLE_PASS_EVERY / self.time_scale)
        self.redraws = 0

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stop.clear()
        # After a restart nothing is known to be on screen: everyone is redrawn once.
        self._moved.set()
        self._task = asyncio.create_task(self._run(), name="queue-notifier")

    async def stop(self) -> None:
        self._stop.set()
        self._moved.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- QueueListener --------------------------------------------------------------------

    async def served(self, tx: Transaction, activation: Activation) -> None:
        """The buyer's place becomes their card, in the transaction that settled it."""
        self._shown.pop(activation.id, None)
        if activation.card_chat_id is None or activation.card_message_id is None:
            return  # its message is not on screen yet; the handler draws the card there
        user = await self.repo.users.get(activation.user_id, tx=tx)
        t = self.i18n.translator(user.language if user is not None else None)
        text, markup = render_card(activation, t, time.time())
        await enqueue(
            self.repo,
            activation.card_chat_id,
            SERVED_KIND,
            edit_payload(activation.card_message_id, text, markup),
            dedupe_key=f"queue-served:{activation.id}:{activation.state}",
            tx=tx,
        )

    async def rejected(self, exc: PurchaseRejected) -> None:
        """An empty upstream account is the admins' to fix, as on the direct path; the buyer's
        own refund notice is the card redraw `served` queued."""
        if exc.alert_admins:
            await admin_service.alert_upstream_exhausted(self.repo, self.settings, self.notifier)

    def line_moved(self) -> None:
        # A served buyer's card edit was committed just before: send it now.
        self.sender.wake()
        self._moved.set()

    # --- what the handler drew ------------------------------------------------------------

    def shown(self, activation_id: int, place: int, wait: float) -> None:
        self._shown[activation_id] = (place, estimate_bucket(wait))

    # --- the redraw passes ----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            if self._shown:
                # Estimates tick down while people wait: look again even if nobody moved.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._moved.wait(), self.idle_every)
            else:
                await self._moved.wait()
            self._moved.clear()
            if self._stop.is_set():
                break
            try:
                await self.refresh()
            except Exception:
                logger.exception("purchase queue redraw pass failed")
            # At most one pass per gap, however fast the line moves.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.min_gap)

    async def refresh(self) -> int:
        """Post a redraw for every waiting buyer whose place or estimate bucket changed;
        returns how many were posted."""
        sender = self.sender
        line = await self.queue.line()
        present: set[int] = set()
        posted = 0
        for entry in line:
            activation = entry.activation
            present.add(activation.id)
            if (
                activation.id in self._dead
                or activation.card_chat_id is None
                or activation.card_message_id is None
            ):
                continue
            view = (entry.place, estimate_bucket(entry.wait))
            key = queue_key(activation.id)
            if self._shown.get(activation.id) == view or sender.has_transient(key):
                continue
            sender.post_transient(
                key,
                activation.card_chat_id,
                self._renderer(activation.id),
                on_refused=self._refused(activation.id),
            )
            posted += 1
        self._dead &= present
        for gone in [i for i in self._shown if i not in present]:
            del self._shown[gone]
            sender.discard_transient(queue_key(gone))
        return posted

    def _refused(self, activation_id: int) -> Callable[[str], None]:
        def refused(error: str) -> None:
            logger.info(
                "queue message of activation %d cannot be redrawn (%s)", activation_id, error
            )
            self._dead.add(activation_id)

        return refused

    def _renderer(self, activation_id: int) -> TransientRender:
        async def render() -> Mapping[str, Any] | None:
            # The place as it is when the redraw goes, not when it was asked for.
            queued = await self.queue.place_of(activation_id)
            if queued is None:
                return None  # served or left: its card edit says so
            activation = queued.activation
            if activation.card_chat_id is None or activation.card_message_id is None:
                return None
            user = await self.repo.users.get(activation.user_id)
            if user is not None and user.inactive:
                return None
            t = self.i18n.translator(user.language if user is not None else None)
            text, markup = render_place(activation, queued.place, queued.wait, t)
            self._shown[activation_id] = (queued.place, estimate_bucket(queued.wait))
            self.redraws += 1
            return edit_payload(activation.card_message_id, text, markup)

        return render
