"""Every inline button's callback data, in one place.

Prefixes are short and carry a version (``v1``): when a layout changes, the new classes get
``v2`` prefixes and the old buttons still parse into the stale-button handler instead of into
the wrong handler. Only ids travel in callback data; nothing in it is trusted for ownership
(every activation button checks the stored owner) and a forged value that does not parse falls
through to the stale-button answer.
"""

from __future__ import annotations

import secrets
import string
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

# Telegram's limit on callback_data, in bytes.
MAX_CALLBACK_BYTES = 64
_NONCE_ALPHABET = string.ascii_letters + string.digits


class MenuAction(StrEnum):
    MAIN = "m"
    BUY = "b"
    NUMBERS = "n"
    BALANCE = "w"
    HELP = "h"
    LANGUAGE = "l"
    PROMO = "p"  # asks for a promo code
    INVITE = "i"  # the invite link, friends and earnings


class MenuCb(CallbackData, prefix="v1m"):
    action: MenuAction


class LangCb(CallbackData, prefix="v1l"):
    lang: str


class CountryCb(CallbackData, prefix="v1c"):
    country: str


class ServicesCb(CallbackData, prefix="v1s"):
    """A page of the service picker."""

    country: str
    page: int


class ServiceAction(StrEnum):
    OPEN = "o"  # open the pool picker of a multi-pool service
    STAR = "s"  # toggle the favourite star


class ServiceCb(CallbackData, prefix="v1v"):
    action: ServiceAction
    country: str
    ref: str
    page: int


class FavouritesCb(CallbackData, prefix="v1e"):
    """A page of the favourites editor: every service with its ☆/⭐ toggle, in catalogue
    order, so that the rows stay put while stars are toggled."""

    country: str
    page: int


class BuyCb(CallbackData, prefix="v1b"):
    """The button that buys: what, from which pool, at which price, and a one-off nonce.

    ``price`` is the user price in ledger units shown on the button; the purchase charges
    exactly that or asks again. ``nonce`` makes the idempotency key, so a second tap on the
    same button buys nothing more.
    """

    country: str
    ref: str
    pool: str  # provider_id, or "" for "cheapest available"
    price: int
    nonce: str


class ActAction(StrEnum):
    REFRESH = "r"
    CANCEL = "c"
    SHOW = "s"  # re-send the card (from My numbers)


class ActCb(CallbackData, prefix="v1a"):
    action: ActAction
    id: int


class HistoryFilter(StrEnum):
    ALL = "a"
    ACTIVE = "w"
    COMPLETED = "c"
    REFUNDED = "r"


class HistoryCb(CallbackData, prefix="v1h"):
    status: HistoryFilter
    page: int


class QueueAction(StrEnum):
    LEAVE = "l"  # leave the purchase queue, the hold refunded


class QueueCb(CallbackData, prefix="v1q"):
    """Buttons on a place in the purchase queue; the owner is checked against the stored
    buyer, never the data."""

    action: QueueAction
    id: int  # the activation


class TopupBuyCb(CallbackData, prefix="v1u"):
    """ "Top up and buy": the buy button's own fields, from the "not enough balance" answer.
    Pressed, it sends a Stars invoice for the shortfall of the presser's own wallet; the
    payment then buys exactly what the buy button would have (its nonce too, so once)."""

    country: str
    ref: str
    pool: str
    price: int
    nonce: str

    def as_buy(self) -> BuyCb:
        return BuyCb(
            country=self.country, ref=self.ref, pool=self.pool, price=self.price, nonce=self.nonce
        )


class TopupCb(CallbackData, prefix="v1t"):
    """The Stars top-up screen (units=0) and its amount buttons. Never names a wallet: the
    invoice is always for the presser's own wallet."""

    units: int


class CryptoCb(CallbackData, prefix="v1k"):
    """The Crypto Pay top-up screen (units=0) and its amount buttons; like TopupCb it never
    names a wallet: the invoice is always for the presser's own."""

    units: int


class AdminAction(StrEnum):
    HOME = "h"
    STATS = "s"
    FIND = "f"
    USER = "u"
    TOPUP = "t"  # the amounts for a user's top-up
    TOPUP_AMOUNT = "a"  # top up `units` (a nonce makes a double tap credit once)
    TOPUP_OTHER = "o"  # type an amount
    BAN = "b"
    UNBAN = "n"
    PAYMENTS = "p"
    REFUND = "r"  # ask to confirm the refund of payment `id`
    REFUND_OK = "k"
    BROADCAST = "c"
    BROADCAST_SEND = "y"
    BROADCAST_CANCEL = "x"
    MARKUP = "m"
    MARKUP_RESET = "z"
    EXPORT = "e"
    MAINTENANCE = "M"  # the maintenance switch's screen
    MAINTENANCE_ON = "W"  # on for `units` minutes; 0: until turned off
    MAINTENANCE_OFF = "Q"
    PROMO = "P"  # the promo codes with their uses
    PROMO_NEW = "N"  # type a code to create
    PROMO_BATCH = "B"  # type how many one-use codes


class AdminCb(CallbackData, prefix="v1x"):
    """Admin panel buttons; every handler checks ADMIN_IDS again (never the data)."""

    action: AdminAction
    id: int = 0  # a user, payment or broadcast id
    units: int = 0
    nonce: str = ""


class GroupAction(StrEnum):
    PANEL = "p"
    FUND = "f"  # the amounts to move from the presser's own wallet
    FUND_AMOUNT = "a"
    STARS = "s"  # the amounts for a Stars invoice in the group
    STARS_AMOUNT = "i"
    CRYPTO = "k"  # the amounts for a Crypto Pay invoice that funds the group
    CRYPTO_AMOUNT = "K"
    LIMIT = "l"
    LIMIT_SET = "L"  # units = the limit, -1 = no limit
    SPENDING = "x"


class GroupCb(CallbackData, prefix="v1g"):
    """Group wallet buttons. The group is the chat the button is in, and whether the presser
    may use it is asked from Telegram (getChatMember), never read from the data."""

    action: GroupAction
    units: int = 0
    nonce: str = ""


class PrefCb(CallbackData, prefix="v1p"):
    """Where the number and code of a purchase made in a group go."""

    group_codes: str


def new_nonce(length: int = 8) -> str:
    """A random token for one buy button (62^8 values: collisions per user are negligible)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))
