"""Buying a number, crash-safe (PRODUCT.md section 2).

1. ONE transaction holds the price (`money.hold_purchase`, called by the purchase queue's
   `join`, which also returns the activation a repeated idempotency key already holds).
2. Call the upstream with `app_name` = "<service> #<token>": the upstream stores it as the
   order's `service`, and /history shows it, so an order whose answer we never saw (timeout,
   dropped connection, our process killed) is found again by reconciliation.
3. Success → `waiting` with the upstream id and number. A definite rejection → `failed` and
   the full price back in one transaction. An unknown outcome → `unknown`, left to
   `reconcile.reconcile_unknown`; the purchase is never sent again, which could buy twice.

A process killed between 1 and 3 leaves `purchasing`; reconciliation after a restart treats it
exactly like `unknown`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from bot.daisysim import (
    APIError,
    ConcurrentError,
    DaisySimClient,
    InsufficientBalance,
    InvalidCountry,
    OutOfStock,
    PriceVerificationFailed,
    Purchase,
    PurchaseOutcomeUnknown,
    RateLimited,
    TransportError,
)
from bot.services import money
from bot.services.errors import (
    AppError,
    PurchasePending,
    PurchaseRejected,
    UpstreamBalanceExhausted,
)
from storage.db import Transaction
from storage.models import PURCHASING, UNSETTLED_STATES, Activation
from storage.repo import Repo

log = logging.getLogger(__name__)

DEFAULT_CANCEL_LOCK_SECONDS = 180.0
# The upstream's app_name is free text; keep the label short enough for any sane limit.
_MAX_SERVICE_LABEL = 40
_TAG = re.compile(r"#([0-9a-f]{10})\s*$")

# Rejections after which the very same purchase can work a little later.
_RETRYABLE: tuple[type[APIError], ...] = (
    OutOfStock,
    PriceVerificationFailed,
    RateLimited,
    ConcurrentError,
)


# Runs inside the transaction that settles a purchase (bought, refunded, or left unknown), with
# the activation as that transaction leaves it: a caller's message about it commits with it.
SettleHook = Callable[[Transaction, Activation], Awaitable[None]]
# Runs inside the transaction that gives up on sending a purchase for now (a 429, or an upstream
# that could not be reached at all): the activation stays `purchasing` with its money held, so
# the hook must put it back in line (the queue table), where reconciliation never looks.
DeferHook = Callable[[Transaction, Activation], Awaitable[None]]


class PurchaseDeferred(AppError):
    """Definitely not bought, and nothing refunded: the `defer` hook put the purchase back in
    its queue. `retry_after` is the upstream's wait for a 429, None for an unreachable one."""

    code = "PURCHASE_DEFERRED"

    def __init__(self, activation: Activation, reason: str, retry_after: float | None) -> None:
        super().__init__(f"purchase {activation.id} deferred: {reason}")
        self.activation = activation
        self.reason = reason
        self.retry_after = retry_after


def reconciliation_tag(service_name: str, token: str) -> str:
    """The app_name sent upstream: readable in the upstream's dashboard, and ending in the
    token that `token_of` finds again in /history."""
    label = " ".join(service_name.split())[:_MAX_SERVICE_LABEL] or "number"
    return f"{label} #{token}"


def token_of(service: str) -> str | None:
    match = _TAG.search(service)
    return match.group(1) if match else None


async def send_held(
    repo: Repo,
    client: DaisySimClient,
    activation: Activation,
    *,
    cancel_lock_seconds: float = DEFAULT_CANCEL_LOCK_SECONDS,
    on_settled: SettleHook | None = None,
    defer: DeferHook | None = None,
) -> Activation:
    """Steps 2 and 3 for a purchase already held by step 1.

    The transaction that last made `activation` eligible to be sent (the hold, or the purchase
    queue's dequeue) must have registered it in `db.inflight_purchases` before committing;
    this unregisters it when the call has settled. Raises PurchaseRejected (the money is
    back), UpstreamBalanceExhausted (ditto; the admins must be told), PurchasePending
    (outcome unknown), and, when `defer` is given, PurchaseDeferred instead of refunding a
    429 or an unreachable upstream.
    """
    done = repo.db.inflight_purchases.get(activation.id)
    if done is None:
        raise RuntimeError(f"activation {activation.id} is not registered as in flight")
    try:
        return await _buy(repo, client, activation, cancel_lock_seconds, on_settled, defer)
    finally:
        repo.db.inflight_purchases.pop(activation.id, None)
        done.set()


async def settled(repo: Repo, activation: Activation) -> Activation:
    """A repeated key: the activation it bought, once the first attempt (if it is still
    running in this process) has settled."""
    event = repo.db.inflight_purchases.get(activation.id)
    if event is not None:
        await event.wait()
    current = await repo.activations.get(activation.id)
    assert current is not None
    return current


