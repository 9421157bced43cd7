"""Settle purchases whose upstream answer was never seen, against `GET /history`.

An activation left in `purchasing` (our process died around the call) or `unknown` (timeout,
dropped connection, 5xx) holds the user's money. Each carries a random token that the
purchase put in the order's `app_name`, which /history returns as the order's `service`. Walk
the history newest first until well before the oldest candidate was created:

- an order with the token: link it (Waiting → `waiting`, Completed → `completed` with its code,
  Cancelled/Expired → refunded). Linking is always safe, so it is done as soon as the purchase
  has been out for `link_after_seconds`: the user sees a number whose answer was lost within
  seconds, not minutes;
- no order with the token once the walk is complete: the upstream never sold it → refund, but
  only once `grace_seconds` have passed since the purchase call LEFT (`sent_at`, stamped when
  it left the hold or the line), the longest the upstream may still act on it.

A number refunded to the user but sold upstream (found Expired) is owed a /cancel upstream,
which refunds it there in full: `cancel_owed` sends those within the cancel budget until the
upstream refunds or answers that there is nothing to refund.

Every settlement is a compare-and-set on the state in one transaction, so a second or
concurrent run changes nothing; `on_settled` runs inside that transaction, so what the user
is told (a code, a refund, the card redrawn) is queued with it or not at all. A history walk
that fails part-way settles nothing: "not found" is only concluded from a complete walk.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.daisysim import (
    COMPLETED,
    WAITING,
    CodeReceived,
    DaisySimClient,
    DaisySimError,
    NotFound,
    Order,
)
from bot.services import money
from bot.services.notify import Notifier
from bot.services.purchase import DEFAULT_CANCEL_LOCK_SECONDS, token_of
from bot.services.settle import end_with_code
from storage.db import Database, Transaction
from storage.models import UNSETTLED_STATES, Activation
from storage.repo import Repo

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 120.0
# A purchase out this long without an answer is looked up in /history (and linked if found).
DEFAULT_LINK_AFTER_SECONDS = 3.0
# How far before the oldest candidate the walk goes on, for clock skew between us and the
# upstream (and the time a request may wait in our rate limiter before it leaves).
DEFAULT_MARGIN_SECONDS = 600.0
_CANCELLED = "Cancelled"
# Called inside a settling transaction with the activation as that transaction left it.
OnSettled = Callable[[Transaction, Activation], Awaitable[None]]
_EXPIRED = "Expired"


@dataclass(slots=True)
class ReconcileReport:
    linked: list[int] = field(default_factory=list)  # now waiting
    completed: list[int] = field(default_factory=list)  # got their code, no refund
    refunded: list[int] = field(default_factory=list)  # never sold / cancelled / expired
    skipped: list[int] = field(default_factory=list)  # someone else settled them meanwhile
    pending: list[int] = field(default_factory=list)  # not found yet, still inside the grace
    failed: list[int] = field(default_factory=list)  # the database refused (logged)
    error: str | None = None  # the history walk failed; nothing was settled

    @property
    def settled(self) -> int:
        return len(self.linked) + len(self.completed) + len(self.refunded)


async def reconcile_unknown(
    repo: Repo,
    client: DaisySimClient,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    link_after_seconds: float = DEFAULT_LINK_AFTER_SECONDS,
    margin_seconds: float = DEFAULT_MARGIN_SECONDS,
    cancel_lock_seconds: float = DEFAULT_CANCEL_LOCK_SECONDS,
    now: float | None = None,
    on_settled: OnSettled | None = None,
    notifier: Notifier | None = None,
) -> ReconcileReport:
    """Link every `purchasing`/`unknown` activation sent over `link_after_seconds` ago whose
    order /history shows; refund those it does not show once `grace_seconds` passed since
    their call left.

    The grace must exceed the longest time the upstream may still act on a request we gave up
    on (a server-side delay before it applies a purchase); a shorter one could refund a number
    that is sold a moment later. Purchases whose call is running in this process are skipped.
    """
    db = repo.db
    current = time.time() if now is None else now
    report = ReconcileReport()
    look_after = min(link_after_seconds, grace_seconds)
    candidates = [
        a
        for a in await repo.activations.list_unsettled(sent_before=current - look_after)
        if a.id not in db.inflight_purchases
    ]
    if not candidates:
        return report
    by_token = {a.recon_token: a for a in candidates}
    horizon = min(a.created_at for a in candidates) - margin_seconds
    found: dict[str, Order] = {}
    try:
        async for order in client.iter_history(per_page=100):
            if order.created_at.timestamp() < horizon:
                break
            token = token_of(order.service)
            if token is None or token not in by_token:
                continue
            if token in found:
                # Two orders for one purchase would mean it was sent twice; keep the first
                # (newest) linked and say so loudly, since the other costs money upstream.
                log.error(
                    "orders %s and %s both carry activation %d's token",
                    found[token].activation_id,
                    order.activation_id,
                    by_token[token].id,
                )
                continue
            found[token] = order
    except DaisySimError as exc:
        log.warning("reconciliation postponed: history walk failed: %s", exc)
        report.error = str(exc)
        return report

    for activation in candidates:
        match = found.get(activation.recon_token)
        if match is None and _sent_at(activation) > current - grace_seconds:
            # The upstream may still apply it: only an order found settles it this early.
            report.pending.append(activation.id)
            continue
        try:
            await _settle(
                repo,
                db,
                activation,
                match,
                cancel_lock_seconds,
                report,
                on_settled,
                notifier,
            )
        except sqlite3.IntegrityError:
            # E.g. the order's id is already linked to another activation: a human must look;
            # the others are still settled.
            log.exception("activation %d: could not be reconciled", activation.id)
            report.failed.append(activation.id)
    if report.settled:
        log.info(
            "reconciled: %d linked, %d completed, %d refunded",
            len(report.linked),
            len(report.completed),
            len(report.refunded),
        )
    return report


async def _settle(
    repo: Repo,
    db: Database,
    activation: Activation,
    order: Order | None,
    cancel_lock_seconds: float,
    report: ReconcileReport,
    on_settled: OnSettled | None,
    notifier: Notifier | None = None,
) -> None:
    now = time.time()
    async with db.transaction() as tx:
        if order is None:
            changed = await money.refund_activation(
                repo,
                tx,
                activation,
                state="failed",
                from_states=UNSETTLED_STATES,
                now=now,
                error_code=activation.error_code or "NOT_SOLD",
                note="reconciled: never sold upstream",
            )
            bucket = report.refunded
        elif order.status == WAITING:
            purchased_at = order.created_at.timestamp()
            changed = await repo.activations.mark_waiting(
                tx,
                activation.id,
                upstream_id=order.activation_id,
                phone_number=order.phone_number,
                upstream_amount=order.amount_charged_units,
                purchased_at=purchased_at,
                # The lock runs on the upstream's clock; never earlier than our own now.
                cancel_after=max(purchased_at + cancel_lock_seconds, now),
                from_states=UNSETTLED_STATES,
            )
            bucket = report.linked
        elif order.status == COMPLETED and order.code is not None:
            changed = await end_with_code(
                repo,
                tx,
                activation,
                code=order.code,
                from_states=UNSETTLED_STATES,
                now=now,
                upstream_id=order.activation_id,
                phone_number=order.phone_number,
                upstream_amount=order.amount_charged_units,
                purchased_at=order.created_at.timestamp(),
                # Told of a referral reward the code earned (the buyer's code goes through
                # `on_settled`).
                notifier=notifier,
            )
            bucket = report.completed
        elif order.status in (_CANCELLED, _EXPIRED):
            changed = await money.refund_activation(
                repo,
                tx,
                activation,
                state="cancelled" if order.status == _CANCELLED else "expired",
                from_states=UNSETTLED_STATES,
                now=now,
                upstream_id=order.activation_id,
                phone_number=order.phone_number,
                upstream_amount=order.amount_charged_units,
                note=f"reconciled: {order.status.lower()} upstream",
            )
            if changed and order.status == _EXPIRED:
                # The upstream still counts it sold: /cancel refunds an expired number.
                await repo.activations.owe_cancel(tx, activation.id, now=now)
            bucket = report.refunded
        else:
            log.warning(
                "activation %d: upstream order %s has status %r; left for the next run",
                activation.id,
                order.activation_id,
                order.status,
            )
            return
        if changed and on_settled is not None:
            settled = await repo.activations.get(activation.id, tx=tx)
            assert settled is not None
            await on_settled(tx, settled)
    (bucket if changed else report.skipped).append(activation.id)


def _sent_at(activation: Activation) -> float:
    return activation.created_at if activation.sent_at is None else activation.sent_at


@dataclass(slots=True)
class OwedCancels:
    refunded: list[int] = field(default_factory=list)  # the upstream refunded it now or before
    nothing: list[int] = field(default_factory=list)  # nothing to refund (code, unknown id)
    postponed: list[int] = field(default_factory=list)  # too early or the upstream failed


async def cancel_owed(repo: Repo, client: DaisySimClient, *, reserve: int = 0) -> OwedCancels:
    """Send /cancel for the numbers the bot refunded while the upstream still counts them
    sold, leaving `reserve` slots of the cancel budget free for users' own cancels; what is
    not sent now (no slot, TOO_EARLY, an upstream error) is owed until the next run."""
    result = OwedCancels()
    limiter = client.limiter.cancel
    for activation in await repo.activations.list_owed_cancels():
        if limiter.remaining() - limiter.queued <= reserve:
            break
        assert activation.upstream_id is not None
        try:
            answer = await client.cancel(activation.upstream_id)
        except (CodeReceived, NotFound) as exc:
            # The upstream keeps the charge (or never had it): nothing more to ask for.
            log.warning(
                "activation %d: upstream cancel owed, but %s: nothing to refund there",
                activation.id,
                exc.code,
            )
            await repo.activations.settle_owed_cancel(activation.id)
            result.nothing.append(activation.id)
        except DaisySimError as exc:  # TOO_EARLY, 5xx, unreachable: ask again next run
            log.info("activation %d: owed upstream cancel postponed (%s)", activation.id, exc)
            result.postponed.append(activation.id)
        else:
            log.info(
                "activation %d: owed upstream cancel done, %d units refunded upstream",
                activation.id,
                answer.refund_units,
            )
            await repo.activations.settle_owed_cancel(activation.id)
            result.refunded.append(activation.id)
    return result
