"""What the emulator records and what the user kit returns: plain dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.emulator.entities import Entity

__all__ = [
    "ApiCall",
    "CallbackAnswer",
    "ChatMessage",
    "Document",
    "EmulatorError",
    "EmulatorEvent",
    "EmulatorTimeout",
    "InlineButton",
    "Invoice",
    "Payment",
    "PaymentDeclined",
    "PreCheckoutAnswer",
    "UpdateRecord",
]


class EmulatorError(Exception):
    """A test asked the kit for something a real user could not do (press a missing button,
    write in a group they are not in, pay a message without an invoice...)."""


class EmulatorTimeout(TimeoutError):
    """Waiting for the bot ran out of time; the message says what was awaited and what the
    chat looked like."""


class PaymentDeclined(EmulatorError):
    """The bot answered a pre-checkout query with ok=False."""

    def __init__(self, error_message: str) -> None:
        super().__init__(f"the bot declined the payment: {error_message!r}")
        self.error_message = error_message


@dataclass(frozen=True)
class InlineButton:
    text: str
    callback_data: str | None = None
    url: str | None = None
    copy_text: str | None = None
    pay: bool = False
    # Any other button kind (web_app, login_url, switch_inline_query...) by its field name.
    other: str | None = None

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text}
        if self.callback_data is not None:
            data["callback_data"] = self.callback_data
        if self.url is not None:
            data["url"] = self.url
        if self.copy_text is not None:
            data["copy_text"] = {"text": self.copy_text}
        if self.pay:
            data["pay"] = True
        return data


@dataclass(frozen=True)
class Document:
    file_name: str
    data: bytes = field(repr=False)
    mime_type: str
    file_id: str
    file_unique_id: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Invoice:
    title: str
    description: str
    payload: str
    currency: str
    prices: tuple[tuple[str, int], ...]  # (label, amount in the currency's smallest units)
    start_parameter: str = ""

    @property
    def total_amount(self) -> int:
        return sum(amount for _, amount in self.prices)


@dataclass(frozen=True)
class Payment:
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str
    refunded: bool = False  # True on the "refunded_payment" service message


@dataclass(frozen=True)
class ChatMessage:
    """One version of a message as the users of a chat see it.

    The emulator keeps the newest version of each message; an edit or a deletion replaces it
    with a new ChatMessage (``edited`` counts the edits), so an object a test holds is the
    version it saw, and ``wait_for_edit`` can wait for a newer one.
    """

    chat_id: int
    message_id: int
    from_bot: bool
    sender_id: int
    text: str  # plain text as displayed (the caption for a document)
    entities: tuple[Entity, ...]
    html: str  # text and entities rendered as HTML, for a page to show
    date: int
    received_at: float  # monotonic time the emulator stored this version
    buttons: tuple[tuple[InlineButton, ...], ...] = ()
    edited: int = 0
    edit_date: int | None = None
    deleted: bool = False
    reply_to: int | None = None
    keyboard: tuple[tuple[str, ...], ...] | None = None  # a reply keyboard sent with it
    document: Document | None = None
    invoice: Invoice | None = None
    payment: Payment | None = None
    service: str | None = None  # e.g. "new_chat_members", "successful_payment"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def all_buttons(self) -> list[InlineButton]:
        return [button for row in self.buttons for button in row]

    @property
    def button_texts(self) -> list[list[str]]:
        return [[button.text for button in row] for row in self.buttons]

    def button(self, text: str | None = None, *, data: str | None = None) -> InlineButton:
        """The button whose text is ``text`` or, failing an exact match, the only one whose
        text contains it; or the one with callback data ``data``."""
        buttons = self.all_buttons
        if data is not None:
            for button in buttons:
                if button.callback_data == data:
                    return button
            raise EmulatorError(f"no button with callback_data {data!r}; buttons: {buttons}")
        if text is None:
            raise EmulatorError("name a button by text or data")
        exact = [b for b in buttons if b.text == text]
        if len(exact) == 1:
            return exact[0]
        partial = [b for b in buttons if text in b.text]
        if len(partial) == 1:
            return partial[0]
        texts = [b.text for b in buttons]
        if not partial:
            raise EmulatorError(f"no button with {text!r} in message {self.message_id}: {texts}")
        raise EmulatorError(f"several buttons match {text!r} in message {self.message_id}: {texts}")

    def entity_texts(self, kind: str) -> list[str]:
        """The covered text of each entity of one type, e.g. ``entity_texts("code")``."""
        return [e.text_in(self.text) for e in self.entities if e.type == kind]


@dataclass(frozen=True)
class CallbackAnswer:
    query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int
    answered_at: float


@dataclass(frozen=True)
class PreCheckoutAnswer:
    query_id: str
    ok: bool
    error_message: str | None
    answered_at: float


@dataclass
class ApiCall:
    """One request the bot made; filled in as it is answered."""

    method: str
    at: float  # monotonic time the request arrived
    params: dict[str, Any]
    chat_id: int | None = None
    done_at: float | None = None
    ok: bool | None = None
    result: Any = None
    error_code: int | None = None
    description: str | None = None
    retry_after: int | None = None


@dataclass
class UpdateRecord:
    """One update the emulator produced; ``delivered_at`` is when getUpdates first returned it
    (None while not yet fetched, or when the bot's allowed_updates filtered it out)."""

    update_id: int
    kind: str
    created_at: float
    update: dict[str, Any] = field(repr=False)
    dropped: bool = False
    delivered_at: float | None = None
    confirmed_at: float | None = None
    #: Webhook mode: POSTs of this update so far (a redelivery counts too).
    attempts: int = 0


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST of an update to the bot's webhook (monotonic times); ``status`` is None when
    the connection failed or timed out."""

    update_id: int
    at: float
    done_at: float
    status: int | None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


EventKind = Literal["message", "edit", "delete", "callback_answer", "pre_checkout_answer"]


@dataclass(frozen=True)
class EmulatorEvent:
    """A change in a chat, as pushed to listeners (a web page, a benchmark)."""

    kind: EventKind
    chat_id: int
    at: float
    message: ChatMessage | None = None
    callback_answer: CallbackAnswer | None = None
    pre_checkout_answer: PreCheckoutAnswer | None = None
    user_id: int | None = None  # who the answer was shown to
