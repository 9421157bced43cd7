"""A Telegram Bot API emulator on loopback HTTP and a kit to act as the bot's users.

The bot under test reaches it with ``TelegramAPIServer.from_base(emu.api_url)``; tests,
benchmarks and the demo web chat drive users through :class:`EmulatedUser` and
:class:`EmulatedGroup`, read ``emu.calls`` for timings and subscribe to changes with
``emu.add_listener``. The bot may poll (getUpdates) or set a webhook (setWebhook), which the
emulator POSTs updates to, redelivering those not answered 2xx, as Telegram does.
"""

from bot.emulator.entities import Entity, HtmlParseError, parse_html, render_html, utf16_len
from bot.emulator.flood import FloodLimits
from bot.emulator.kit import EmulatedGroup, EmulatedUser
from bot.emulator.models import (
    ApiCall,
    CallbackAnswer,
    ChatMessage,
    Document,
    EmulatorError,
    EmulatorEvent,
    EmulatorTimeout,
    InlineButton,
    Invoice,
    Payment,
    PaymentDeclined,
    PreCheckoutAnswer,
    UpdateRecord,
    WebhookDelivery,
)
from bot.emulator.server import ApiError, BotAPIEmulator

__all__ = [
    "ApiCall",
    "ApiError",
    "BotAPIEmulator",
    "CallbackAnswer",
    "ChatMessage",
    "Document",
    "EmulatedGroup",
    "EmulatedUser",
    "EmulatorError",
    "EmulatorEvent",
    "EmulatorTimeout",
    "Entity",
    "FloodLimits",
    "HtmlParseError",
    "InlineButton",
    "Invoice",
    "Payment",
    "PaymentDeclined",
    "PreCheckoutAnswer",
    "UpdateRecord",
    "WebhookDelivery",
    "parse_html",
    "render_html",
    "utf16_len",
]
