"""The purchase queue: a fair first-come line in front of the upstream's 10 purchases a minute
(PRODUCT.md section 7), so the 11th buyer of a burst waits for their turn instead of an error.

Joining is the purchase's step 1 (`money.hold_purchase`): ONE transaction holds the
price the user was shown and, unless the purchase can go at once, takes a place in the
`purchase_queue` table. A repeated idempotency key (a double tap) joins once. A queue row
means "money held, upstream call never sent": the worker deletes it (and stamps `sent_at`, from
which reconciliation measures its grace) in the transaction just before it sends the call, and
reconciliation skips queued activations, so a queued purchase can never be refunded by mistake
nor a sent one forgotten.

The common case stays one tap: when nobody is in line and the purchase limiter has a free
slot, the purchase goes straight through. Free slots are counted without an await between the
count and the reservation of one (`_reserved`), so a burst of taps cannot all see the last
free slot; a reservation lasts until its call is inside the limiter (a purchase reaches
`limiter.acquire()` without suspending once its transaction committed).

ONE worker task serves the head whenever the limiter has a slot, strictly in order:

* a 429 (RATE_LIMITED) pauses the limiter for the seconds the upstream named and puts the
  head back in its place (its id keeps it the head): nobody is dropped, nothing refunded;
* an upstream that could not be reached at all likewise keeps the head, retried later;
* a definite rejection (OUT_OF_STOCK, ...) refunds that user in full and the line moves on;
* an unknown outcome (timeout, 5xx) is left `unknown` for reconciliation, as for any purchase.

Leaving the line refunds the hold in one transaction, and only if the purchase is still
queued. A wallet holds at most `max_places_per_wallet` places (a group's members share their
group wallet's). After a restart the line is read back from the table and served again; the
limiter is first warmed with the purchases the upstream may still count in its window.

Telegram is not known here: a `QueueListener` is told inside each settling transaction (so its
message commits with the state change) and when the line moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from bot.daisysim import DaisySimClient, EndpointLimiter
from bot.log_context import bound
from bot.metrics import Metrics
from bot.services import money
from bot.services.errors import (
    AppError,
    NotYourActivation,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
)
from bot.services.money import PurchaseRequest
from bot.services.purchase import (
    DEFAULT_CANCEL_LOCK_SECONDS,
    PurchaseDeferred,
    SettleHook,
    send_held,
    settled,
)
from storage.db import Transaction
from storage.models import PURCHASING, Activation
from storage.repo import Repo

log = logging.getLogger(__name__)

DEFAULT_MAX_PLACES_PER_WALLET: Final = 3
LEFT_QUEUE: Final = "LEFT_QUEUE"
# After the upstream could not be reached at all, the head is tried again this much later
# (upstream seconds; scaled like the rate-limit windows).
UNREACHABLE_RETRY_SECONDS: Final = 10.0
# If the head's purchase call takes longer than this (upstream seconds), the next head is
# served without waiting for it: a slow answer must not hold the whole line. Sending strictly
# one after the other otherwise keeps the upstream's order the line's order.
HEAD_OF_LINE_SECONDS: Final = 5.0
# Bounds of the worker's naps (real seconds): it wakes when a slot is due, never busy-waits,
# and looks again at least this often in case a pause elsewhere moved the limiter.
_MIN_NAP: Final = 0.002
_MAX_NAP: Final = 1.0


class QueueFull(AppError):
    """The wallet already holds the most places in line allowed; nothing was changed."""

    code = "QUEUE_FULL"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the wallet already holds {limit} places in the purchase queue")
        self.limit = limit


class NotQueued(AppError):
    """The purchase is no longer in line (its call was sent, or it left before); nothing was
    changed. `activation` is as it is now."""

    code = "NOT_QUEUED"

    def __init__(self, activation: Activation) -> None:
        super().__init__(f"activation {activation.id} is not in the purchase queue")
        self.activation = activation


@dataclass(frozen=True, slots=True)
class Queued:
    """The purchase waits in line with its money held: 1-based `place`, `wait` real seconds."""

    activation: Activation
    place: int
    wait: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """What `join` did: `queued` when the purchase waits in line, `sending` when it went
    straight through (the task of its call), neither for a repeated key whose purchase has
    left the line."""

    activation: Activation
    queued: Queued | None
    sending: asyncio.Task[Activation | Queued] | None = None
    repeated: bool = False


def _settle_task(task: asyncio.Task[Activation | Queued]) -> None:
    # A caller that never asked for the outcome must not leave "exception never retrieved"
    # behind; the purchase settled (or was reconciled) either way.
    if not task.cancelled():
        task.exception()


class QueueListener(Protocol):
    async def served(self, tx: Transaction, activation: Activation) -> None:
        """Inside the transaction that settled a served purchase: `waiting` (bought),
        `failed` (refunded) or `unknown` (being reconciled)."""

    def line_moved(self) -> None:
        """Places or estimates may have changed (someone was served, left or joined)."""

    async def rejected(self, exc: PurchaseRejected) -> None:
        """The upstream refused a queued purchase (the buyer was refunded and `served` told
        of it); `exc.alert_admins` says whether it is the admins' to fix."""


