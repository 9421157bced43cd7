"""The one buy path: a tap on a price button, in a private chat, in a group or on a card's
"Buy again", ends here, and only here, before the purchase queue.

`Buying.buy(tap)` checks the price on the button against a fresh quote (a changed price is
never charged: the user is asked again), makes a repeated tap buy nothing more (the idempotency
key is the user and the button's nonce, and concurrent taps of one key are serialised so the
second sees what the first did), chooses the wallet that pays, joins the purchase queue (which
holds the money and sends the call at once when nobody waits), and returns ONE outcome for the
Telegram edge to render. It never talks to Telegram: the edge gives it a `Membership` check and
a hook for the admins' alert.

Which wallet pays: the personal wallet in a private chat, the group's in a group (within the
member's daily limit), and for "Buy again" the wallet that paid the card's purchase, so a
number bought on the group's money is bought again on the group's money, within the limit,
even when the button is pressed in the private chat the card was sent to (the buyer must still
be a member of that group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from bot.services.catalogue import Catalogue, Quote
from bot.services.errors import (
    DailyLimitExceeded,
    InsufficientFunds,
    NotYourActivation,
    PurchasePending,
    PurchaseRejected,
)
from bot.services.maintenance import Maintenance
from bot.services.money import PurchaseRequest
from bot.services.purchase_queue import PurchaseQueue, Queued, QueueFull
from storage.models import Activation, Chat, Wallet
from storage.repo import Repo

log = logging.getLogger(__name__)

# The nonce of a card's "Buy again" button names the activation it repeats (texts.py).
_AGAIN_NONCE: Final = re.compile(r"^a(\d{1,18})$")


def again_nonce(activation_id: int) -> str:
    """The nonce of the "Buy again" button of an activation's card: the same on every redraw
    of the card, so a double tap that straddles a redraw buys once."""
    return f"a{activation_id}"


def again_of(nonce: str) -> int | None:
    match = _AGAIN_NONCE.match(nonce)
    return None if match is None else int(match[1])


@dataclass(frozen=True, slots=True)
class Tap:
    """A press of a buy button, as the edge read it. `wallet` pays unless the button repeats
    a purchase another wallet paid; `group` is the group the button was pressed in, if any."""

    user_id: int
    chat_id: int
    wallet: Wallet
    group: Chat | None
    country: str
    ref: str
    pool: str | None
    price: int  # the user price on the button, in units
    nonce: str

    @property
    def key(self) -> str:
        return f"{self.user_id}:{self.nonce}"


# --- outcomes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bought:
    """Bought: the number is on the activation (`waiting`)."""

    activation: Activation
    group: Chat | None  # the group whose wallet paid


@dataclass(frozen=True, slots=True)
class InLine:
    """Waiting in the purchase queue with the money held."""

    queued: Queued
    group: Chat | None


@dataclass(frozen=True, slots=True)
class PriceChanged:
    """The button's price is not the price now: nothing was charged; ask again."""

    quote: Quote
    shown: int


@dataclass(frozen=True, slots=True)
class Gone:
    """The service (or pool) is not in the catalogue any more."""

    ref: str


@dataclass(frozen=True, slots=True)
class Insufficient:
    """The paying wallet cannot cover the price; nothing changed."""

    needed: int
    balance: int
    group: Chat | None  # set when the group's wallet was to pay


@dataclass(frozen=True, slots=True)
class LimitReached:
    """A group member's purchases today would pass the limit the group's admins set."""

    limit: int
    spent: int
    needed: int
    group: Chat


@dataclass(frozen=True, slots=True)
class LineFull:
    """The wallet already holds every place in the purchase queue it may."""

    limit: int


@dataclass(frozen=True, slots=True)
class NotMember:
    """ "Buy again" of a number the group paid, by someone who is no longer in that group."""

    group: Chat


@dataclass(frozen=True, slots=True)
class Rejected:
    """The upstream definitely did not sell it; the money is back already."""

    error: PurchaseRejected
    quote: Quote


@dataclass(frozen=True, slots=True)
class Pending:
    """The upstream's answer was lost: the money stays held until reconciliation."""

    activation: Activation
    quote: Quote


@dataclass(frozen=True, slots=True)
class Repeated:
    """The same button again (a double tap, an old message): nothing more was bought.
    `place` is the purchase's place in line while it waits there."""

    activation: Activation
    place: int | None


@dataclass(frozen=True, slots=True)
class SalesPaused:
    """Maintenance mode: nothing was bought or charged. `minutes_left` is the estimate
    (None: until the admins turn it off)."""

    minutes_left: int | None


BuyOutcome = (
    Bought
    | InLine
    | PriceChanged
    | Gone
    | Insufficient
    | LimitReached
    | LineFull
    | NotMember
    | Rejected
    | Pending
    | Repeated
    | SalesPaused
)


class Membership(Protocol):
    async def __call__(self, chat_id: int, user_id: int) -> bool:
        """Whether the user is (still) a member of the group (Telegram's answer)."""


# Called once the purchase is in the queue's hands: `place` in line, or None when its call is
# on its way. The edge answers the tap here, so the spinner stops while the purchase runs.
Started = Callable[[int | None], Awaitable[None]]
# Shows the outcome to the user (the edge renders it).
Show = Callable[["BuyOutcome"], Awaitable[None]]
# The upstream account is empty (INSUFFICIENT_BALANCE): the admins must be told.
UpstreamExhausted = Callable[[], Awaitable[None]]


