"""The outbox: every message the bot sends on its own is stored first, then sent by one task.

Codes, refund notices, alerts, broadcasts and the card edits that follow a state change are
written to the `outbox` table — by the code that changes the state, in the same transaction
where it can, with a dedupe key such as `code:<activation id>` so a message is never queued
twice — and `OutboxSender` delivers them within Telegram's flood limits (`tg_limits`):

* most urgent first: codes, then notices and alerts, then card edits, then broadcasts; card
  edits and broadcasts only use part of the global budget, so a code never queues behind them;
* one message in flight per chat, so a chat sees its messages in order;
* a 429 pauses everything for its `retry_after`; network and server errors are retried with
  exponential backoff; a user who blocked the bot is marked inactive and their queued messages
  dropped; a 400 (a message that can never be sent) is dropped with a log line.

Delivery guarantee. A message is claimed (`sending_since` set, attempt counted, a lease on
`next_attempt_at`) in one commit, handed to Telegram, then marked `sent`: at once when nothing
else is due (a quiet sender has no claim to wait for), and only while more messages wait, in
the commit of the next claim, at most `mark_delay` later, so a busy sender commits once per
round instead of once per message. A stop waits for the messages in flight and writes their
marks, so a restart loses nothing and repeats nothing. Only a crash (or a stop that has to
give up on a hung request) between a request and its mark leaves a message whose fate is
unknown; at the next start-up those are sent again, with a warning: at-least-once, because a
code sent twice is a nuisance and a code never sent is a customer who paid for nothing. Edits
are idempotent anyway ("message is not modified").

Payloads are a Bot API method and its parameters, `{"method": "sendMessage", "params": {...}}`,
built with `message_payload` / `edit_payload`; the chat id lives in its own column.

Countdown redraws of a card are not stored: they carry no information a later redraw would
not, so they travel in a small in-memory lane (`post_transient`), one per card, re-rendered
from the database just before they go, and only when there is budget to spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import (
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters

from bot.metrics import Metrics
from bot.telegram.limits import Permit, TelegramLimiter, TelegramLimits, is_group_chat
from storage.db import Transaction
from storage.repo import Repo
from storage.repos.outbox import OutboxItem, SentMark

logger = logging.getLogger(__name__)

# Lower goes first. Unknown kinds sort with card edits.
KIND_PRIORITY: Final[Mapping[str, int]] = {
    "code": 0,
    "notice": 1,
    "alert": 1,
    "card": 2,
    "broadcast": 3,
}
DEFAULT_PRIORITY: Final = 2
# From this priority on, a message only uses the background share of the global budget.
BACKGROUND_PRIORITY: Final = 2

_METHODS: Final[Mapping[str, type[TelegramMethod[Any]]]] = {
    "sendMessage": SendMessage,
    "editMessageText": EditMessageText,
    "editMessageReplyMarkup": EditMessageReplyMarkup,
    "deleteMessage": DeleteMessage,
}
_EDIT_METHODS: Final = frozenset({"editMessageText", "editMessageReplyMarkup"})
# Bad requests that mean "already done", not "broken".
_NOT_MODIFIED: Final = "message is not modified"


def priority_of(kind: str) -> int:
    return KIND_PRIORITY.get(kind, DEFAULT_PRIORITY)


def _method_of(payload: Mapping[str, Any]) -> str:
    return str(payload.get("method", "?"))


def _markup(markup: InlineKeyboardMarkup | None) -> dict[str, Any] | None:
    if markup is None:
        return None
    dumped: dict[str, Any] = markup.model_dump(mode="json", exclude_none=True)
    return dumped


def message_payload(
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
    *,
    reply_to_message_id: int | None = None,
) -> dict[str, Any]:
    """A new HTML message; replying to `reply_to_message_id` if it still exists."""
    params: dict[str, Any] = {
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    markup = _markup(reply_markup)
    if markup is not None:
        params["reply_markup"] = markup
    if reply_to_message_id is not None:
        params["reply_parameters"] = {
            "message_id": reply_to_message_id,
            "allow_sending_without_reply": True,
        }
    return {"method": "sendMessage", "params": params}


def edit_payload(
    message_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "message_id": message_id,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    markup = _markup(reply_markup)
    if markup is not None:
        params["reply_markup"] = markup
    return {"method": "editMessageText", "params": params}


def build_method(chat_id: int, payload: Mapping[str, Any]) -> TelegramMethod[Any]:
    """The aiogram method object a stored payload stands for; ValueError if it is not one."""
    name = payload.get("method")
    params = payload.get("params")
    cls = _METHODS.get(name) if isinstance(name, str) else None
    if cls is None or not isinstance(params, Mapping):
        raise ValueError(f"not an outbox payload: method={name!r}")
    values = dict(params)
    if "link_preview_options" in values and isinstance(values["link_preview_options"], Mapping):
        values["link_preview_options"] = LinkPreviewOptions(**values["link_preview_options"])
    if "reply_parameters" in values and isinstance(values["reply_parameters"], Mapping):
        values["reply_parameters"] = ReplyParameters(**values["reply_parameters"])
    method: TelegramMethod[Any] = cls.model_validate({"chat_id": chat_id, **values})
    return method


async def enqueue(
    repo: Repo,
    chat_id: int,
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    tx: Transaction | None = None,
    not_before: float | None = None,
) -> int | None:
    """Store a message for the sender (inside `tx` when given). None if `dedupe_key` was
    queued before. The sender finds it within a second; call `OutboxSender.wake()` after
    the transaction commits for it to go at once."""
    build_method(chat_id, payload)  # refuse a payload the sender could never send, now
    return await repo.outbox.enqueue(
        chat_id, kind, payload, dedupe_key=dedupe_key, tx=tx, not_before=not_before
    )


@dataclass
class SenderStats:
    sent: int = 0
    retried: int = 0
    dropped: int = 0
    failed: int = 0
    flood_waits: int = 0
    transient_sent: int = 0
    recovered: int = 0
    blocked_users: int = 0


# Renders a transient (countdown) edit just before it goes; None means "nothing to send".
TransientRender = Callable[[], Awaitable[Mapping[str, Any] | None]]


@dataclass
class _Transient:
    chat_id: int
    render: TransientRender
    # Told when Telegram refused the redraw for good (the message is gone), so the caller
    # stops redrawing it.
    on_refused: Callable[[str], None] | None = None


@dataclass
class _Outcome:
    """What one attempt came to, decided without touching the database."""

    status: str  # sent | retry | drop | fail | blocked | retarget
    error: str = ""
    message_id: int | None = None
    retry_in: float = 0.0
    new_chat_id: int | None = None
    pause: float = 0.0


@dataclass
class SenderConfig:
    max_in_flight: int = 8
    lease_seconds: float = 120.0
    # Attempts after which a message that keeps failing on network/server errors is given up.
    max_attempts: int = 12
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    # Without a wake-up the sender still looks at the table this often (retries, other
    # processes, callers that forgot to wake it).
    idle_poll_seconds: float = 1.0
    # While the sender has a backlog in hand it re-reads the whole table this often (for
    # retries coming due and rows other processes added); new rows are read on wake-up.
    busy_reload_seconds: float = 5.0
    # Rows read at a time: enough for a few seconds at Telegram's pace.
    batch_size: int = 120
    request_timeout: int = 20
    # While more messages are due, `sent` marks wait (at most this long) for the next claim
    # to share its commit; with nothing else due they are written at once. A crash inside
    # this window means a resend.
    mark_delay: float = 0.05


@dataclass(eq=False)
class OutboxSender:
    """The one task that sends the outbox. `start()`, then `stop()` before closing the bot
    session and the database."""

    repo: Repo
    bot: Bot
    limits: TelegramLimits = field(default_factory=TelegramLimits)
    config: SenderConfig = field(default_factory=SenderConfig)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    stats: SenderStats = field(default_factory=SenderStats)
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.limiter = TelegramLimiter(self.limits, clock=self.clock)
        # When (clock) an attempt last came back, whatever its outcome: a backlog that grows
        # old while this stands still is a stuck sender, not a busy one.
        self.last_attempt_at: float | None = None
        self.db = self.repo.db
        self._repo = self.repo
        self._outbox = self.repo.outbox
        self._kick = asyncio.Event()
        self._reload = True
        self._reload_at = 0.0
        self._buffer: list[OutboxItem] = []
        self._buffer_full = False
        # New rows were queued since the last look: load those (cheap, by id) at once.
        self._fresh = False
        self._max_seen = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy_chats: set[int] = set()
        self._in_flight_ids: set[int] = set()
        self._transient: dict[str, _Transient] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._progress = asyncio.Event()
        self._marks: list[SentMark] = []
        self._marks_since = 0.0
        # Marks taken out of `_marks` whose commit has not returned yet: not idle until then.
        self._writing_marks = 0

    # --- the public side ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Something was enqueued (and committed): look at the table now."""
        self._fresh = True
        self._kick.set()

    async def enqueue(
        self,
        chat_id: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
    ) -> int | None:
        """Store and wake, for callers that are not inside a transaction of their own."""
        outbox_id = await enqueue(self._repo, chat_id, kind, payload, dedupe_key=dedupe_key)
        self.wake()
        return outbox_id

    def post_transient(
        self,
        key: str,
        chat_id: int,
        render: TransientRender,
        *,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """A low-priority redraw that replaces any earlier one with the same key."""
        self._transient[key] = _Transient(chat_id, render, on_refused)
        self._kick.set()

    def discard_transient(self, key: str) -> None:
        self._transient.pop(key, None)

    def has_transient(self, key: str) -> bool:
        return key in self._transient

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        recovered = await self._outbox.recover(self.wall())
        for item in recovered:
            # The previous process handed these to Telegram and never heard back.
            logger.warning(
                "outbox %d (%s to chat %d) may have been sent before the restart; sending it again",
                item.id,
                item.kind,
                item.chat_id,
            )
        self.stats.recovered += len(recovered)
        self._reload = True
        self._task = asyncio.create_task(self._run(), name="outbox-sender")

    async def flush(self, timeout: float) -> int:
        """Shutdown: keep sending what is due for up to `timeout` s, then `stop()` within
        what is left of it. Returns how many messages stay pending: they are durable rows,
        sent by the next start (those handed to Telegram without an answer are sent again).
        """
        deadline = self.clock() + timeout
        if self.running and not await self.wait_idle(timeout):
            logger.info("outbox flush: the deadline of %g s passed with messages due", timeout)
        await self.stop(max(0.0, deadline - self.clock()))
        left = (await self._outbox.count_by_state()).get("pending", 0)
        if left:
            logger.info("outbox: %d messages stay queued for the next start", left)
        return left

    async def stop(self, timeout: float = 10.0) -> None:
        """Take nothing new, let the messages in flight finish (up to `timeout`), stop."""
        self._stopping = True
        self._kick.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                # Left `sending`: resolved by the next start-up's recovery.
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._marks:
            await self._flush_marks()
        self._transient.clear()

    async def wait_idle(self, timeout: float, *, include_scheduled: bool = False) -> bool:
        """Until nothing is due or in flight (tests and benchmarks); with `include_scheduled`
        until nothing is pending at all, retries included. False on timeout."""
        deadline = self.clock() + timeout
        while True:
            quiet = (
                not self._tasks
                and not self._transient
                and not self._marks
                and not self._writing_marks
            )
            until = float("inf") if include_scheduled else self.wall()
            if quiet and await self._outbox.pending_due(until) == 0:
                return True
            left = deadline - self.clock()
            if left <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.05))

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._kick.clear()
            try:
                if self._reload or self.clock() >= self._reload_at:
                    await self._load()
                elif self._fresh:
                    await self._load_fresh()
                wait = await self._dispatch()
                if self._marks and (
                    not self._more_due()
                    or self.clock() - self._marks_since >= self.config.mark_delay
                ):
                    await self._flush_marks()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The sender must outlive a bad row or a locked database; try again shortly.
                logger.exception("outbox sender pass failed")
                wait = self.config.idle_poll_seconds
            if self._stopping:
                break
            timeout = max(0.0, self._reload_at - self.clock())
            if self._reload or self._fresh:
                timeout = 0.0
            if wait is not None:
                timeout = min(timeout, wait)
            if self._marks:
                due = self._marks_since + self.config.mark_delay - self.clock()
                timeout = min(timeout, max(0.0, due))
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout)

    def _more_due(self) -> bool:
        """Could a claim follow soon and carry the marks? Only if rows wait in hand or a look
        at the table is owed; otherwise waiting for one only widens the crash window."""
        return bool(self._buffer) or self._reload or self._fresh

    async def _due(self, *, after_id: int = 0) -> list[OutboxItem]:
        return await self._outbox.due(
            self.wall(),
            limit=self.config.batch_size,
            priorities=KIND_PRIORITY,
            default_priority=DEFAULT_PRIORITY,
            after_id=after_id,
        )

    async def _load(self) -> None:
        """Everything due (retries included), most urgent first."""
        self._reload = False
        self._fresh = False
        items = await self._due()
        self._buffer_full = len(items) >= self.config.batch_size
        every = self.config.busy_reload_seconds if items else self.config.idle_poll_seconds
        self._reload_at = self.clock() + every
        self._buffer = [i for i in items if i.id not in self._in_flight_ids]
        self._max_seen = max([self._max_seen, *(i.id for i in items)])

    async def _load_fresh(self) -> None:
        """Only what was queued since the last look, merged in by urgency: a wake-up costs
        one indexed read however long the backlog is."""
        self._fresh = False
        items = await self._due(after_id=self._max_seen)
        if not items:
            return
        self._max_seen = max(self._max_seen, *(i.id for i in items))
        known = {i.id for i in self._buffer} | self._in_flight_ids
        self._buffer.extend(i for i in items if i.id not in known)
        self._buffer.sort(key=lambda i: (priority_of(i.kind), i.id))
        if len(self._buffer) >= self.config.batch_size:
            self._buffer_full = True

    async def _flush_marks(self) -> None:
        marks, self._marks = self._marks, []
        self._writing_marks += len(marks)
        try:
            await self._outbox.claim([], self.wall(), lease=0.0, sent=marks)
        except BaseException:
            self._marks = marks + self._marks
            raise
        finally:
            self._writing_marks -= len(marks)
        self._progress.set()

    async def _dispatch(self) -> float | None:
        """Send what may go now; return the seconds until something else could (None: when a
        request in flight comes back, which kicks the loop)."""
        capacity = self.config.max_in_flight - len(self._tasks)
        if capacity <= 0:
            return None
        blocked = set(self._busy_chats)
        picked: list[tuple[OutboxItem, Permit]] = []
        soonest: float | None = None

        def note(wait: float | None) -> None:
            nonlocal soonest
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)

        urgent_wait = self.limiter.global_wait()
        background_wait = self.limiter.global_wait(background=True)
        for item in self._buffer:
            if len(picked) >= capacity:
                break
            background = priority_of(item.kind) >= BACKGROUND_PRIORITY
            global_wait = background_wait if background else urgent_wait
            if item.chat_id in blocked:
                continue
            blocked.add(item.chat_id)
            if global_wait != 0.0:
                note(global_wait)
                if not background:
                    # Nothing more urgent can go; less urgent ones cannot either.
                    break
                continue
            wait = self.limiter.wait_time(item.chat_id, background=background)
            if wait == 0.0:
                picked.append((item, self.limiter.take(item.chat_id)))
                urgent_wait = self.limiter.global_wait()
                background_wait = self.limiter.global_wait(background=True)
            else:
                note(wait)

        if picked:
            ids = [item.id for item, _ in picked]
            taken = {item.id for item, _ in picked}
            self._buffer = [i for i in self._buffer if i.id not in taken]
            # The permits only served to choose; each delivery takes its own once the claim
            # is committed, so a wait for the database never holds Telegram slots.
            for _, permit in picked:
                self.limiter.abandon(permit)
            for item, _ in picked:
                self._busy_chats.add(item.chat_id)
            marks, self._marks = self._marks, []
            self._writing_marks += len(marks)
            try:
                claimed = await self._outbox.claim(
                    ids, self.wall(), lease=self.config.lease_seconds, sent=marks
                )
            except BaseException:
                self._marks = marks + self._marks
                for item, _ in picked:
                    self._busy_chats.discard(item.chat_id)
                raise
            finally:
                self._writing_marks -= len(marks)
            for item, _ in picked:
                self._busy_chats.discard(item.chat_id)
                if item.id in claimed:
                    self._spawn(self._deliver(item), item.chat_id, item.id)
            if self._buffer_full and len(self._buffer) < self.config.batch_size // 4:
                # Running low on a backlog that did not fit: read the next rows.
                self._reload = True

        capacity = self.config.max_in_flight - len(self._tasks)
        for key, transient in list(self._transient.items()):
            if capacity <= 0:
                break
            chat_id = transient.chat_id
            if chat_id in blocked:
                continue
            blocked.add(chat_id)
            wait = self.limiter.wait_time(chat_id, background=True)
            if wait != 0.0:
                note(wait)
                continue
            del self._transient[key]
            permit = self.limiter.take(chat_id)
            self._spawn(self._deliver_transient(transient, permit), chat_id, None)
            capacity -= 1
        return soonest

    def _spawn(self, coro: Coroutine[Any, Any, None], chat_id: int, outbox_id: int | None) -> None:
        self._busy_chats.add(chat_id)
        if outbox_id is not None:
            self._in_flight_ids.add(outbox_id)

        async def runner() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed status update leaves the row `sending`; the next start resends it.
                logger.exception("outbox delivery to chat %d failed", chat_id)
            finally:
                self._busy_chats.discard(chat_id)
                if outbox_id is not None:
                    self._in_flight_ids.discard(outbox_id)
                self._kick.set()
                self._progress.set()

        task = asyncio.create_task(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one message ----------------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> None:
        background = priority_of(item.kind) >= BACKGROUND_PRIORITY
        permit = await self._permit(item.chat_id, background=background)
        try:
            outcome = await self._attempt(item.chat_id, item.payload, _method_of(item.payload))
        finally:
            self.limiter.release(permit)
        await self._settle(item, outcome)

    async def _permit(self, chat_id: int, *, background: bool) -> Permit:
        """The slot this delivery was picked for. Normally free at once; if a 429 paused
        everything while the claim was being written, wait the pause out first."""
        while True:
            wait = self.limiter.wait_time(chat_id, background=background)
            if wait == 0.0:
                return self.limiter.take(chat_id)
            await asyncio.sleep(min(1.0, 0.05 if wait is None else wait))

    async def _attempt(
        self, chat_id: int, payload: Mapping[str, Any], method_name: str
    ) -> _Outcome:
        try:
            method = build_method(chat_id, payload)
        except ValueError as exc:
            return _Outcome("drop", f"bad payload: {exc}")
        try:
            result = await self.bot(method, request_timeout=self.config.request_timeout)
        except TelegramRetryAfter as exc:
            pause = float(exc.retry_after)
            return _Outcome("retry", "429 flood control", retry_in=pause, pause=pause)
        except TelegramMigrateToChat as exc:
            return _Outcome("retarget", "group migrated", new_chat_id=exc.migrate_to_chat_id)
        except TelegramForbiddenError as exc:
            return _Outcome("blocked", exc.message)
        except TelegramBadRequest as exc:
            if method_name in _EDIT_METHODS and _NOT_MODIFIED in exc.message:
                return _Outcome("sent")
            return _Outcome("drop", exc.message)
        except TelegramNotFound as exc:
            return _Outcome("drop", exc.message)
        except TelegramUnauthorizedError as exc:
            # A revoked token is the operator's to fix; keep the messages until then.
            return _Outcome("retry", exc.message, retry_in=60.0)
        except TelegramAPIError as exc:
            # Network errors, 5xx, conflicts: worth another try later.
            return _Outcome("fail", exc.message)
        except (TimeoutError, OSError) as exc:
            return _Outcome("fail", f"{type(exc).__name__}: {exc}")
        message_id = result.message_id if isinstance(result, Message) else None
        return _Outcome("sent", message_id=message_id)

    def _backoff(self, attempts: int) -> float:
        delay = min(self.config.backoff_cap, self.config.backoff_base * 2.0 ** max(0, attempts - 1))
        return float(delay * random.uniform(0.8, 1.2))

    def _retry_later(self, item: OutboxItem, seconds: float) -> None:
        """`item` comes due again in `seconds`: what its chat has queued after it waits too
        (dropped from the buffer; the table read keeps them behind it), and the table is
        read again then."""
        self._buffer = [i for i in self._buffer if i.chat_id != item.chat_id]
        self._reload_at = min(self._reload_at, self.clock() + seconds + 0.01)

    async def _settle(self, item: OutboxItem, outcome: _Outcome) -> None:
        now = self.wall()
        self.last_attempt_at = self.clock()
        attempts = item.attempts + 1
        status = outcome.status
        if status == "sent":
            if not self._marks:
                self._marks_since = self.clock()
            self._marks.append(SentMark(item.id, outcome.message_id, now))
            self.stats.sent += 1
            if item.kind == "code":
                self.metrics.codes_delivered.inc()
                self.metrics.code_delivery_seconds.observe(max(0.0, now - item.created_at))
        elif status == "retry":
            if outcome.pause:
                self.stats.flood_waits += 1
                self.limiter.pause_all(outcome.pause)
                logger.warning(
                    "Telegram flood control: pausing the outbox for %.0fs", outcome.pause
                )
            await self._outbox.retry(item.id, at=now + outcome.retry_in, error=outcome.error)
            self._retry_later(item, outcome.retry_in)
            self.stats.retried += 1
        elif status == "retarget" and outcome.new_chat_id is not None:
            logger.info("chat %d became supergroup %d", item.chat_id, outcome.new_chat_id)
            await self._outbox.retarget(item.id, outcome.new_chat_id)
            self._reload = True
        elif status == "fail" and attempts < self.config.max_attempts:
            delay = self._backoff(attempts)
            logger.warning(
                "outbox %d (%s) to chat %d failed (%s); retry %d in %.0fs",
                item.id,
                item.kind,
                item.chat_id,
                outcome.error,
                attempts,
                delay,
            )
            await self._outbox.retry(item.id, at=now + delay, error=outcome.error)
            self._retry_later(item, delay)
            self.stats.retried += 1
        elif status == "fail":
            logger.error(
                "outbox %d (%s) to chat %d given up after %d attempts: %s",
                item.id,
                item.kind,
                item.chat_id,
                attempts,
                outcome.error,
            )
            await self._outbox.finish(item.id, state="failed", error=outcome.error)
            self.stats.failed += 1
        elif status == "blocked":
            await self._blocked(item.chat_id, outcome.error)
        else:
            logger.warning(
                "outbox %d (%s %s) to chat %d dropped: %s",
                item.id,
                item.kind,
                _method_of(item.payload),
                item.chat_id,
                outcome.error,
            )
            await self._outbox.finish(item.id, state="dropped", error=outcome.error)
            self.stats.dropped += 1

    async def _blocked(self, chat_id: int, error: str) -> None:
        """The user blocked the bot (or it was removed from the group): nothing queued for
        that chat can be delivered, and nothing should be tried again and again."""
        if self._marks:
            # Messages that did reach the chat before must stay `sent`, not be dropped.
            await self._flush_marks()
        dropped = await self._outbox.drop_chat(chat_id, f"forbidden: {error}"[:500])
        self.stats.dropped += dropped
        self._buffer = [i for i in self._buffer if i.chat_id != chat_id]
        for key in [k for k, t in self._transient.items() if t.chat_id == chat_id]:
            del self._transient[key]
        if not is_group_chat(chat_id) and await self._repo.users.set_inactive(chat_id, True):
            self.stats.blocked_users += 1
        logger.info(
            "chat %d refuses the bot (%s): marked inactive, %d queued messages dropped",
            chat_id,
            error,
            dropped,
        )

    async def _deliver_transient(self, transient: _Transient, permit: Permit) -> None:
        try:
            payload = await transient.render()
        except BaseException:
            self.limiter.abandon(permit)
            raise
        if payload is None:
            self.limiter.abandon(permit)
            return
        try:
            outcome = await self._attempt(transient.chat_id, payload, _method_of(payload))
        finally:
            self.limiter.release(permit)
        if outcome.status == "sent":
            self.stats.transient_sent += 1
        elif outcome.status == "retry" and outcome.pause:
            self.stats.flood_waits += 1
            self.limiter.pause_all(outcome.pause)
        elif outcome.status == "blocked":
            await self._blocked(transient.chat_id, outcome.error)
        else:
            logger.debug("redraw for chat %d not sent: %s", transient.chat_id, outcome.error)
            if outcome.status == "drop" and transient.on_refused is not None:
                transient.on_refused(outcome.error)