@dataclass
class QueueStats:
    direct: int = 0  # went straight through
    joined: int = 0
    served: int = 0  # sent from the line (bought, rejected or unknown)
    bought: int = 0
    rejected: int = 0
    unknown: int = 0
    deferred: int = 0  # the head was put back (429, unreachable upstream)
    left: int = 0
    full: int = 0  # refused by the per-wallet cap


@dataclass(eq=False)
class PurchaseQueue:
    """`await start()` with the app, `await stop()` before the client and database close."""

    repo: Repo
    client: DaisySimClient
    cancel_lock_seconds: float = DEFAULT_CANCEL_LOCK_SECONDS
    max_places_per_wallet: int = DEFAULT_MAX_PLACES_PER_WALLET
    # The upstream's clock runs this many times faster (the sandbox in tests and benchmarks).
    time_scale: float = 1.0
    listener: QueueListener | None = None
    clock: Callable[[], float] = time.monotonic
    stats: QueueStats = field(default_factory=QueueStats)
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        if self.max_places_per_wallet < 1:
            raise ValueError("max_places_per_wallet must be at least 1")
        self.db = self.repo.db
        self.limiter: EndpointLimiter = self.client.limiter.purchase
        # Slots promised to purchases whose call has not reached the limiter yet.
        self._reserved = 0
        # No new head before this (clock): the upstream could not be reached.
        self._retry_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Purchase calls in flight (served heads and direct purchases): stop() waits for them.
        self._serving: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # --- life cycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        await self._warm_limiter()
        waiting = await self.repo.queue.count()
        if waiting:
            log.info("purchase queue: %d purchases waiting from before the restart", waiting)
        self._task = asyncio.create_task(self._run(), name="purchase-queue")
        if self.listener is not None:
            self.listener.line_moved()

    async def stop(self, timeout: float = 10.0) -> None:
        """Serve no new head; let a purchase call in flight finish (up to `timeout`: give it
        more than the client's request timeout, so every call ends with its outcome recorded
        rather than cancelled)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._serving:
            _, pending = await asyncio.wait(set(self._serving), timeout=timeout)
            for task in pending:
                # Cancelled mid-call, the purchase is marked `unknown` and reconciled.
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _warm_limiter(self) -> None:
        """A fresh limiter thinks the window is empty, but the upstream still counts the calls
        this database sent in it before a restart: take their slots, as if just answered."""
        # A call sent up to `late_count` before the window may have reached the upstream
        # (and been counted) only inside it.
        window = self.limiter.window + self.limiter.late_count
        recent = await self.repo.queue.recent_upstream_calls(time.time() - window)
        for _ in range(min(recent, self.limiter.limit)):
            await self.limiter.acquire()
            self.limiter.release()
        if recent:
            log.info("purchase limiter warmed with %d recent purchase calls", recent)

    # --- joining and leaving --------------------------------------------------------------

    def free_slots(self) -> int:
        """Purchase slots nobody has claimed yet (0 or less while paused or all promised)."""
        if self.clock() < self._retry_at:
            return 0
        return self.limiter.remaining() - self.limiter.queued - self._reserved

    def estimate(self, place: int) -> float:
        """Real seconds until the purchase at `place` (1 = the head) is likely sent."""
        ahead = max(0, place - 1) + self.limiter.queued + self._reserved
        wait = self.limiter.estimated_wait(ahead)
        return max(wait, self._retry_at - self.clock())

    async def buy(self, request: PurchaseRequest) -> Activation | Queued:
        """Buy now if nobody waits and a slot is free, else take a place in line.

        Returns the activation (bought, or as a repeated idempotency key's first tap left it)
        or `Queued`. Raises InsufficientFunds, DailyLimitExceeded, QueueFull and
        NotYourActivation with nothing changed; PurchaseRejected (the money is back) and
        PurchasePending (reconciliation settles it) for a purchase sent at once.
        """
        return await self.outcome(await self.join(request))

    async def join(self, request: PurchaseRequest) -> Ticket:
        """Step 1 of `buy`: hold the money and either take a place in line or start the
        purchase at once (in a task of its own, so the caller can answer the tap meanwhile
        without the line moving on). Raises InsufficientFunds, DailyLimitExceeded, QueueFull,
        NotYourActivation with nothing changed; `outcome(ticket)` gives the rest."""
        repo = self.repo
        direct = False
        registered: int | None = None
        existing: Activation | None = None
        place: int | None = None
        try:
            async with self.db.transaction() as tx:
                existing = await repo.activations.get_by_key(request.idempotency_key, tx=tx)
                if existing is not None:
                    if existing.user_id != request.user_id:
                        raise NotYourActivation(existing.id)
                    place = await repo.queue.place_of(existing.id, tx=tx)
                    activation = existing
                else:
                    now = time.time()
                    activation = await money.hold_purchase(repo, tx, request, now=now)
                    empty = await repo.queue.is_empty(tx=tx)
                    # No await from the count of free slots to the reservation of one.
                    if empty and self.free_slots() > 0:
                        direct = True
                        self._reserved += 1
                        await repo.activations.mark_sent(tx, activation.id, now=now)
                        self.db.inflight_purchases[activation.id] = asyncio.Event()
                        registered = activation.id
                    else:
                        held = await repo.queue.count_for_wallet(activation.wallet_id, tx=tx)
                        if held >= self.max_places_per_wallet:
                            self.stats.full += 1
                            raise QueueFull(self.max_places_per_wallet)
                        await repo.queue.add(tx, activation.id, activation.wallet_id, now=now)
                        place = await repo.queue.place_of(activation.id, tx=tx)
        except BaseException:
            if direct:
                self._reserved -= 1
            if registered is not None:
                self.db.inflight_purchases.pop(registered).set()
            raise
        if existing is not None:
            queued = None if place is None else Queued(existing, place, self.estimate(place))
            return Ticket(existing, queued, repeated=True)
        if not direct:
            assert place is not None
            self.stats.joined += 1
            log.info(
                "activation %d: %d units held, place %d in the purchase queue",
                activation.id,
                activation.user_price,
                place,
            )
            self._wake.set()
            return Ticket(activation, Queued(activation, place, self.estimate(place)))
        self.stats.direct += 1
        # The task runs to the limiter's acquire() before anything else gets a turn after
        # this one yields; the slot stays reserved until then.
        task = asyncio.create_task(self._send_direct(activation), name=f"buy-{activation.id}")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        task.add_done_callback(_settle_task)
        return Ticket(activation, None, sending=task)

    async def outcome(self, ticket: Ticket) -> Activation | Queued:
        """What a joined purchase came to: the activation once bought (or settled), or its
        place in line. Raises what the direct purchase raised (PurchaseRejected, ...)."""
        if ticket.sending is not None:
            # Shielded: a caller cancelled while waiting (a handler past the shutdown grace)
            # must not cancel the call itself, whose outcome would then only be "unknown";
            # the call runs on and `stop()` waits for it, so its outcome is recorded.
            return await asyncio.shield(ticket.sending)
        if ticket.queued is not None:
            return ticket.queued
        return await settled(self.repo, ticket.activation)

    async def _send(
        self, activation: Activation, *, on_settled: SettleHook | None = None
    ) -> Activation:
        """`send_held` for a direct or a served purchase, its outcome counted and its log
        lines tagged with the activation."""
        outcome = "bought"
        with bound(activation_id=activation.id):
            try:
                return await send_held(
                    self.repo,
                    self.client,
                    activation,
                    cancel_lock_seconds=self.cancel_lock_seconds,
                    on_settled=on_settled,
                    defer=self._defer,
                )
            except PurchaseDeferred:
                outcome = "deferred"
                raise
            except UpstreamBalanceExhausted:
                outcome = "upstream_exhausted"
                raise
            except PurchaseRejected:
                outcome = "rejected"
                raise
            except PurchasePending:
                outcome = "unknown"
                raise
            except BaseException:
                # Cancelled at shutdown or a bug: left to reconciliation either way.
                outcome = "unknown"
                raise
            finally:
                self.metrics.purchases.labels(outcome).inc()

    async def _send_direct(self, activation: Activation) -> Activation | Queued:
        self._reserved -= 1
        try:
            return await self._send(activation)
        except PurchaseDeferred as exc:
            # A 429 on the way straight through: the buyer waits in line instead (at the
            # front, since their id is older than anyone who joined meanwhile).
            self._deferred(exc)
            back = await self.repo.queue.place_of(activation.id)
            if back is None:
                # Served again already, in the moment since.
                return await settled(self.repo, exc.activation)
            self._moved()
            return Queued(exc.activation, back, self.estimate(back))

    async def leave(self, activation_id: int, user_id: int) -> Activation:
        """Leave the line: the whole hold back, in one transaction, only if still queued.

        Returns the activation, now `cancelled` and refunded. Raises NotYourActivation, or
        NotQueued (nothing changed) when its call was already sent or it left before.
        """
        repo = self.repo
        async with self.db.transaction() as tx:
            activation = await repo.activations.get(activation_id, tx=tx)
            if activation is None or activation.user_id != user_id:
                raise NotYourActivation(activation_id)
            if await repo.queue.remove(tx, activation_id) is None:
                raise NotQueued(activation)
            await money.refund_activation(
                repo,
                tx,
                activation,
                state="cancelled",
                from_states=(PURCHASING,),
                now=time.time(),
                error_code=LEFT_QUEUE,
                actor_id=user_id,
                note="left the purchase queue",
            )
            current = await repo.activations.get(activation_id, tx=tx)
        assert current is not None
        self.stats.left += 1
        log.info("activation %d left the purchase queue; refunded", activation_id)
        self._moved()
        return current

    async def attach_message(
        self, activation_id: int, chat_id: int, message_id: int
    ) -> Activation | None:
        """Remember the message that shows this purchase's place: it becomes the card when
        the purchase is served (the listener redraws it in the settling transaction).

        Returns None while the purchase waits or its call is in flight; the activation when
        it settled before the message existed, so the caller draws its card there now.
        """
        repo = self.repo
        async with self.db.transaction() as tx:
            await repo.activations.set_card(activation_id, chat_id, message_id, tx=tx)
            activation = await repo.activations.get(activation_id, tx=tx)
            # Still `purchasing`: queued, or its call in flight, whose settling transaction
            # comes after this one and finds the message.
            if activation is None or activation.state == PURCHASING:
                return None
            return activation

    async def place_of(self, activation_id: int) -> Queued | None:
        """Where a purchase stands, or None when it is not in line."""
        place = await self.repo.queue.place_of(activation_id)
        activation = await self.repo.activations.get(activation_id)
        if place is None or activation is None:
            return None
        return Queued(activation, place, self.estimate(place))

    async def line(self, *, limit: int = -1) -> list[Queued]:
        """The line in order (the notifier redraws each place from this)."""
        return [
            Queued(entry.activation, entry.place, self.estimate(entry.place))
            for entry in await self.repo.queue.listing(limit=limit)
        ]

    # --- the worker -----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                nap = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The line must outlive a locked database or a bad row: look again shortly.
                log.exception("purchase queue step failed")
                nap = _MAX_NAP
            if self._stopping:
                break
            if nap is None:
                await self._wake.wait()
            elif nap > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), nap)

    async def _step(self) -> float | None:
        """Serve the head if a slot is free; return how long to nap (None: until woken)."""
        if await self.repo.queue.is_empty():
            return None
        if self.free_slots() <= 0:
            wait = max(self.limiter.next_free_in(), self._retry_at - self.clock())
            return min(max(wait, _MIN_NAP), _MAX_NAP)
        activation = await self._dequeue()
        if activation is None:
            return 0.0
        # The slot stays reserved until the task's call is inside the limiter.
        task = asyncio.create_task(self._serve(activation), name=f"serve-{activation.id}")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        # The next head goes once this call has been answered (or is slow): one at a time
        # keeps the upstream's order the line's.
        await asyncio.wait({task}, timeout=HEAD_OF_LINE_SECONDS / self.time_scale)
        return 0.0

    async def _dequeue(self) -> Activation | None:
        """Take the head out of the line in the transaction just before its call."""
        repo = self.repo
        registered: int | None = None
        reserved = False
        try:
            async with self.db.transaction() as tx:
                head = await repo.queue.head(tx=tx)
                if head is None or self.free_slots() <= 0:
                    return None
                self._reserved += 1
                reserved = True
                await repo.queue.remove(tx, head.activation_id)
                sent_at = time.time()
                # Reconciliation's grace runs from here, not from the hold: the time spent
                # in line the upstream never saw.
                await repo.activations.mark_sent(tx, head.activation_id, now=sent_at)
                activation = await repo.activations.get(head.activation_id, tx=tx)
                assert activation is not None
                # Before COMMIT: from here on reconciliation knows a call is coming.
                self.db.inflight_purchases[activation.id] = asyncio.Event()
                registered = activation.id
        except BaseException:
            if reserved:
                self._reserved -= 1
            if registered is not None:
                self.db.inflight_purchases.pop(registered).set()
            raise
        # A purchase put back after a 429 counts its whole wait from when it first joined.
        self.metrics.queue_wait_seconds.observe(max(0.0, sent_at - head.joined_at))
        return activation

    async def _serve(self, activation: Activation) -> None:
        self.stats.served += 1
        # Nothing suspends from here to the limiter's acquire(): the reserved slot passes on.
        self._reserved -= 1
        try:
            bought = await self._send(activation, on_settled=self._on_settled)
        except PurchaseDeferred as exc:
            self._deferred(exc)
        except PurchaseRejected as exc:
            self.stats.rejected += 1
            log.info(
                "queued activation %d rejected upstream (%s)", activation.id, exc.upstream_code
            )
            if self.listener is not None:
                await self.listener.rejected(exc)
        except PurchasePending:
            self.stats.unknown += 1
        except Exception:
            # Left `purchasing` outside the line: reconciliation settles it.
            log.exception("queued activation %d: purchase failed", activation.id)
        else:
            self.stats.bought += 1
            log.info("queued activation %d bought (%s)", activation.id, bought.upstream_id)
        finally:
            self._moved()

    async def _on_settled(self, tx: Transaction, activation: Activation) -> None:
        if self.listener is not None:
            await self.listener.served(tx, activation)

    async def _defer(self, tx: Transaction, activation: Activation) -> None:
        entry = await self.repo.queue.get(activation.id, tx=tx)
        deferrals = 1 if entry is None else entry.deferrals + 1
        await self.repo.queue.add(
            tx, activation.id, activation.wallet_id, now=activation.created_at, deferrals=deferrals
        )

    def _deferred(self, exc: PurchaseDeferred) -> None:
        self.stats.deferred += 1
        if exc.retry_after is None:
            # Unreachable: the limiter knows nothing of it, so the line holds back by itself.
            later = self.clock() + UNREACHABLE_RETRY_SECONDS / self.time_scale
            self._retry_at = max(self._retry_at, later)
        log.warning(
            "activation %d back at its place in line (%s; retry in %s s)",
            exc.activation.id,
            exc.reason,
            "?" if exc.retry_after is None else f"{exc.retry_after:g}",
        )
        self._wake.set()

    def _moved(self) -> None:
        self._wake.set()
        if self.listener is not None:
            self.listener.line_moved()