async def _buy(
    repo: Repo,
    client: DaisySimClient,
    activation: Activation,
    cancel_lock_seconds: float,
    on_settled: SettleHook | None = None,
    defer: DeferHook | None = None,
) -> Activation:
    tag = reconciliation_tag(activation.service_name, activation.recon_token)
    try:
        bought = await client.purchase(
            activation.country, activation.service_code, activation.provider_id, app_name=tag
        )
    except PurchaseOutcomeUnknown as exc:
        await _mark_unknown(repo, activation, exc.code, on_settled)
        log.warning("activation %d: purchase outcome unknown (%s)", activation.id, exc)
        raise PurchasePending(await _reload(repo, activation)) from exc
    except TransportError as exc:
        # The client raises this for a purchase only when the request never left.
        if defer is not None:
            raise await _defer(repo, activation, defer, "UPSTREAM_UNREACHABLE", None) from exc
        raise await _reject(
            repo, activation, "UPSTREAM_UNREACHABLE", True, str(exc), on_settled=on_settled
        ) from exc
    except APIError as exc:
        if (exc.http_status or 0) >= 500 and not isinstance(exc, OutOfStock):
            # Defence in depth: a 5xx may hide a purchase, whatever the client decided.
            await _mark_unknown(repo, activation, exc.code, on_settled)
            raise PurchasePending(await _reload(repo, activation)) from exc
        if isinstance(exc, RateLimited) and defer is not None:
            raise await _defer(repo, activation, defer, exc.code, exc.retry_after) from exc
        raise await _reject_api(repo, activation, exc, on_settled) from exc
    except asyncio.CancelledError:
        # Shut down mid-call: the request may have left. Leave it to reconciliation.
        await asyncio.shield(_mark_unknown(repo, activation, "CANCELLED", on_settled))
        raise
    except Exception as exc:
        log.exception("activation %d: unexpected purchase failure", activation.id)
        await _mark_unknown(repo, activation, type(exc).__name__, on_settled)
        raise PurchasePending(await _reload(repo, activation)) from exc
    return await _store(repo, activation, bought, cancel_lock_seconds, on_settled)


async def _defer(
    repo: Repo,
    activation: Activation,
    defer: DeferHook,
    reason: str,
    retry_after: float | None,
) -> PurchaseDeferred:
    async with repo.db.transaction() as tx:
        current = await repo.activations.get(activation.id, tx=tx)
        assert current is not None
        await defer(tx, current)
    log.info("activation %d: purchase deferred (%s)", activation.id, reason)
    return PurchaseDeferred(current, reason, retry_after)


async def _store(
    repo: Repo,
    activation: Activation,
    bought: Purchase,
    cancel_lock_seconds: float,
    on_settled: SettleHook | None = None,
) -> Activation:
    now = time.time()
    async with repo.db.transaction() as tx:
        linked = await repo.activations.mark_waiting(
            tx,
            activation.id,
            upstream_id=bought.activation_id,
            phone_number=bought.phone_number,
            upstream_amount=bought.amount_charged_units,
            purchased_at=now,
            cancel_after=now + cancel_lock_seconds,
            from_states=UNSETTLED_STATES,
        )
        current = await repo.activations.get(activation.id, tx=tx)
        assert current is not None
        if linked and on_settled is not None:
            await on_settled(tx, current)
    if linked:
        log.info(
            "activation %d: bought upstream %s for %d units (expected %d)",
            activation.id,
            bought.activation_id,
            bought.amount_charged_units,
            activation.upstream_price,
        )
    elif current.upstream_id != bought.activation_id:
        # Only reachable if something settled this row while its call was in flight, which
        # the in-flight registry exists to prevent. The number will expire upstream unused.
        log.error(
            "activation %d is %s but upstream sold %s to it; not linked",
            activation.id,
            current.state,
            bought.activation_id,
        )
    return current


async def _mark_unknown(
    repo: Repo,
    activation: Activation,
    code: str,
    on_settled: SettleHook | None = None,
) -> None:
    async with repo.db.transaction() as tx:
        changed = await repo.activations.mark_unknown(tx, activation.id, error_code=code)
        if changed and on_settled is not None:
            current = await repo.activations.get(activation.id, tx=tx)
            assert current is not None
            await on_settled(tx, current)


async def _reload(repo: Repo, activation: Activation) -> Activation:
    current = await repo.activations.get(activation.id)
    assert current is not None
    return current


async def _reject_api(
    repo: Repo,
    activation: Activation,
    exc: APIError,
    on_settled: SettleHook | None = None,
) -> PurchaseRejected:
    retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
    if isinstance(exc, InsufficientBalance):
        log.error(
            "activation %d: the upstream account cannot pay (INSUFFICIENT_BALANCE)", activation.id
        )
        failed = await _refund_failed(repo, activation, exc.code, on_settled)
        return UpstreamBalanceExhausted(
            exc.code, retryable=False, activation=failed, message=exc.message
        )
    retryable = isinstance(exc, _RETRYABLE) and not isinstance(exc, InvalidCountry)
    return await _reject(
        repo,
        activation,
        exc.code,
        retryable,
        exc.message,
        retry_after=retry_after,
        on_settled=on_settled,
    )


async def _reject(
    repo: Repo,
    activation: Activation,
    code: str,
    retryable: bool,
    message: str,
    *,
    retry_after: float | None = None,
    on_settled: SettleHook | None = None,
) -> PurchaseRejected:
    failed = await _refund_failed(repo, activation, code, on_settled)
    log.info("activation %d: purchase rejected upstream (%s)", activation.id, code)
    return PurchaseRejected(
        code, retryable=retryable, activation=failed, message=message, retry_after=retry_after
    )


async def _refund_failed(
    repo: Repo,
    activation: Activation,
    code: str,
    on_settled: SettleHook | None = None,
) -> Activation:
    async with repo.db.transaction() as tx:
        refunded = await money.refund_activation(
            repo,
            tx,
            activation,
            state="failed",
            from_states=(PURCHASING,),
            now=time.time(),
            error_code=code,
            note=f"purchase rejected: {code}",
        )
        current = await repo.activations.get(activation.id, tx=tx)
        assert current is not None
        if refunded and on_settled is not None:
            await on_settled(tx, current)
    return current
