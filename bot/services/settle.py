"""The two ways an activation's money settles, shared by purchase, activation and reconcile.

Both run inside the caller's transaction and are compare-and-set on the activation's state:
whoever loses a race (a double cancel, the poller against a user's tap, two reconcilers)
changes nothing. The refund is always the full user price, to the wallet that paid, once; the
`ledger_one_refund` unique index would make a second one fail even if a bug got this far.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from storage.db import Transaction
from storage.models import Activation, ActivationState
from storage.repo import Repo

log = logging.getLogger(__name__)


async def end_with_refund(
    repo: Repo,
    tx: Transaction,
    activation: Activation,
    *,
    state: ActivationState,
    from_states: Sequence[str],
    now: float,
    error_code: str | None = None,
    upstream_id: str | None = None,
    phone_number: str | None = None,
    upstream_amount: int | None = None,
    actor_id: int | None = None,
    note: str | None = None,
) -> bool:
    """End the activation without a code and give the money back; False if it was not in one
    of `from_states` any more (someone else settled it first)."""
    changed = await repo.activations.mark_ended(
        tx,
        activation.id,
        state=state,
        finished_at=now,
        from_states=from_states,
        error_code=error_code,
        upstream_id=upstream_id,
        phone_number=phone_number,
        upstream_amount=upstream_amount,
    )
    if not changed:
        return False
    await repo.ledger.append(
        tx,
        activation.wallet_id,
        activation.user_price,
        "refund",
        activation_id=activation.id,
        actor_id=actor_id,
        note=note or state,
        now=now,
    )
    log.info(
        "activation %d %s: refunded %d units to wallet %d",
        activation.id,
        state,
        activation.user_price,
        activation.wallet_id,
    )
    return True


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
) -> bool:
    """A code arrived: the user keeps paying, nothing is refunded."""
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
    return changed
