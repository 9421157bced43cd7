"""What the money and activation services raise; the bot's error router turns each into a
friendly message. Every error carries the values that message needs, never a formatted text.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from storage.models import Activation


class AppError(Exception):
    """Base of every expected, user-facing failure of a service."""

    code: ClassVar[str] = "APP_ERROR"


class InvalidAmount(AppError):
    code = "INVALID_AMOUNT"

    def __init__(self, amount: object) -> None:
        super().__init__(f"an amount must be a positive integer number of units, got {amount!r}")
        self.amount = amount


class WalletNotFound(AppError):
    code = "WALLET_NOT_FOUND"

    def __init__(self, wallet_id: int) -> None:
        super().__init__(f"no wallet {wallet_id}")
        self.wallet_id = wallet_id


class InsufficientFunds(AppError):
    """The user's (or group's) wallet cannot pay; nothing was changed."""

    code = "INSUFFICIENT_FUNDS"

    def __init__(self, needed: int, balance: int) -> None:
        super().__init__(f"needed {needed} units, the wallet holds {balance}")
        self.needed = needed
        self.balance = balance

    @property
    def shortfall(self) -> int:
        return self.needed - self.balance


class DailyLimitExceeded(AppError):
    """A group member's purchases today would exceed the limit the group admins set."""

    code = "DAILY_LIMIT_EXCEEDED"

    def __init__(self, limit: int, spent: int, needed: int) -> None:
        super().__init__(f"daily limit {limit} units, spent {spent}, this costs {needed}")
        self.limit = limit
        self.spent = spent
        self.needed = needed

    @property
    def remaining(self) -> int:
        return max(self.limit - self.spent, 0)


class PaymentNotFound(AppError):
    code = "PAYMENT_NOT_FOUND"

    def __init__(self, ref: object) -> None:
        super().__init__(f"no payment {ref!r}")
        self.ref = ref


class ActivationNotFound(AppError):
    code = "ACTIVATION_NOT_FOUND"

    def __init__(self, activation_id: int) -> None:
        super().__init__(f"no activation {activation_id}")
        self.activation_id = activation_id


class NotYourActivation(AppError):
    code = "NOT_YOUR_ACTIVATION"

    def __init__(self, activation_id: int) -> None:
        super().__init__(f"activation {activation_id} belongs to someone else")
        self.activation_id = activation_id


class ActivationNotActive(AppError):
    """The activation already ended (or has no upstream number yet), so it cannot do that."""

    code = "ACTIVATION_NOT_ACTIVE"

    def __init__(self, activation: Activation) -> None:
        super().__init__(f"activation {activation.id} is {activation.state}")
        self.activation = activation

    @property
    def state(self) -> str:
        return self.activation.state


class CancelTooEarly(AppError):
    """The upstream's cancel lock has not ended; nothing was changed."""

    code = "CANCEL_TOO_EARLY"

    def __init__(self, seconds_left: int) -> None:
        super().__init__(f"cancel allowed in {seconds_left} s")
        self.seconds_left = seconds_left


class UpstreamBusy(AppError):
    """The upstream asked us to slow down (RATE_LIMITED); try again after `retry_after` s."""

    code = "UPSTREAM_BUSY"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"upstream busy, retry in {retry_after:g} s")
        self.retry_after = retry_after


class UpstreamUnavailable(AppError):
    """The upstream could not be reached or answered nonsense; nothing was changed."""

    code = "UPSTREAM_UNAVAILABLE"


class PurchaseRejected(AppError):
    """The upstream definitely did not sell the number; the user's money is back already.

    `upstream_code` is the DaisySim error code (OUT_OF_STOCK, PRICE_VERIFICATION_FAILED, ...)
    so the handler can offer other pools or re-fetch prices; `retryable` says whether the same
    purchase may succeed later.
    """

    code = "PURCHASE_REJECTED"
    alert_admins: ClassVar[bool] = False

    def __init__(
        self,
        upstream_code: str,
        *,
        retryable: bool,
        activation: Activation,
        message: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"purchase rejected upstream: {upstream_code} {message}".rstrip())
        self.upstream_code = upstream_code
        self.retryable = retryable
        self.activation = activation
        self.upstream_message = message
        self.retry_after = retry_after


class UpstreamBalanceExhausted(PurchaseRejected):
    """INSUFFICIENT_BALANCE from the upstream: OUR account there is empty. The user is
    refunded; the admins must be told (`alert_admins`)."""

    code = "UPSTREAM_BALANCE_EXHAUSTED"
    alert_admins = True


class PurchasePending(AppError):
    """The upstream's answer was lost (timeout, dropped connection, 5xx). The money stays
    held; reconciliation will either link the number or refund it. Never buy again for it."""

    code = "PURCHASE_PENDING"

    def __init__(self, activation: Activation) -> None:
        super().__init__(f"purchase {activation.id} outcome unknown; reconciling")
        self.activation = activation


PromoProblem = Literal["unknown", "expired", "used_up", "already_used"]


class PromoRefused(AppError):
    """A promo code that credits nothing: no such code, past its expiry, every use taken, or
    already redeemed by this user (a once-per-user code). Nothing was changed."""

    code = "PROMO_REFUSED"

    def __init__(self, promo_code: str, reason: PromoProblem) -> None:
        super().__init__(f"promo code {promo_code!r} refused: {reason}")
        self.promo_code = promo_code
        self.reason: PromoProblem = reason
