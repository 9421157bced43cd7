"""The life of a bought number after the purchase: a code, a cancel, an expiry, a vanishing.

Money rule: an activation that ends without a code gets the full user price back, once; one
that got a code keeps its charge. Every function re-reads the activation and settles it with a
compare-and-set on its state, so a user's tap racing the poller settles it exactly once.
"""

from __future__ import annotations

import logging
import time
from typing import Final, Literal

from bot.daisysim import (
    CodeReceived,
    DaisySimClient,
    DaisySimError,
    NotFound,
    RateLimited,
    TooEarly,
)
from bot.services import money
from bot.services.errors import (
    ActivationNotActive,
    ActivationNotFound,
    CancelTooEarly,
    NotYourActivation,
    UpstreamBusy,
    UpstreamUnavailable,
)
from bot.services.settle import end_with_code
from storage.models import UNKNOWN, WAITING, Activation
from storage.repo import Repo

log = logging.getLogger(__name__)

# After an upstream error during an automatic expiry, try again this much later.
EXPIRE_RETRY_SECONDS: Final = 15.0


async def _get(repo: Repo, activation_id: int) -> Activation:
    activation = await repo.activations.get(activation_id)
    if activation is None:
        raise ActivationNotFound(activation_id)
    return activation


async def complete(repo: Repo, activation_id: int, code: str) -> bool:
    """Store the code that arrived (from the poller, a check, or CODE_RECEIVED on cancel).

    Only a `waiting` or `unknown` activation completes; returns whether anything changed, so
    the caller notifies the user once.
    """
    async with repo.db.transaction() as tx:
        activation = await repo.activations.get(activation_id, tx=tx)
        if activation is None:
            raise ActivationNotFound(activation_id)
        return await end_with_code(
            repo, tx, activation, code=code, from_states=(WAITING, UNKNOWN), now=time.time()
        )


async def resolve_gone(
    repo: Repo,
    activation_id: int,
    *,
    state: Literal["cancelled", "expired"] = "expired",
    reason: str = "NOT_FOUND",
) -> bool:
    """The upstream says the number is Not Found / Invalid: it will never get a code, so the
    user is refunded (unless a code already arrived). Returns whether it refunded."""
    async with repo.db.transaction() as tx:
        activation = await repo.activations.get(activation_id, tx=tx)
        if activation is None:
            raise ActivationNotFound(activation_id)
        return await money.refund_activation(
            repo,
            tx,
            activation,
            state=state,
            from_states=(WAITING,),
            now=time.time(),
            error_code=reason,
            note=f"gone upstream: {reason}",
        )


async def cancel(
    repo: Repo,
    client: DaisySimClient,
    activation_id: int,
    *,
    actor_id: int,
    actor_is_admin: bool = False,
) -> Activation:
    """The user's "Cancel and refund". Ownership is checked against the stored buyer.

    Returns the activation after it: `cancelled` (refunded), or `completed` if the code won
    the race, or `expired`/`cancelled` if the upstream no longer knows it. Raises
    CancelTooEarly (nothing changed), NotYourActivation, ActivationNotActive, UpstreamBusy,
    UpstreamUnavailable.
    """
    activation = await _get(repo, activation_id)
    if activation.user_id != actor_id and not actor_is_admin:
        raise NotYourActivation(activation_id)
    if activation.state != WAITING or activation.upstream_id is None:
        raise ActivationNotActive(activation)
    try:
        result = await client.cancel(activation.upstream_id)
    except TooEarly as exc:
        raise CancelTooEarly(exc.seconds_left) from exc
    except CodeReceived as exc:
        await _code_on_cancel(repo, activation, exc)
        return await _get(repo, activation_id)
    except NotFound:
        await resolve_gone(repo, activation_id, state="cancelled")
        return await _get(repo, activation_id)
    except RateLimited as exc:
        raise UpstreamBusy(exc.retry_after) from exc
    except DaisySimError as exc:
        log.warning("activation %d: cancel failed upstream: %s", activation_id, exc)
        raise UpstreamUnavailable(str(exc)) from exc
    await _refund_cancelled(repo, activation, "cancelled", actor_id, result.refund_units)
    return await _get(repo, activation_id)


async def expire(repo: Repo, client: DaisySimClient, activation_id: int) -> float | None:
    """The automatic cancel when no code came in time: like `cancel`, ending `expired`.

    Returns None once the activation is settled (or was already), or the number of seconds
    after which to try again (the cancel lock, a rate limit, an unreachable upstream).
    """
    activation = await _get(repo, activation_id)
    if activation.state != WAITING or activation.upstream_id is None:
        return None
    try:
        result = await client.cancel(activation.upstream_id)
    except TooEarly as exc:
        return float(exc.seconds_left)
    except CodeReceived as exc:
        await _code_on_cancel(repo, activation, exc)
        return None
    except NotFound:
        await resolve_gone(repo, activation_id, state="expired")
        return None
    except RateLimited as exc:
        return exc.retry_after
    except DaisySimError as exc:
        log.warning("activation %d: expiry cancel failed upstream: %s", activation_id, exc)
        return EXPIRE_RETRY_SECONDS
    await _refund_cancelled(repo, activation, "expired", None, result.refund_units)
    return None


async def _code_on_cancel(repo: Repo, activation: Activation, exc: CodeReceived) -> None:
    code = exc.sms_code
    if code is None:
        # CODE_RECEIVED without the code in `data`: the poller's next check will bring it.
        log.warning("activation %d: CODE_RECEIVED without a code", activation.id)
        return
    await complete(repo, activation.id, code)


async def _refund_cancelled(
    repo: Repo,
    activation: Activation,
    state: Literal["cancelled", "expired"],
    actor_id: int | None,
    upstream_refund: int,
) -> None:
    async with repo.db.transaction() as tx:
        refunded = await money.refund_activation(
            repo,
            tx,
            activation,
            state=state,
            from_states=(WAITING,),
            now=time.time(),
            actor_id=actor_id,
        )
    charged = activation.upstream_amount
    if refunded and charged is not None and upstream_refund != charged:
        log.warning(
            "activation %d: upstream refunded %d units but had charged %d",
            activation.id,
            upstream_refund,
            charged,
        )
