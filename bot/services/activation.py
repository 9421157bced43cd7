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
from bot.services.notify import Notifier, RefundReason
from bot.services.settle import deliver_code, end_with_code, refund_and_tell
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


async def complete(
    repo: Repo, activation_id: int, code: str, *, notifier: Notifier | None = None
) -> bool:
    """Store the code that arrived (from the poller, a check, or CODE_RECEIVED on cancel).

    Only a `waiting` or `unknown` activation completes; returns whether anything changed.
    Only then is the code announced, through `notifier` in the same transaction, so a code is
    announced once, by whoever stored it, and never lost to a crash after storing it
    (without a notifier nobody is told: the money rules' own tests).
    """
    async with repo.db.transaction() as tx:
        activation = await repo.activations.get(activation_id, tx=tx)
        if activation is None:
            raise ActivationNotFound(activation_id)
        from_states = (WAITING, UNKNOWN)
        now = time.time()
        if notifier is None:
            return await end_with_code(
                repo, tx, activation, code=code, from_states=from_states, now=now
            )
        done = await deliver_code(
            repo, tx, notifier, activation, code=code, from_states=from_states, now=now
        )
    if done is None:
        return False
    notifier.wake()
    return True


async def resolve_gone(
    repo: Repo,
    activation_id: int,
    *,
    state: Literal["cancelled", "expired"] = "expired",
    reason: str = "NOT_FOUND",
    notifier: Notifier | None = None,
) -> bool:
    """The upstream says the number is Not Found / Invalid: it will never get a code, so the
    user is refunded (unless a code already arrived). Returns whether it refunded.

    A number that vanished by itself ("expired") gets the refund notice; one the user was
    cancelling ("cancelled") is answered on the spot. Either way the card is redrawn.
    """
    activation = await _get(repo, activation_id)
    return await _refund(
        repo,
        activation,
        state,
        notifier,
        notice="gone" if state == "expired" else None,
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
    notifier: Notifier | None = None,
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
        await _code_on_cancel(repo, activation, exc, notifier)
        return await _get(repo, activation_id)
    except NotFound:
        await resolve_gone(repo, activation_id, state="cancelled", notifier=notifier)
        return await _get(repo, activation_id)
    except RateLimited as exc:
        raise UpstreamBusy(exc.retry_after) from exc
    except DaisySimError as exc:
        log.warning("activation %d: cancel failed upstream: %s", activation_id, exc)
        raise UpstreamUnavailable(str(exc)) from exc
    await _refund_cancelled(
        repo,
        activation,
        "cancelled",
        notifier,
        actor_id=actor_id,
        upstream_refund=result.refund_units,
    )
    return await _get(repo, activation_id)


async def expire(
    repo: Repo,
    client: DaisySimClient,
    activation_id: int,
    *,
    notifier: Notifier | None = None,
) -> float | None:
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
        await _code_on_cancel(repo, activation, exc, notifier)
        return None
    except NotFound:
        await resolve_gone(repo, activation_id, state="expired", notifier=notifier)
        return None
    except RateLimited as exc:
        return exc.retry_after
    except DaisySimError as exc:
        log.warning("activation %d: expiry cancel failed upstream: %s", activation_id, exc)
        return EXPIRE_RETRY_SECONDS
    await _refund_cancelled(
        repo, activation, "expired", notifier, actor_id=None, upstream_refund=result.refund_units
    )
    return None


async def _code_on_cancel(
    repo: Repo, activation: Activation, exc: CodeReceived, notifier: Notifier | None
) -> None:
    code = exc.sms_code
    if code is None:
        # CODE_RECEIVED without the code in `data`: the poller's next check will bring it.
        log.warning("activation %d: CODE_RECEIVED without a code", activation.id)
        return
    # The poller (or a Refresh) may have stored and announced it meanwhile: then this
    # changes nothing and says nothing.
    await complete(repo, activation.id, code, notifier=notifier)


async def _refund_cancelled(
    repo: Repo,
    activation: Activation,
    state: Literal["cancelled", "expired"],
    notifier: Notifier | None,
    *,
    actor_id: int | None,
    upstream_refund: int,
) -> None:
    # The user who cancelled is answered on the spot; an automatic expiry gets the notice.
    refunded = await _refund(
        repo,
        activation,
        state,
        notifier,
        notice="expired" if state == "expired" else None,
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


async def _refund(
    repo: Repo,
    activation: Activation,
    state: Literal["cancelled", "expired"],
    notifier: Notifier | None,
    *,
    notice: RefundReason | None,
    error_code: str | None = None,
    actor_id: int | None = None,
    note: str | None = None,
) -> bool:
    """Refund a waiting activation once; with a notifier, what the user is told commits
    with the refund."""
    now = time.time()
    async with repo.db.transaction() as tx:
        if notifier is None:
            return await money.refund_activation(
                repo,
                tx,
                activation,
                state=state,
                from_states=(WAITING,),
                now=now,
                error_code=error_code,
                actor_id=actor_id,
                note=note,
            )
        done = await refund_and_tell(
            repo,
            tx,
            notifier,
            activation,
            state=state,
            notice=notice,
            waited=now - (activation.purchased_at or activation.created_at),
            from_states=(WAITING,),
            now=now,
            error_code=error_code,
            actor_id=actor_id,
            note=note,
        )
    if done is None:
        return False
    notifier.wake()
    return True
