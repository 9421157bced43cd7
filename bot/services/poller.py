"""The poller: brings codes to users within seconds, refunds numbers that never get one.

One APScheduler job (`poller`, max_instances=1, coalesced) ticks a few times a second. A tick
is quick; it only decides and launches:

* which `POST /check-all` batches of 20 go now (`poll_schedule`: every `min_interval` while
  there are few activations, evenly over the check budget less a reserve for users' own
  Refresh presses when there are many — 58 a minute, round-robin; it asks the client's
  limiter how many slots are free rather than queueing on it, yields to users queued for a
  slot and never takes the last free one, so a user's press does not wait behind it);
* which activations passed `AUTO_CANCEL_AFTER_SECONDS` and are cancelled upstream now (the
  cancel budget is shared with users' cancels the same way);
* which activation cards get their countdown redrawn.

Outcomes are settled with the money primitives of `settle` and reported to the notifier
(`bot.services.notify`) in the SAME transaction: a code is stored together with its message, a
refund together with its notice, so a crash between the two cannot lose either. Reconciliation
settles in its own transactions and reports inside them the same way.

* `Completed` → the code is stored (no refund), a new message with the code and a copy
  button goes to the user, the card is redrawn.
* `Not Found` / `Invalid` → dropped from polling, refunded, the user is told.
* Past the deadline → cancelled upstream and refunded, with an auto-refund notice naming the
  amount. TOO_EARLY → tried again when the server says; CODE_RECEIVED → the code is delivered.

On start-up every `waiting` activation is polled again and purchases left `purchasing` or
`unknown` are reconciled (and again every few seconds for those a running process leaves:
an order found is linked at once, a refund waits for the grace from the call's send time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from bot.daisysim import (
    COMPLETED,
    INVALID,
    NOT_FOUND,
    CheckResult,
    CodeReceived,
    DaisySimClient,
    DaisySimError,
    NotFound,
    RateLimited,
    TooEarly,
)
from bot.log_context import bound
from bot.metrics import Metrics
from bot.services.notify import CardCountdown, Notifier
from bot.services.poll_schedule import Pacer, PollPolicy, PollSchedule
from bot.services.rates import SlidingWindow
from bot.services.reconcile import cancel_owed, reconcile_unknown
from bot.services.settle import deliver_code, refund_and_tell
from storage.db import Transaction
from storage.models import UNKNOWN, WAITING, Activation
from storage.repo import Repo

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from bot.config import Settings

logger = logging.getLogger(__name__)

POLL_JOB_ID: Final = "poller"
RECONCILE_JOB_ID: Final = "poller-reconcile"
# Slots of the cancel budget (10/60 s) left for users' own "Cancel and refund".
CANCEL_RESERVE: Final = 2
# How often a waiting card's countdown is redrawn, in upstream seconds; stretched when many
# cards wait, so redraws never take more than half the background share of Telegram's budget.
CARD_REFRESH_SECONDS: Final = 12.0
MIN_CARD_REFRESH_REAL: Final = 2.0
# After an upstream error, try a batch or an expiry again this many upstream seconds later.
RETRY_UPSTREAM_SECONDS: Final = 15.0
# Unsettled purchases are looked up this often (upstream seconds): an order found is linked at
# once, so a number whose answer was lost shows within seconds; the history walk is only made
# while some purchase is unsettled, and owed upstream cancels are sent in the same job.
RECONCILE_EVERY_SECONDS: Final = 5.0
# A purchase out this long without an answer is looked up (upstream seconds).
RECONCILE_LINK_AFTER_SECONDS: Final = 3.0
# The waiting set is followed by reading only the rows changed since the last look (migration
# 0006); every this many seconds it is read whole instead, a safety net that costs one read of
# every waiting row (~11 ms of SQLite time for 1 000) and heals whatever a bug could get wrong.
FULL_SYNC_SECONDS: Final = 300.0
# Activations settled per transaction: a bigger one would hold the database (shared with the
# outbox sender and the handlers) for too long at a time.
SETTLE_CHUNK: Final = 5
# Check-all batches answered but not yet settled, at most: back-pressure from the database.
MAX_CHECKS_IN_FLIGHT: Final = 2
RECONCILE_GRACE_SECONDS: Final = 120.0


@dataclass(frozen=True, slots=True)
class Settlement:
    """One outcome to store: a code, a number gone upstream, or an automatic cancel."""

    kind: Literal["code", "gone", "expired"]
    activation_id: int
    code: str | None = None
    status: str | None = None
    upstream_refund: int | None = None


@dataclass
class PollerStats:
    ticks: int = 0
    batches: int = 0
    batch_errors: int = 0
    ids_checked: int = 0
    codes: int = 0
    gone: int = 0
    expired: int = 0
    expire_attempts: int = 0
    card_redraws: int = 0
    # Reads of the whole waiting set, and of the rows changed since the last look.
    full_reads: int = 0
    change_reads: int = 0


@dataclass(frozen=True, slots=True)
class PollerTiming:
    """Everything time-related, in real seconds, derived once from the settings."""

    auto_cancel_after: float
    cancel_lock: float
    card_refresh: float
    upstream_retry: float
    reconcile_every: float
    reconcile_link_after: float
    reconcile_grace: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PollerTiming:
        scale = settings.daisysim_time_scale
        return cls(
            # AUTO_CANCEL_AFTER and CANCEL_LOCK are configured as real seconds already.
            auto_cancel_after=settings.auto_cancel_after_seconds,
            cancel_lock=settings.cancel_lock_seconds,
            card_refresh=max(
                MIN_CARD_REFRESH_REAL, min(CARD_REFRESH_SECONDS, CARD_REFRESH_SECONDS / scale)
            ),
            upstream_retry=max(0.5, RETRY_UPSTREAM_SECONDS / scale),
            reconcile_every=max(1.0, RECONCILE_EVERY_SECONDS / scale),
            reconcile_link_after=max(0.5, RECONCILE_LINK_AFTER_SECONDS / scale),
            reconcile_grace=max(1.0, RECONCILE_GRACE_SECONDS / scale),
        )


@dataclass(eq=False)
class Poller:
    repo: Repo
    client: DaisySimClient
    notifier: Notifier
    countdown: CardCountdown
    timing: PollerTiming
    policy: PollPolicy
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    stats: PollerStats = field(default_factory=PollerStats)
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        repo: Repo,
        client: DaisySimClient,
        notifier: Notifier,
        countdown: CardCountdown,
        metrics: Metrics | None = None,
    ) -> Poller:
        check = client.limiter.check
        policy = PollPolicy.scaled(
            check_limit=check.limit,
            check_window=check.window,
            poll_min_interval=settings.poll_min_interval_seconds,
            time_scale=settings.daisysim_time_scale,
        )
        return cls(
            repo=repo,
            client=client,
            notifier=notifier,
            countdown=countdown,
            timing=PollerTiming.from_settings(settings),
            policy=policy,
            metrics=metrics or Metrics(),
        )

    def __post_init__(self) -> None:
        self.db = self.repo.db
        self.schedule = PollSchedule(self.policy)
        self.pacer = Pacer(self.policy, self.clock())
        # Our own check requests, counted like the client's limiter counts them, so the rest
        # of its usage is known to be users' presses.
        self._own = SlidingWindow(self.policy.check_limit, self.policy.check_window)
        self._waiting: dict[int, Activation] = {}
        self._by_upstream: dict[str, int] = {}
        self._expire_at: dict[int, float] = {}
        self._expiring: set[str] = set()
        self._card_due: dict[int, float] = {}
        # Cards Telegram refused to redraw (deleted, too old): activation id → message id.
        self._dead_cards: dict[int, int] = {}
        self._next_sync = 0.0
        # The change_seq of the last row seen; None until the first full read.
        self._change_mark: int | None = None
        self._next_full_sync = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopping = False
        self._tick_running: asyncio.Task[Any] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._checks_running = 0
        self._scheduler: BaseScheduler | None = None
        # When (clock) the last scheduling step finished: readiness wants a live poller.
        self.last_tick_at: float | None = None

    # --- life cycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Resume after a restart: reconcile purchases left unsettled; every `waiting`
        activation is picked up by the first tick."""
        self._stopping = False
        try:
            await self.reconcile()
        except Exception:
            # An unreachable upstream at start-up must not keep the poller down; the periodic
            # reconciliation tries again.
            logger.exception("start-up reconciliation failed")
        self._started = True

    def add_jobs(self, scheduler: BaseScheduler) -> None:
        """The tick and the periodic reconciliation; `stop()` removes them."""
        self._scheduler = scheduler
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.policy.tick_seconds(),
            id=POLL_JOB_ID,
            name="poll check-all, auto-cancel, redraw cards",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )
        scheduler.add_job(
            self._reconcile_job,
            "interval",
            seconds=self.timing.reconcile_every,
            id=RECONCILE_JOB_ID,
            name="reconcile unsettled purchases",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )

    def remove_jobs(self) -> None:
        if self._scheduler is not None:
            for job_id in (POLL_JOB_ID, RECONCILE_JOB_ID):
                with contextlib.suppress(Exception):
                    self._scheduler.remove_job(job_id)

    async def stop(self, timeout: float = 10.0) -> None:
        self.remove_jobs()
        self._stopping = True
        self._started = False
        running = self._tick_running
        if running is not None and not running.done():
            await asyncio.wait({running}, timeout=timeout)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def reconcile(self) -> None:
        report = await reconcile_unknown(
            self.repo,
            self.client,
            grace_seconds=self.timing.reconcile_grace,
            link_after_seconds=self.timing.reconcile_link_after,
            cancel_lock_seconds=self.timing.cancel_lock,
            on_settled=self._reconciled,
            notifier=self.notifier,
        )
        if report.settled:
            self.notifier.wake()
            self._next_sync = 0.0
        await cancel_owed(self.repo, self.client, reserve=CANCEL_RESERVE)
        await self._redraw_confirming()

    async def _redraw_confirming(self) -> None:
        """A purchase being confirmed shows how long it has been going: its card is redrawn at
        each reconcile run until it settles (a queued one has its own card, with its place)."""
        for activation in await self.repo.activations.list_unsettled():
            if (
                activation.card_chat_id is not None
                and self._dead_cards.get(activation.id) != activation.card_message_id
            ):
                self.countdown.redraw(activation, on_refused=self._refused(activation.id))

    async def _reconcile_job(self) -> None:
        if not self._started:
            return
        try:
            await self.reconcile()
        except Exception:
            logger.exception("reconciliation failed")

    # --- the job --------------------------------------------------------------------------

    async def tick(self) -> None:
        """One scheduling step; the work it starts runs in tasks of its own."""
        if not self._started or self._stopping:
            return
        self._tick_running = asyncio.current_task()
        try:
            await self._tick()
            self.last_tick_at = self.clock()
        except Exception:
            logger.exception("poller tick failed")
        finally:
            self._tick_running = None

    async def _tick(self) -> None:
        # Nothing here waits for the database or the network: a tick that waited behind a
        # busy database would make the scheduler skip the next ones.
        self.stats.ticks += 1
        now = self.clock()
        syncing = self._sync_task is not None and not self._sync_task.done()
        if now >= self._next_sync and not syncing:
            self._sync_task = self._spawn(self._sync(), "poll-sync")
            self._next_sync = now + self.sync_interval()
        wall = self.wall()
        self._launch_expiries(wall)
        self._launch_batches(self.clock())
        self._redraw_cards(wall)

    def sync_interval(self) -> float:
        """How often the database is asked what changed: a new purchase is polled within this.
        The question costs a row per change, not per waiting activation, so it is asked as
        often as a poll could use the answer, however many activations wait."""
        return max(self.policy.tick_seconds(), min(0.5, self.policy.min_interval / 2))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._logged(coro, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _logged(coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("poller %s failed", name)

    async def _sync(self) -> None:
        """Follow exactly the activations the database says are waiting: all of them on the
        first look (and every FULL_SYNC_SECONDS), in between the rows changed since the last
        look, which the schema's triggers number whoever wrote them."""
        repo = self.repo.activations
        now = self.clock()
        if self._change_mark is None or now >= self._next_full_sync:
            # The mark first: a change committed between the two reads is read again next
            # time, which is harmless; taken after, it could be missed.
            mark = await repo.change_mark()
            changed = await repo.list_waiting()
            self.stats.full_reads += 1
            current = {a.id for a in changed}
            for activation_id in [i for i in self._waiting if i not in current]:
                self._forget(activation_id)
            self._next_full_sync = now + FULL_SYNC_SECONDS
        else:
            mark, changed = await repo.changed_since(self._change_mark)
            self.stats.change_reads += 1
        self._change_mark = mark
        wall = self.wall()
        for activation in changed:
            if activation.state == WAITING and activation.upstream_id is not None:
                self._follow(activation, wall)
            elif activation.id in self._waiting:
                self._forget(activation.id)

    def cycle_seconds(self) -> float:
        """How long a look at every waiting number takes at the current pace: how late a
        code can be seen at worst."""
        return self.policy.cycle_seconds(len(self._waiting))

    def follows(self, activation_id: int) -> bool:
        """Whether the activation is being polled (and will be cancelled at its deadline)."""
        return activation_id in self._waiting

    def _follow(self, activation: Activation, wall: float) -> None:
        upstream_id = activation.upstream_id
        assert upstream_id is not None
        self._waiting[activation.id] = activation
        self._by_upstream[upstream_id] = activation.id
        self.schedule.add(upstream_id, self.clock())
        started = activation.purchased_at or activation.created_at
        self._expire_at.setdefault(activation.id, started + self.timing.auto_cancel_after)
        if activation.card_message_id is not None and activation.id not in self._card_due:
            # The handler has just drawn it: the next redraw is due one interval later, or
            # when the cancel lock ends if that comes first.
            self._card_due[activation.id] = self._next_redraw(activation, wall)

    def _forget(self, activation_id: int) -> None:
        activation = self._waiting.pop(activation_id, None)
        if activation is not None and activation.upstream_id is not None:
            self._by_upstream.pop(activation.upstream_id, None)
            self.schedule.drop(activation.upstream_id)
        self._expire_at.pop(activation_id, None)
        self._card_due.pop(activation_id, None)
        self._dead_cards.pop(activation_id, None)
        self.countdown.forget(activation_id)

    # --- polling --------------------------------------------------------------------------

    def _launch_batches(self, now: float) -> None:
        limiter = self.client.limiter.check
        used = limiter.limit - limiter.remaining()
        self.pacer.share_with(max(0, used - self._own.used(now)), now)
        launched = 0
        while self.schedule.due(now):
            if self._checks_running + launched >= MAX_CHECKS_IN_FLIGHT:
                # What the last batches found is still being stored: polling faster than the
                # database takes the answers only queues them (and the sender) behind it.
                break
            # Users queued for a slot go first, and one slot is always left for the next.
            free = limiter.remaining() - launched
            if limiter.queued > 0 or free <= self.policy.hard_reserve:
                break
            if not self.pacer.take(now):
                break
            batch = self.schedule.take_batch(now)
            if not batch:
                break
            self._own.take()
            launched += 1
            self._spawn(self._check(batch), "poll-batch")

    async def _check(self, batch: list[str]) -> None:
        self._checks_running += 1
        started = self.clock()
        try:
            await self._check_and_settle(batch)
        finally:
            self._checks_running -= 1
            self.metrics.poller_batch_seconds.observe(self.clock() - started)

    async def _check_and_settle(self, batch: list[str]) -> None:
        try:
            results = await self.client.check_all(batch)
        except RateLimited as exc:
            self.stats.batch_errors += 1
            self.schedule.retry_later(batch, self.clock(), exc.retry_after)
            return
        except DaisySimError as exc:
            self.stats.batch_errors += 1
            logger.warning("check-all of %d ids failed: %s", len(batch), exc)
            self.schedule.retry_later(batch, self.clock(), self.timing.upstream_retry)
            return
        finally:
            self._own.release(self.clock())
        self.stats.batches += 1
        self.stats.ids_checked += len(batch)
        self.schedule.polled(batch, self.clock())
        settlements = [s for s in map(self._settlement_for, results) if s is not None]
        if not settlements:
            return
        chunks = [
            settlements[i : i + SETTLE_CHUNK] for i in range(0, len(settlements), SETTLE_CHUNK)
        ]
        for chunk in chunks:
            await self._settle_chunk(chunk)

    async def _settle_chunk(self, settlements: list[Settlement]) -> None:
        try:
            await self.settle(settlements)
        except Exception:
            # One bad row must not hold back the others: settle them one by one.
            logger.exception("settling %d activations together failed", len(settlements))
            for settlement in settlements:
                try:
                    await self.settle([settlement])
                except Exception:
                    logger.exception("activation %d: could not settle", settlement.activation_id)
                    continue
                self._forget(settlement.activation_id)
            return
        for settlement in settlements:
            self._forget(settlement.activation_id)

    def _settlement_for(self, result: CheckResult) -> Settlement | None:
        activation_id = self._by_upstream.get(result.activation_id)
        if activation_id is None:
            return None
        if result.status == COMPLETED:
            if not result.code:
                logger.warning("activation %d: Completed without a code", activation_id)
                return None
            return Settlement("code", activation_id, code=result.code)
        if result.status in (NOT_FOUND, INVALID):
            if result.activation_id in self._expiring:
                # Our own cancel made it Invalid; the expiry settles it with its notice.
                return None
            return Settlement("gone", activation_id, status=result.status)
        return None

    # --- expiry ---------------------------------------------------------------------------

    def _launch_expiries(self, wall: float) -> None:
        due = sorted((at, i) for i, at in self._expire_at.items() if at <= wall)
        if not due:
            return
        limiter = self.client.limiter.cancel
        free = limiter.remaining() - CANCEL_RESERVE if limiter.queued == 0 else 0
        for _, activation_id in due:
            activation = self._waiting.get(activation_id)
            if activation is None or activation.upstream_id is None:
                continue
            if activation.upstream_id in self._expiring:
                continue
            if free <= 0:
                break
            free -= 1
            self._expiring.add(activation.upstream_id)
            self._spawn(self._expire(activation), "poll-expire")

    async def _expire(self, activation: Activation) -> None:
        with bound(activation_id=activation.id):
            await self._expire_bound(activation)

    async def _expire_bound(self, activation: Activation) -> None:
        upstream_id = activation.upstream_id
        assert upstream_id is not None
        self.stats.expire_attempts += 1
        retry_in: float | None = None
        try:
            try:
                result = await self.client.cancel(upstream_id)
            except TooEarly as exc:
                retry_in = float(max(1, exc.seconds_left))
            except CodeReceived as exc:
                if exc.sms_code:
                    await self.complete(activation.id, exc.sms_code)
                    self._forget(activation.id)
                else:
                    # The code is there but not in the answer; the next check brings it.
                    retry_in = self.timing.upstream_retry
            except NotFound:
                await self.resolve_gone(activation.id, NOT_FOUND)
                self._forget(activation.id)
            except RateLimited as exc:
                retry_in = exc.retry_after
            except DaisySimError as exc:
                logger.warning("activation %d: auto-cancel failed: %s", activation.id, exc)
                retry_in = self.timing.upstream_retry
            else:
                await self.expire_refunded(activation.id, result.refund_units)
                self._forget(activation.id)
        except Exception:
            logger.exception("activation %d: auto-cancel could not be settled", activation.id)
            retry_in = self.timing.upstream_retry
        finally:
            self._expiring.discard(upstream_id)
        if retry_in is not None and activation.id in self._waiting:
            self._expire_at[activation.id] = self.wall() + retry_in

    # --- settling, each with its messages in the same transaction -------------------------

    async def complete(self, activation_id: int, code: str) -> bool:
        """Store the code and queue its message and the card's redraw; False if someone
        else settled the activation first (they told the user)."""
        return (await self.settle([Settlement("code", activation_id, code=code)]))[0]

    async def resolve_gone(self, activation_id: int, status: str) -> bool:
        """The upstream no longer knows the number: refund it (unless a code came) and say so."""
        return (await self.settle([Settlement("gone", activation_id, status=status)]))[0]

    async def expire_refunded(self, activation_id: int, upstream_refund: int) -> bool:
        """The upstream cancelled the number at our deadline: refund it and say how much."""
        return (
            await self.settle(
                [Settlement("expired", activation_id, upstream_refund=upstream_refund)]
            )
        )[0]

    async def settle(self, settlements: list[Settlement]) -> list[bool]:
        """Settle several activations in ONE transaction (what one check-all answered), each
        with its messages; returns, for each, whether it changed (a lost race changes
        nothing and says nothing)."""
        changed: list[bool] = []
        async with self.db.transaction() as tx:
            for settlement in settlements:
                changed.append(await self._settle_one(tx, settlement))
        woke = False
        for settlement, did in zip(settlements, changed, strict=True):
            if not did:
                continue
            woke = True
            if settlement.kind == "code":
                self.stats.codes += 1
            elif settlement.kind == "gone":
                self.stats.gone += 1
            else:
                self.stats.expired += 1
            self.countdown.forget(settlement.activation_id)
        if woke:
            self.notifier.wake()
        return changed

    async def _settle_one(self, tx: Transaction, settlement: Settlement) -> bool:
        with bound(activation_id=settlement.activation_id):
            return await self._settle_bound(tx, settlement)

    async def _settle_bound(self, tx: Transaction, settlement: Settlement) -> bool:
        activation = await self.repo.activations.get(settlement.activation_id, tx=tx)
        if activation is None:
            return False
        now = self.wall()
        done: Activation | None
        if settlement.kind == "code":
            assert settlement.code is not None
            done = await deliver_code(
                self.repo,
                tx,
                self.notifier,
                activation,
                code=settlement.code,
                from_states=(WAITING, UNKNOWN),
                now=now,
            )
        else:
            if settlement.kind == "gone":
                reason = "NOT_FOUND" if settlement.status == NOT_FOUND else "INVALID"
                error_code: str | None = reason
                note = f"gone upstream: {reason}"
            else:
                error_code, note = None, "auto-cancel: no code in time"
            done = await refund_and_tell(
                self.repo,
                tx,
                self.notifier,
                activation,
                state="expired",
                notice=settlement.kind,
                waited=self.timing.auto_cancel_after,
                from_states=(WAITING,),
                now=now,
                error_code=error_code,
                note=note,
            )
        if done is None:
            return False
        refund = settlement.upstream_refund
        if (
            refund is not None
            and done.upstream_amount is not None
            and refund != done.upstream_amount
        ):
            logger.warning(
                "activation %d: upstream refunded %d units but had charged %d",
                done.id,
                refund,
                done.upstream_amount,
            )
        return True

    async def _reconciled(self, tx: Transaction, activation: Activation) -> None:
        """Inside reconciliation's own transaction: a code found gets its message, and every
        card shows the outcome (linked, completed or refunded)."""
        if activation.state == "completed":
            await self.notifier.code_arrived(tx, activation)
        await self.notifier.card_changed(tx, activation)

    # --- the countdown on waiting cards ---------------------------------------------------

    def card_interval(self) -> float:
        cards = sum(1 for a in self._waiting.values() if a.card_message_id is not None)
        per_second = max(1.0, self.countdown.redraws_per_second() / 2)
        return max(self.timing.card_refresh, cards / per_second)

    def _next_redraw(self, activation: Activation, wall: float) -> float:
        due = wall + self.card_interval()
        lock_end = activation.cancel_after
        if lock_end is not None and wall < lock_end < due:
            # The button turns into "Cancel and refund" right then.
            due = lock_end + 0.05
        return due

    def _redraw_cards(self, wall: float) -> None:
        for activation_id, due in list(self._card_due.items()):
            if due > wall:
                continue
            activation = self._waiting.get(activation_id)
            if (
                activation is None
                or activation.card_chat_id is None
                or self._dead_cards.get(activation_id) == activation.card_message_id
            ):
                self._card_due.pop(activation_id, None)
                continue
            self.countdown.redraw(activation, on_refused=self._refused(activation_id))
            self.stats.card_redraws += 1
            self._card_due[activation_id] = self._next_redraw(activation, wall)

    def _refused(self, activation_id: int) -> Callable[[int], None]:
        def refused(message_id: int) -> None:
            # That message is gone (or too old to edit); a card shown anew is redrawn again.
            self._dead_cards[activation_id] = message_id

        return refused
