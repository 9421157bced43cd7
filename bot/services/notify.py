"""How services say what happened, so that the Telegram edge can tell people.

Services know activations, wallets and admins, never messages: they report facts through
these protocols and the edge (`bot.telegram.notifier`) decides the text, the keyboard and the
chat. A durable event is reported inside the transaction that changed the state, so what the
user is told commits with the change or not at all; once that transaction has committed, the
service calls `wake()` so it goes at once instead of at the sender's next look.

The card countdown is the one thing that is not durable: a redraw carries nothing a later one
would not, so it is asked for outside any transaction and may be dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.services.money import Movement
from storage.db import Transaction
from storage.models import Activation, Broadcast

# Why the poller refunded a waiting number: the upstream no longer knows it ("gone"), or no
# code came before the deadline and it was cancelled ("expired").
RefundReason = Literal["gone", "expired"]


@dataclass(frozen=True, slots=True)
class UpstreamExhausted:
    """The upstream refused a purchase for want of money on our account there."""


@dataclass(frozen=True, slots=True)
class LowUpstreamBalance:
    balance_units: int
    threshold_units: int


@dataclass(frozen=True, slots=True)
class UncreditedPayment:
    """Stars were taken for an invoice that could not be matched to a top-up."""

    charge_id: str
    user_id: int
    stars: int
    reason: str


@dataclass(frozen=True, slots=True)
class UncreditedCryptoPayment:
    """Crypto Pay reports an invoice paid that we could not credit: not one of ours, or not
    what we created (another amount, currency or hash). Money may have been taken."""

    invoice_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class BackupFailed:
    """The daily backup could not be written (disk full, folder gone, unreadable database)."""

    reason: str


AdminAlert = (
    UpstreamExhausted
    | LowUpstreamBalance
    | UncreditedPayment
    | UncreditedCryptoPayment
    | BackupFailed
)


class Notifier(Protocol):
    """Durable events, each reported inside the transaction `tx` that caused it."""

    async def code_arrived(self, tx: Transaction, activation: Activation) -> None:
        """The activation got its code (`activation` as `tx` left it)."""

    async def refunded(
        self, tx: Transaction, activation: Activation, reason: RefundReason, *, waited: float
    ) -> None:
        """A waiting number ended with its price back on the wallet; `waited` is how long
        it was given to receive a code (seconds)."""

    async def card_changed(self, tx: Transaction, activation: Activation) -> None:
        """The activation's state changed: its card, if it has one, shows the new state."""

    async def referral_earned(
        self, tx: Transaction, moved: Movement, activation: Activation
    ) -> None:
        """The purchase `activation` of a referee earned their referrer `moved` (a
        'referral' credit on the referrer's wallet)."""

    async def admin_alert(
        self, tx: Transaction, admin_id: int, alert: AdminAlert, *, dedupe: str
    ) -> bool:
        """Tell one admin; once per `dedupe` key and admin. False: told before."""

    async def broadcast(self, tx: Transaction, broadcast: Broadcast, user_id: int) -> bool:
        """Queue a confirmed broadcast for one recipient; False: queued before."""

    def wake(self) -> None:
        """What was reported in a transaction that has now committed may go now."""


class CardCountdown(Protocol):
    """The countdown on waiting cards: best-effort redraws, outside any transaction."""

    def redraw(self, activation: Activation, *, on_refused: Callable[[int], None]) -> None:
        """Redraw the card of a waiting activation when there is budget to spare, from its
        state at that moment. `on_refused(message_id)`: that card can never be redrawn
        (deleted, too old), so asking again is pointless until it is shown anew."""

    def forget(self, activation_id: int) -> None:
        """Drop a redraw not yet made: the activation is settled or no longer followed."""

    def redraws_per_second(self) -> float:
        """How many low-priority redraws a second the edge can take at most."""