class KeyedLocks:
    """One asyncio.Lock per key, forgotten when nobody holds or waits for it.

    A double tap arrives as two updates handled concurrently; serialising them on the
    idempotency key lets the second see what the first bought and say so, instead of both
    drawing a card for the same number.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True, slots=True)
class _Payer:
    wallet: Wallet
    group: Chat | None


class Buying:
    """Built once by the composition root; handlers reach it as workflow data `buying`."""

    def __init__(
        self,
        repo: Repo,
        catalogue: Catalogue,
        queue: PurchaseQueue,
        *,
        membership: Membership,
        upstream_exhausted: UpstreamExhausted,
        maintenance: Maintenance | None = None,
    ) -> None:
        self.repo = repo
        self.maintenance = maintenance or Maintenance(repo)
        self.catalogue = catalogue
        self.queue = queue
        self._membership = membership
        self._upstream_exhausted = upstream_exhausted
        self.locks = KeyedLocks()

    async def buy(self, tap: Tap, *, started: Started, show: Show) -> BuyOutcome:
        """Buy what the tap asks and `show` the outcome, both while holding the tap's key:
        a second tap of the same button then finds the first one's card on screen, and is
        told so rather than given a copy."""
        async with self.locks.hold(tap.key):
            outcome = await self._buy(tap, started)
            await show(outcome)
        return outcome

    async def _buy(self, tap: Tap, started: Started) -> BuyOutcome:
        existing = await self.repo.activations.get_by_key(tap.key)
        if existing is not None:
            # Before the maintenance check: a tap on a bought button still says it was bought.
            return await self._repeated(existing)
        paused = await self.maintenance.paused()
        if paused is not None:
            return SalesPaused(paused.minutes_left)
        quote = await self.catalogue.quote(tap.country, tap.ref, tap.pool)
        if quote is None:
            return Gone(tap.ref)
        if quote.price_units != tap.price:
            # Never charge a price the user did not see.
            return PriceChanged(quote, tap.price)
        payer = await self._payer(tap)
        if isinstance(payer, NotMember):
            return payer
        if payer.wallet.balance < quote.price_units:
            return Insufficient(quote.price_units, payer.wallet.balance, payer.group)
        return await self._join(tap, quote, payer, started)

    async def _repeated(self, existing: Activation) -> Repeated:
        queued = await self.queue.place_of(existing.id)
        return Repeated(existing, None if queued is None else queued.place)

    async def _payer(self, tap: Tap) -> _Payer | NotMember:
        """The wallet that pays: a repeated purchase's own, else the one of the chat."""
        source_id = again_of(tap.nonce)
        source = None if source_id is None else await self.repo.activations.get(source_id)
        if source is None or source.user_id != tap.user_id or source.wallet_id == tap.wallet.id:
            return _Payer(tap.wallet, tap.group)
        wallet = await self.repo.wallets.get(source.wallet_id)
        if wallet is None:
            return _Payer(tap.wallet, tap.group)
        if wallet.owner_kind == "user":
            # Bought from the buyer's own wallet (e.g. in a group before it had one).
            return _Payer(wallet, None)
        group = await self.repo.chats.get(wallet.owner_id)
        if group is None:
            return _Payer(tap.wallet, tap.group)
        if (tap.group is None or tap.group.id != group.id) and not await self._membership(
            group.id, tap.user_id
        ):
            return NotMember(group)
        return _Payer(wallet, group)

    async def _join(self, tap: Tap, quote: Quote, payer: _Payer, started: Started) -> BuyOutcome:
        group = payer.group
        request = PurchaseRequest(
            user_id=tap.user_id,
            wallet_id=payer.wallet.id,
            service_code=quote.service.code,
            service_name=quote.service.name,
            user_price=tap.price,
            upstream_price=quote.upstream_units,
            idempotency_key=tap.key,
            country=tap.country,
            provider_id=quote.provider_id,
            # A purchase on a group's money belongs to that group (its admins may act on the
            # card, its spending report counts it), wherever the button was pressed.
            chat_id=tap.chat_id if group is None else group.id,
            # Checked in the transaction that holds the money.
            member_daily_limit=None if group is None else group.member_daily_limit_units,
        )
        try:
            # Joined before the tap is answered, so the line keeps the order of the taps.
            ticket = await self.queue.join(request)
        except QueueFull as exc:
            return LineFull(exc.limit)
        except InsufficientFunds as exc:
            return Insufficient(exc.needed, exc.balance, group)
        except DailyLimitExceeded as exc:
            assert group is not None
            return LimitReached(exc.limit, exc.spent, exc.needed, group)
        except NotYourActivation:
            # Keys carry the user id, so only a forged nonce gets here: nothing was bought.
            return Gone(tap.ref)
        if ticket.repeated:
            return await self._repeated(ticket.activation)
        await started(None if ticket.queued is None else ticket.queued.place)
        try:
            result = await self.queue.outcome(ticket)
        except PurchaseRejected as exc:
            if exc.alert_admins:
                await self._upstream_exhausted()
            return Rejected(exc, quote)
        except PurchasePending as exc:
            return Pending(exc.activation, quote)
        if isinstance(result, Queued):
            return InLine(result, group)
        return Bought(result, group)


__all__ = [
    "Bought",
    "BuyOutcome",
    "Buying",
    "Gone",
    "InLine",
    "Insufficient",
    "KeyedLocks",
    "LimitReached",
    "LineFull",
    "Membership",
    "NotMember",
    "Pending",
    "PriceChanged",
    "Rejected",
    "Repeated",
    "SalesPaused",
    "Tap",
    "again_nonce",
    "again_of",
]
