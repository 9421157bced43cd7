"""How an activation ends WITH a code (the other way, with a refund, moves money and is
`money.refund_activation`). Shared by the poller, the activation service and reconcile.

It runs inside the caller's transaction and is a compare-and-set on the activation's state:
whoever loses a race (the poller against a user's tap, two reconcilers) changes nothing.

`deliver_code` and `refund_and_tell` are the same compare-and-sets with what the user is told
reported to the notifier in that transaction: only the winner of the race announces, and the
announcement commits with the change or not at all (a crash between the two loses neither).

A code that arrives also earns the buyer's referrer their share (`referrals.reward`), in the
same transaction: whichever path stores the code credits it, once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from bot.services import money, referrals
from bot.services.money import Movement, NoticeHook
from bot.services.notify import Notifier, RefundReason
from storage.db import Transaction
from storage.models import Activation
from storage.repo import Repo

log = logging.getLogger(__name__)


async def end_with_code(
    repo: Repo,
    tx: Transaction,
    activation: Activation,
    *,
    code: str,
    from_states: Sequence[str],
    now: float,
    upstream_id: str | None = None,
    phone_number: str | None = None,
    upstream_amount: int | None = None,
    purchased_at: float | None = None,
    notifier: Notifier | None = None,
) -> bool:
    """A code arrived: the user keeps paying, nothing is refunded, and the buyer's referrer
    (if any) is credited their share (told through `notifier`, when given)."""
    changed = await repo.activations.mark_completed(
        tx,
        activation.id,
        code=code,
        completed_at=now,
        from_states=from_states,
        upstream_id=upstream_id,
        phone_number=phone_number,
        upstream_amount=upstream_amount,
        purchased_at=purchased_at,
    )
    if changed:
        log.info("activation %d completed with a code", activation.id)
        done = await _reread(repo, tx, activation.id)
        await referrals.reward(repo, tx, done, notice=_referral_notice(notifier, done))
    return changed


def _referral_notice(notifier: Notifier | None, activation: Activation) -> NoticeHook | None:
    if notifier is None:
        return None

    async def notice(tx: Transaction, moved: Movement) -> None:
        await notifier.referral_earned(tx, moved, activation)

    return notice


async def deliver_code(
    repo: Repo,
    tx: Transaction,
    notifier: Notifier,
    activation: Activation,
    *,
    code: str,
    from_states: Sequence[str],
    now: float,
) -> Activation | None:
    """`end_with_code`, and if it changed the activation, its code message and card redraw
    queued in `tx`. Returns the completed activation, or None if someone else settled it
    first (they told the user)."""
    if not await end_with_code(
        repo, tx, activation, code=code, from_states=from_states, now=now, notifier=notifier
    ):
        return None
    done = await _reread(repo, tx, activation.id)
    await notifier.code_arrived(tx, done)
    await notifier.card_changed(tx, done)
    return done


async def refund_and_tell(
    repo: Repo,
    tx: Transaction,
    notifier: Notifier,
    activation: Activation,
    *,
    state: Literal["cancelled", "expired"],
    notice: RefundReason | None,
    waited: float,
    from_states: Sequence[str],
    now: float,
    error_code: str | None = None,
    actor_id: int | None = None,
    note: str | None = None,
) -> Activation | None:
    """`money.refund_activation`, and if it refunded, the card redraw (and the refund notice
    `notice`, unless the user asked for the refund and is answered on the spot) queued in
    `tx`. Returns the refunded activation, or None if someone else settled it first."""
    refunded = await money.refund_activation(
        repo,
        tx,
        activation,
        state=state,
        from_states=from_states,
        now=now,
        error_code=error_code,
        actor_id=actor_id,
        note=note,
    )
    if not refunded:
        return None
    done = await _reread(repo, tx, activation.id)
    if notice is not None:
        await notifier.refunded(tx, done, notice, waited=waited)
    await notifier.card_changed(tx, done)
    return done


async def _reread(repo: Repo, tx: Transaction, activation_id: int) -> Activation:
    activation = await repo.activations.get(activation_id, tx=tx)
    if activation is None:
        raise LookupError(f"activation {activation_id} vanished")
    return activation
