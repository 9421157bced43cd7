"""What the repositories return: frozen dataclasses, never database rows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from storage.db import Row

ActivationState = Literal[
    "purchasing", "waiting", "completed", "cancelled", "expired", "failed", "unknown"
]
PURCHASING: Final = "purchasing"
WAITING: Final = "waiting"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"
FAILED: Final = "failed"
UNKNOWN: Final = "unknown"

# The user's money is held but the upstream outcome is not known yet.
UNSETTLED_STATES: Final[tuple[str, ...]] = (PURCHASING, UNKNOWN)
ACTIVE_STATES: Final[tuple[str, ...]] = (PURCHASING, WAITING, UNKNOWN)
# Ended without a code: these, and only these, carry a refund.
REFUNDED_STATES: Final[tuple[str, ...]] = (CANCELLED, EXPIRED, FAILED)
FINAL_STATES: Final[tuple[str, ...]] = (COMPLETED, CANCELLED, EXPIRED, FAILED)
ALL_STATES: Final[tuple[str, ...]] = (
    PURCHASING,
    WAITING,
    COMPLETED,
    CANCELLED,
    EXPIRED,
    FAILED,
    UNKNOWN,
)

OwnerKind = Literal["user", "group"]
LedgerKind = Literal[
    "topup",
    "stars",
    "purchase",
    "refund",
    "transfer_in",
    "transfer_out",
    "adjustment",
    "sandbox_bonus",
    "crypto",
    "promo",
    "referral",
]
PaymentStatus = Literal["paid", "refunded"]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str | None
    first_name: str
    language: str | None
    banned: bool
    inactive: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    type: str
    title: str | None
    member_daily_limit_units: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Wallet:
    id: int
    owner_kind: OwnerKind
    owner_id: int
    balance: int
    created_at: float


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    wallet_id: int
    amount: int
    kind: str
    activation_id: int | None
    payment_id: int | None
    counterparty_wallet_id: int | None
    actor_id: int | None
    note: str | None
    created_at: float
    crypto_invoice_id: int | None = None  # a 'crypto' entry's invoice (migration 0009)
    # The promo redemption a 'promo' entry credits (migration 0010); None for other kinds.
    promo_redemption_id: int | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    id: int
    user_id: int
    wallet_id: int
    chat_id: int | None
    state: ActivationState
    service_code: str
    service_name: str
    provider_id: str | None
    country: str
    user_price: int
    upstream_price: int
    upstream_amount: int | None
    idempotency_key: str
    recon_token: str
    upstream_id: str | None
    phone_number: str | None
    code: str | None
    error_code: str | None
    created_at: float
    purchased_at: float | None
    cancel_after: float | None
    completed_at: float | None
    finished_at: float | None
    card_chat_id: int | None
    card_message_id: int | None
    next_poll_at: float | None
    poll_attempts: int
    # When the purchase call was let go (migration 0007); None while it waits in line, and
    # for rows older than that migration.
    sent_at: float | None = None
    # The user was refunded for a number the upstream sold; /cancel is still owed for it.
    cancel_owed_at: float | None = None

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_unsettled(self) -> bool:
        return self.state in UNSETTLED_STATES

    @property
    def is_refunded_state(self) -> bool:
        return self.state in REFUNDED_STATES


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    wallet_id: int
    user_id: int
    telegram_payment_charge_id: str
    stars: int
    amount_units: int
    payload: str
    status: PaymentStatus
    created_at: float
    refunded_at: float | None


@dataclass(frozen=True, slots=True)
class Sales:
    """Activations that kept their charge (a number was delivered or is still in use)."""

    count: int
    revenue_units: int  # what users paid
    cost_units: int  # what the upstream charged for them


@dataclass(frozen=True, slots=True)
class MemberSpending:
    """One member's purchases from a (group) wallet over a period."""

    user_id: int
    count: int
    units: int


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: int
    admin_id: int
    text: str
    created_at: float
    confirmed_at: float | None
    cancelled_at: float | None
    recipients: int | None


@dataclass(frozen=True, slots=True)
class PromoCode:
    id: int
    code: str
    amount_units: int
    max_uses: int
    uses: int
    expires_at: float | None
    once_per_user: bool
    created_by: int
    created_at: float

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def used_up(self) -> bool:
        return self.uses >= self.max_uses


@dataclass(frozen=True, slots=True)
class PromoRedemption:
    id: int
    code_id: int
    user_id: int
    wallet_id: int
    once: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class Referral:
    referee_id: int
    referrer_id: int
    earned_units: int
    created_at: float


_T = TypeVar("_T")
_BOOL_FIELDS: Final = frozenset({"banned", "inactive", "once_per_user", "once"})


CryptoNetwork = Literal["mainnet", "testnet", "sandbox"]
CryptoInvoiceStatus = Literal["active", "paid", "expired"]


@dataclass(frozen=True, slots=True)
class CryptoInvoice:
    """A Crypto Pay invoice we created (migration 0009); `amount_units` is what it credits."""

    id: int
    network: CryptoNetwork
    invoice_id: int
    invoice_hash: str
    wallet_id: int
    user_id: int
    chat_id: int
    message_id: int | None
    amount_units: int
    fiat: str
    pay_url: str
    status: CryptoInvoiceStatus
    paid_asset: str | None
    paid_amount: str | None
    created_at: float
    expires_at: float
    paid_at: float | None
    credited_at: float | None
    ended_at: float | None


def from_row(cls: type[_T], row: Row) -> _T:
    """Build `cls` from the row's columns of the same names; later migrations may add columns
    a dataclass does not know yet, which are ignored."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = row[field.name]
        if field.name in _BOOL_FIELDS:
            value = bool(value)
        values[field.name] = value
    return cls(**values)
