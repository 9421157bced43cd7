"""How an activation ends WITH a code (the other way, with a refund, moves money and is
`money.refund_activation`). Shared by the poller, the activation service and reconcile.

It runs inside the caller's transaction and is a compare-and-set on the activation's state:
whoever loses a race (the poller against a user's tap, two reconcilers) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
