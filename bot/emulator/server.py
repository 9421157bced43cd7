"""A Telegram Bot API server on loopback, with the state of the chats it serves.

The bot under test talks to it over real HTTP exactly as it talks to api.telegram.org;
tests, benchmarks and the demo web chat act as the users through ``bot.emulator.kit``.
Everything runs on one event loop, so state changes need no locks.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import mimetypes
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.emulator.entities import (
    Entity,
    HtmlParseError,
    entities_from_api,
    finish_text,
    parse_html,
    render_html,
    utf16_len,
)
from bot.emulator.flood import FloodControl, FloodLimits
from bot.emulator.models import (
    ApiCall,
    CallbackAnswer,
    ChatMessage,
    Document,
    EmulatorError,
    EmulatorEvent,
    EmulatorTimeout,
    EventKind,
    InlineButton,
    Invoice,
    Payment,
    PaymentDeclined,
    PreCheckoutAnswer,
    UpdateRecord,
    WebhookDelivery,
)
from bot.emulator.state import (
    ADMIN_STATUSES,
    MEMBER_STATUSES,
    PRESENT_STATUSES,
    ChatState,
    Signal,
    UserState,
    member_api,
)

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession

    from bot.emulator.kit import EmulatedGroup, EmulatedUser

logger = logging.getLogger(__name__)

__all__ = ["ApiError", "BotAPIEmulator"]

Listener = Callable[[EmulatorEvent], object]

# Without allowed_updates Telegram sends every kind except these three.
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_FLOOD_LIMITED = frozenset(
    {"sendMessage", "sendDocument", "sendInvoice", "editMessageText", "editMessageReplyMarkup"}
)
_TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# The test double's one relaxation of setWebhook: plain http to this machine (Telegram itself
# delivers to https:// on ports 443, 80, 88 or 8443 only).
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)
_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_OTHER_BUTTON_KINDS = (
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
)


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code": code, "description": description}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class _Upload:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class _Markup:
    kind: str  # inline, keyboard, remove, force_reply
    inline: tuple[tuple[InlineButton, ...], ...] = ()
    inline_api: tuple[tuple[Mapping[str, Any], ...], ...] = ()
    keyboard: tuple[tuple[str, ...], ...] = ()

    def api(self) -> dict[str, Any] | None:
        """The reply_markup a Message carries: Telegram only echoes inline keyboards."""
        if self.kind != "inline" or not self.inline_api:
            return None
        return {"inline_keyboard": [[dict(button) for button in row] for row in self.inline_api]}


@dataclass
class _PendingQuery:
    id: str
    user_id: int
    chat_id: int
    created_at: float
    ttl: float
    future: asyncio.Future[Any]
    answered: bool = False

    def expired(self, now: float) -> bool:
        return now - self.created_at > self.ttl


@dataclass
class _Webhook:
    """What setWebhook set, and how delivering to it has gone."""

    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


_KEEP_SECRET = object()  # override_webhook_secret: no override


@dataclass
class _Charge:
    id: str
    user_id: int
    chat_id: int
    currency: str
    total_amount: int
    payload: str
    refunded: bool = False


class _Params:
    """Request parameters as aiogram sends them (strings, JSON in strings, uploads), or as a
    JSON body would carry them (already typed)."""

    def __init__(self, values: dict[str, Any], call: ApiCall) -> None:
        self.values = values
        self.call = call

    def has(self, name: str) -> bool:
        value = self.values.get(name)
        return value is not None and value != ""

    def required(self, name: str) -> Any:
        if not self.has(name):
            raise _bad(f'parameter "{name}" is required')
        return self.values[name]

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, _Upload):
            raise _bad(f'parameter "{name}" must be a string')
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise _bad(f'parameter "{name}" must be a number')
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise _bad(f'parameter "{name}" must be a number') from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise _bad(f'parameter "{name}" must be a boolean')

    def json(self, name: str) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _bad(f"can't parse {name} JSON object") from None
        return value


def _now() -> float:
    return time.monotonic()


def _wall() -> int:
    return int(time.time())


def _update_chat(update: Mapping[str, Any]) -> object:
    """What orders an update's delivery: its chat (or its sender when it has no chat); an
    update of neither kind is ordered with nothing."""
    for kind, body in update.items():
        if kind == "update_id" or not isinstance(body, Mapping):
            continue
        chat = body.get("chat")
        if chat is None and isinstance(body.get("message"), Mapping):
            chat = body["message"].get("chat")
        if isinstance(chat, Mapping) and "id" in chat:
            return ("chat", chat["id"])
        sender = body.get("from")
        if isinstance(sender, Mapping) and "id" in sender:
            return ("chat", sender["id"])
    return ("update", update.get("update_id"))


def _valid_button_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return bool(parts.netloc)
    return parts.scheme in ("tg", "ton") and bool(parts.netloc or parts.path)


class BotAPIEmulator:
    """An emulated Bot API server plus the chats of emulated users.

    >>> async with BotAPIEmulator(token="42:TEST") as emu:
    ...     session = emu.aiogram_session()   # or TelegramAPIServer.from_base(emu.api_url)
    """

    def __init__(
        self,
        token: str = "42:TEST",
        *,
        flood: FloodLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_first_name: str = "Test Bot",
        bot_username: str = "test_bot",
        privacy_mode: bool = True,
        callback_query_ttl: float = 15.0,
        pre_checkout_ttl: float = 10.0,
        setup_app: Callable[[web.Application], None] | None = None,
        first_update_id: int = 1,
        webhook_timeout: float = 10.0,
        webhook_retry_after: float = 0.5,
    ) -> None:
        """``webhook_timeout``: how long a webhook POST may take before it counts as failed;
        ``webhook_retry_after``: how soon an update not accepted is POSTed again (Telegram
        waits longer; tests scale it down). ``first_update_id``: where update ids start (a
        bot that keeps its database across emulators needs ids it has not seen)."""
        match = _TOKEN_RE.match(token)
        if match is None:
            raise ValueError("token must look like a Bot API token: <digits>:<secret>")
        self._token = token
        self.bot_id = int(match.group(1))
        self.bot_first_name = bot_first_name
        self.bot_username = bot_username
        self.privacy_mode = privacy_mode
        self.callback_query_ttl = callback_query_ttl
        self.pre_checkout_ttl = pre_checkout_ttl
        self._host = host
        self._port = port
        self._setup_app = setup_app
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self._closing = False

        self._flood_limits = flood or FloodLimits()
        self._flood = FloodControl(self._flood_limits, _now)
        #: Every request the bot made, in arrival order.
        self.calls: list[ApiCall] = []
        #: Requests answered 429 Too Many Requests.
        self.flood_429_count = 0
        #: Every update produced, delivered or not.
        self.updates: list[UpdateRecord] = []

        self._users: dict[int, UserState] = {}
        self._chats: dict[int, ChatState] = {}
        self._pending: list[UpdateRecord] = []
        self._next_update_id = first_update_id
        self.webhook_timeout = webhook_timeout
        self.webhook_retry_after = webhook_retry_after
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_http: aiohttp.ClientSession | None = None
        self._webhook_posts: dict[int, asyncio.Task[None]] = {}  # update_id -> POST in flight
        self._webhook_retry_at: dict[int, float] = {}  # update_id -> not before (monotonic)
        self._webhook_signal = Signal()
        self._webhook_sets = 0
        self._secret_override: object = _KEEP_SECRET
        #: Every webhook POST, in the order they ended.
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._allowed_updates: frozenset[str] | None = None  # None: Telegram's default set
        self._poll_generation = 0
        self._poll_count = 0
        self._poll_signal = Signal()
        self._state_signal = Signal()
        self._callback_queries: dict[str, _PendingQuery] = {}
        self._pre_checkout_queries: dict[str, _PendingQuery] = {}
        self._next_query_id = 1
        self._charges: dict[str, _Charge] = {}
        self._next_charge = 1
        self._files: dict[str, Document] = {}
        self._next_file = 1
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._default_menu_button: dict[str, Any] = {"type": "default"}
        self._listeners: list[Listener] = []
        self._listener_tasks: set[asyncio.Task[Any]] = set()

        handlers: dict[str, Callable[[_Params], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendInvoice": self._send_invoice,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "getChatMember": self._get_chat_member,
            "getChat": self._get_chat,
            "getChatAdministrators": self._get_chat_administrators,
            "refundStarPayment": self._refund_star_payment,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "sendChatAction": self._send_chat_action,
        }
        # Telegram matches method names case-insensitively.
        self._methods = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        # Telegram accepts uploads up to 50 MB; aiohttp's default body limit is 1 MiB.
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        if self._setup_app is not None:
            self._setup_app(app)
        # No access log: request paths carry the bot token. Handler cancellation ends a
        # long poll whose client went away instead of leaving it to time out.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])
        self._closing = False
        logger.info("Bot API emulator listening on %s", self.api_url)

    async def stop(self) -> None:
        self._closing = True
        self._poll_signal.fire()
        await self._stop_webhook()
        for query in [*self._callback_queries.values(), *self._pre_checkout_queries.values()]:
            query.future.cancel()
        for task in list(self._listener_tasks):
            task.cancel()
        if self._listener_tasks:
            await asyncio.gather(*self._listener_tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        logger.info("Bot API emulator stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """Base URL for ``TelegramAPIServer.from_base``."""
        if self._bound_port is None:
            raise RuntimeError("emulator not started")
        return f"http://{self._host}:{self._bound_port}"

    def aiogram_session(self, **kwargs: Any) -> AiohttpSession:
        """An aiogram session that reaches this emulator instead of api.telegram.org."""
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        return AiohttpSession(api=TelegramAPIServer.from_base(self.api_url), **kwargs)

    @asynccontextmanager
    async def polling(
        self, dp: Dispatcher, bot: Bot, *, timeout: float = 5.0, **kwargs: Any
    ) -> AsyncIterator[asyncio.Task[None]]:
        """Run ``dp.start_polling(bot)`` for the body of the block and stop it cleanly after.

        Enters once the bot's first getUpdates has arrived (so its allowed_updates apply to
        what the test does next); start_polling closes the bot session when it ends.
        """
        polls_before = self._poll_count
        task: asyncio.Task[None] = asyncio.create_task(
            dp.start_polling(bot, handle_signals=False, **kwargs)
        )
        # A dispatcher that dies at start-up must end the wait below at once.
        task.add_done_callback(lambda _: self._state_signal.fire())
        try:
            await self._state_signal.wait_until(
                lambda: True if self._poll_count > polls_before or task.done() else None,
                timeout,
                lambda: f"the bot did not call getUpdates within {timeout}s",
            )
            if task.done():
                task.result()
                raise EmulatorError("polling ended before the first getUpdates")
            yield task
        finally:
            if not task.done():
                try:
                    await dp.stop_polling()
                except RuntimeError:
                    task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ public state

    def user(
        self,
        user_id: int,
        first_name: str = "User",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool = False,
    ) -> EmulatedUser:
        """A Telegram user (created once; later calls return the same user). They have not
        started the bot until they write to it."""
        from bot.emulator.kit import EmulatedUser

        if user_id <= 0:
            raise ValueError("user ids are positive")
        if user_id == self.bot_id:
            raise ValueError("that id is the bot's")
        if user_id not in self._users:
            state = UserState(
                id=user_id,
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
                is_premium=is_premium,
            )
            self._users[user_id] = state
            self._chats[user_id] = ChatState(
                id=user_id, type="private", bot_id=self.bot_id, user=state
            )
        return EmulatedUser(self, self._users[user_id])

    def group(
        self, chat_id: int, title: str = "Group", *, username: str | None = None
    ) -> EmulatedGroup:
        """A group (ids from -1000000000000 down are supergroups, like Telegram's)."""
        from bot.emulator.kit import EmulatedGroup

        if chat_id >= 0:
            raise ValueError("group ids are negative")
        if chat_id not in self._chats:
            kind = "supergroup" if chat_id <= -1_000_000_000_000 else "group"
            self._chats[chat_id] = ChatState(
                id=chat_id, type=kind, bot_id=self.bot_id, title=title, username=username
            )
        return EmulatedGroup(self, self._chats[chat_id])

    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[ChatMessage]:
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        if include_deleted:
            return list(chat.messages.values())
        return chat.visible()

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """The command list the bot set for a scope (default scope when None)."""
        return list(self._commands.get((self._scope_key(scope), language_code), []))

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    @property
    def flood_limits(self) -> FloodLimits:
        return self._flood_limits

    @flood_limits.setter
    def flood_limits(self, limits: FloodLimits) -> None:
        self._flood_limits = limits
        self._flood = FloodControl(limits, _now)

    @property
    def pending_update_count(self) -> int:
        return len(self._pending)

    @property
    def allowed_updates(self) -> frozenset[str] | None:
        """What the bot last asked for in getUpdates (None: Telegram's default set)."""
        return self._allowed_updates

    def charge(self, telegram_payment_charge_id: str) -> Payment | None:
        charge = self._charges.get(telegram_payment_charge_id)
        if charge is None:
            return None
        return Payment(
            currency=charge.currency,
            total_amount=charge.total_amount,
            invoice_payload=charge.payload,
            telegram_payment_charge_id=charge.id,
            provider_payment_charge_id=f"{charge.user_id}_{charge.id}",
            refunded=charge.refunded,
        )

    def push_update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a copy of an update again under a new update_id (Telegram may redeliver, so
        handlers must be idempotent); returns the queued update."""
        kinds = [key for key in update if key != "update_id"]
        if len(kinds) != 1:
            raise ValueError("an update has exactly one field besides update_id")
        payload = json.loads(json.dumps(update[kinds[0]]))
        return self._enqueue(kinds[0], payload).update

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(event)`` on every change in any chat. A coroutine it returns runs
        as a task; an exception is logged and does not disturb the emulator."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        with suppress(ValueError):
            self._listeners.remove(callback)

    async def wait_polling(self, timeout: float = 5.0) -> None:
        """Wait until a getUpdates request arrives after this call."""
        before = self._poll_count
        await self._state_signal.wait_until(
            lambda: True if self._poll_count > before else None,
            timeout,
            lambda: f"no getUpdates within {timeout}s",
        )

    async def wait_confirmed(self, update_id: int | None = None, timeout: float = 5.0) -> None:
        """Wait until the bot confirmed ``update_id``, or everything queued so far: by a
        getUpdates offset past it (aiogram confirms an update once it has been dispatched), or
        in webhook mode by answering its POST with 2xx (aiogram answers before handling)."""
        target = self._next_update_id - 1 if update_id is None else update_id

        def confirmed() -> bool | None:
            return True if all(r.update_id > target for r in self._pending) else None

        await self._state_signal.wait_until(
            confirmed, timeout, lambda: f"update {target} not confirmed within {timeout}s"
        )

    # ------------------------------------------------------------------ webhook control

    @property
    def webhook_url(self) -> str | None:
        """The URL the bot set with setWebhook (None: no webhook; the bot polls)."""
        return None if self._webhook is None else self._webhook.url

    async def wait_webhook(self, timeout: float = 5.0) -> str:
        """Wait until a setWebhook request (setting a URL) arrives after this call; the URL."""
        before = self._webhook_sets
        return await self._state_signal.wait_until(
            lambda: self.webhook_url if self._webhook_sets > before else None,
            timeout,
            lambda: f"no setWebhook within {timeout}s",
        )

    def redeliver(self, update_id: int) -> None:
        """POST an update the bot already accepted once more, with the same update_id, as
        Telegram does when it took an answer for a failure (a timeout, a dropped connection)."""
        if self._webhook is None:
            raise EmulatorError("redeliver needs a webhook: the bot is not in webhook mode")
        record = next((r for r in self.updates if r.update_id == update_id), None)
        if record is None or record.dropped:
            raise EmulatorError(f"update {update_id} was never delivered")
        if record in self._pending:
            return  # still pending: it will be POSTed (again) anyway
        record.confirmed_at = None
        self._pending.append(record)
        self._pending.sort(key=lambda r: r.update_id)
        self._webhook_signal.fire()

    def override_webhook_secret(self, secret: str | None) -> None:
        """POST updates with this X-Telegram-Bot-Api-Secret-Token (None: without the header)
        instead of the bot's secret_token, to test that the bot refuses them."""
        self._secret_override = secret

    def restore_webhook_secret(self) -> None:
        self._secret_override = _KEEP_SECRET

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        method_name = request.match_info["method"]
        call = ApiCall(method=method_name, at=_now(), params={})
        self.calls.append(call)
        try:
            if request.match_info["token"] != self._token:
                raise ApiError(401, "Unauthorized")
            spec = self._methods.get(method_name.lower())
            if spec is None:
                logger.warning("Bot called a method the emulator lacks: %s", method_name)
                raise ApiError(404, "Not Found")
            call.method = spec[0]
            values = await self._read_params(request)
            call.params = {
                key: {"file_name": v.filename, "size": len(v.data)} if isinstance(v, _Upload) else v
                for key, v in values.items()
            }
            params = _Params(values, call)
            limited: ChatState | None = None
            if call.method in _FLOOD_LIMITED:
                # An unknown chat or a user who blocked the bot is answered whatever the rate.
                limited = self._chat(params)
                self._check_can_write(limited)
                retry_after = self._flood.check(limited.id, is_group=limited.is_group)
                if retry_after is not None:
                    self.flood_429_count += 1
                    raise ApiError(
                        429, f"Too Many Requests: retry after {retry_after}", retry_after
                    )
            # The limited methods never await, so nothing slips in between check and commit.
            result = await spec[1](params)
            if limited is not None:
                self._flood.commit(limited.id, is_group=limited.is_group)
        except ApiError as error:
            call.ok = False
            call.error_code = error.code
            call.description = error.description
            call.retry_after = error.retry_after
            call.done_at = _now()
            body: dict[str, Any] = {
                "ok": False,
                "error_code": error.code,
                "description": error.description,
            }
            if error.retry_after is not None:
                body["parameters"] = {"retry_after": error.retry_after}
            logger.debug("%s -> %s %s", call.method, error.code, error.description)
            return web.json_response(body, status=error.code)
        except asyncio.CancelledError:
            call.ok = False
            call.description = "client went away"
            call.done_at = _now()
            raise
        except Exception as exc:
            # An emulator bug must show up as a server error in the bot and a traceback here,
            # not as an HTML page aiogram cannot decode.
            logger.exception("Emulator failed on %s", call.method)
            call.ok = False
            call.error_code = 500
            call.description = f"Internal Server Error: {type(exc).__name__}"
            call.done_at = _now()
            body = {"ok": False, "error_code": 500, "description": call.description}
            return web.json_response(body, status=500)
        call.ok = True
        call.result = result
        call.done_at = _now()
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        values: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.body_exists:
            return values
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON request body") from None
            if isinstance(body, dict):
                values.update(body)
            return values
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                values[key] = _Upload(value.filename, value.content_type, value.file.read())
            elif isinstance(value, bytes | bytearray):
                values[key] = bytes(value).decode("utf-8", errors="replace")
            else:
                values[key] = value
        return values

    # ------------------------------------------------------------------ helpers

    def _chat(self, params: _Params, name: str = "chat_id") -> ChatState:
        raw = params.values.get(name)
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat: ChatState | None = None
        if isinstance(raw, str) and raw.strip().startswith("@"):
            wanted = raw.strip()[1:].lower()
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.is_group and c.username and c.username.lower() == wanted
                ),
                None,
            )
        else:
            try:
                chat_id = int(str(raw).strip()) if not isinstance(raw, int) else raw
            except ValueError:
                raise _bad("chat not found") from None
            chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        params.call.chat_id = chat.id
        return chat

    @staticmethod
    def _check_member(chat: ChatState) -> None:
        if not chat.is_group:
            return
        if chat.bot_status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        if chat.bot_status not in PRESENT_STATUSES:
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat.type} chat")

    def _check_can_write(self, chat: ChatState) -> None:
        if chat.user is not None:
            if chat.user.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.user.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        self._check_member(chat)
        if chat.bot_status == "restricted":
            raise _bad("not enough rights to send text messages to the chat")

    def _formatted(
        self, params: _Params, text_key: str, entities_key: str, *, caption: bool
    ) -> tuple[str, list[Entity]]:
        source = params.text(text_key) or ""
        parse_mode = (params.text("parse_mode") or "").strip()
        entities: list[Entity] = []
        if params.has(entities_key):
            # Telegram takes explicit entities over parse_mode.
            try:
                entities = entities_from_api(params.json(entities_key))
            except ValueError as error:
                raise _bad(f"can't parse entities: {error}") from None
            text = source
        elif parse_mode.lower() == "html":
            try:
                text, entities = parse_html(source)
            except HtmlParseError as error:
                raise _bad(f"can't parse entities: {error}") from None
        elif not parse_mode:
            text = source
        elif parse_mode.lower() in ("markdown", "markdownv2"):
            raise _bad(f"parse_mode {parse_mode} is not emulated; the emulator speaks HTML")
        else:
            raise _bad("unsupported parse_mode")
        text, entities = finish_text(text, entities)
        if caption:
            if utf16_len(text) > 1024:
                raise _bad("message caption is too long")
        else:
            if not text:
                raise _bad("message text is empty")
            if utf16_len(text) > 4096:
                raise _bad("message is too long")
        return text, entities

    def _markup(self, params: _Params, *, inline_only: bool) -> _Markup | None:
        if not params.has("reply_markup"):
            return None
        data = params.json("reply_markup")
        if not isinstance(data, Mapping):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in data:
            return self._inline_keyboard(data["inline_keyboard"])
        if inline_only:
            raise _bad("inline keyboard expected")
        if "keyboard" in data:
            rows = data["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad("can't parse reply keyboard markup JSON object")
            keyboard = tuple(
                tuple(
                    b if isinstance(b, str) else str(b.get("text", ""))
                    for b in row
                    if isinstance(b, str | Mapping)
                )
                for row in rows
                if row
            )
            return _Markup("keyboard", keyboard=keyboard)
        if data.get("remove_keyboard"):
            return _Markup("remove")
        if data.get("force_reply"):
            return _Markup("force_reply")
        raise _bad("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _inline_keyboard(rows: object) -> _Markup:
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad("can't parse inline keyboard markup JSON object")
        parsed: list[tuple[InlineButton, ...]] = []
        api_rows: list[tuple[Mapping[str, Any], ...]] = []
        count = 0
        for row in rows:
            buttons: list[InlineButton] = []
            api_row: list[Mapping[str, Any]] = []
            for item in row:
                if not isinstance(item, Mapping):
                    raise _bad("can't parse inline keyboard button: object expected")
                button, api_button = BotAPIEmulator._inline_button(item)
                buttons.append(button)
                api_row.append(api_button)
                count += 1
            if buttons:
                parsed.append(tuple(buttons))
                api_rows.append(tuple(api_row))
        if count > 100:
            raise _bad("REPLY_MARKUP_TOO_LONG")
        return _Markup("inline", inline=tuple(parsed), inline_api=tuple(api_rows))

    @staticmethod
    def _inline_button(item: Mapping[str, Any]) -> tuple[InlineButton, dict[str, Any]]:
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad("can't parse inline keyboard button: Text must be non-empty")
        api: dict[str, Any] = {"text": text}
        if "callback_data" in item:
            data = item["callback_data"]
            if not isinstance(data, str):
                raise _bad(
                    'can\'t parse inline keyboard button: Field "callback_data" must be '
                    "of type String"
                )
            if not 1 <= len(data.encode("utf-8")) <= 64:
                raise _bad("BUTTON_DATA_INVALID")
            api["callback_data"] = data
            return InlineButton(text=text, callback_data=data), api
        if "url" in item:
            url = item["url"]
            if not isinstance(url, str) or not _valid_button_url(url):
                raise _bad("BUTTON_URL_INVALID")
            api["url"] = url
            return InlineButton(text=text, url=url), api
        if "copy_text" in item:
            copy = item["copy_text"]
            copied = copy.get("text") if isinstance(copy, Mapping) else None
            if not isinstance(copied, str) or not 1 <= len(copied) <= 256:
                raise _bad(
                    "can't parse inline keyboard button: copy_text must have a text "
                    "of 1-256 characters"
                )
            api["copy_text"] = {"text": copied}
            return InlineButton(text=text, copy_text=copied), api
        if item.get("pay"):
            api["pay"] = True
            return InlineButton(text=text, pay=True), api
        for kind in _OTHER_BUTTON_KINDS:
            if kind in item:
                api[kind] = item[kind]
                return InlineButton(text=text, other=kind), api
        raise _bad(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )

    def _reply_target(self, params: _Params, chat: ChatState) -> ChatMessage | None:
        reply = params.json("reply_parameters")
        if reply is not None and not isinstance(reply, Mapping):
            raise _bad("can't parse reply parameters JSON object")
        if reply is not None:
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply"))
            other_chat = reply.get("chat_id")
            if other_chat is not None and str(other_chat) != str(chat.id):
                # Replies across chats are not emulated; treat the target as missing.
                message_id = None if allow else -1
        else:
            message_id = params.integer("reply_to_message_id")
            allow = params.flag("allow_sending_without_reply")
        if message_id is None:
            return None
        target = chat.messages.get(int(message_id))
        if target is None or target.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return target

    def _bot_message(
        self,
        chat: ChatState,
        *,
        body: dict[str, Any],
        text: str,
        entities: list[Entity],
        markup: _Markup | None,
        reply_to: ChatMessage | None,
        document: Document | None = None,
        invoice: Invoice | None = None,
        protect: bool = False,
    ) -> ChatMessage:
        message_id = chat.take_message_id()
        raw: dict[str, Any] = {
            "message_id": message_id,
            "from": self.bot_user,
            "chat": chat.api(),
            "date": _wall(),
            **body,
        }
        if reply_to is not None:
            raw["reply_to_message"] = self._quoted(reply_to)
        if protect:
            raw["has_protected_content"] = True
        keyboard: tuple[tuple[str, ...], ...] | None = None
        if markup is not None:
            if markup.api() is not None:
                raw["reply_markup"] = markup.api()
            if markup.kind == "keyboard":
                keyboard = markup.keyboard
                chat.reply_keyboard = markup.keyboard
            elif markup.kind == "remove":
                chat.reply_keyboard = None
        message = ChatMessage(
            chat_id=chat.id,
            message_id=message_id,
            from_bot=True,
            sender_id=self.bot_id,
            text=text,
            entities=tuple(entities),
            html=render_html(text, entities),
            date=raw["date"],
            received_at=_now(),
            buttons=markup.inline if markup is not None and markup.kind == "inline" else (),
            reply_to=reply_to.message_id if reply_to is not None else None,
            keyboard=keyboard,
            document=document,
            invoice=invoice,
            raw=raw,
        )
        self._store(chat, message, "message")
        return message

    @staticmethod
    def _quoted(message: ChatMessage) -> dict[str, Any]:
        quoted = dict(message.raw)
        quoted.pop("reply_to_message", None)
        return quoted

    @staticmethod
    def _text_body(text: str, entities: list[Entity], key: str = "text") -> dict[str, Any]:
        body: dict[str, Any] = {key: text}
        if entities:
            entities_key = "entities" if key == "text" else "caption_entities"
            body[entities_key] = [e.to_api() for e in entities]
        return body

    def _store(self, chat: ChatState, message: ChatMessage, kind: EventKind) -> None:
        chat.messages[message.message_id] = message
        self._emit(EmulatorEvent(kind=kind, chat_id=chat.id, at=_now(), message=message))
        chat.signal.fire()

    def _emit(self, event: EmulatorEvent) -> None:
        for listener in list(self._listeners):
            try:
                outcome = listener(event)
                if inspect.isawaitable(outcome):
                    task = asyncio.ensure_future(outcome)
                    self._listener_tasks.add(task)
                    task.add_done_callback(self._listener_done)
            except Exception:
                logger.exception("An emulator listener failed on a %s event", event.kind)

    def _listener_done(self, task: asyncio.Task[Any]) -> None:
        self._listener_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("An emulator listener task failed", exc_info=task.exception())

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> UpdateRecord:
        update_id = self._next_update_id
        self._next_update_id += 1
        record = UpdateRecord(
            update_id=update_id,
            kind=kind,
            created_at=_now(),
            update={"update_id": update_id, kind: payload},
        )
        self.updates.append(record)
        allowed = self._allowed_updates
        wanted = kind not in _NOT_BY_DEFAULT if allowed is None else kind in allowed
        if not wanted:
            # Telegram filters at creation: the bot never sees an update it did not ask for.
            record.dropped = True
            logger.debug("Update %s (%s) dropped by allowed_updates", update_id, kind)
            return record
        self._pending.append(record)
        self._poll_signal.fire()
        self._webhook_signal.fire()
        return record

    def _editable(self, params: _Params, *, action: str) -> tuple[ChatState, ChatMessage]:
        if params.has("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._chat(params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise _bad(f"message to {action} not found")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad(f"message to {action} not found")
        return chat, message

    def _edited(
        self,
        chat: ChatState,
        message: ChatMessage,
        *,
        text: str,
        entities: list[Entity],
        markup: _Markup | None,
    ) -> ChatMessage:
        raw = dict(message.raw)
        raw.pop("reply_markup", None)
        raw.pop("entities", None)
        raw.update(self._text_body(text, entities))
        if markup is not None and markup.api() is not None:
            raw["reply_markup"] = markup.api()
        raw["edit_date"] = _wall()
        updated = replace(
            message,
            text=text,
            entities=tuple(entities),
            html=render_html(text, entities),
            buttons=markup.inline if markup is not None else (),
            edited=message.edited + 1,
            edit_date=raw["edit_date"],
            received_at=_now(),
            raw=raw,
        )
        self._store(chat, updated, "edit")
        return updated

    @staticmethod
    def _scope_key(scope: object) -> str:
        if scope is None:
            scope = {"type": "default"}
        if not isinstance(scope, Mapping) or not isinstance(scope.get("type"), str):
            raise _bad("can't parse BotCommandScope JSON object")
        normalized = {k: str(v) if k in ("chat_id", "user_id") else v for k, v in scope.items()}
        return json.dumps(normalized, sort_keys=True)

    # ------------------------------------------------------------------ methods

    async def _get_me(self, params: _Params) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: _Params) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise ApiError(409, _WEBHOOK_ACTIVE)
        self._poll_count += 1
        self._poll_generation += 1
        generation = self._poll_generation
        self._poll_signal.fire()  # an older long poll learns it has been replaced
        offset = params.integer("offset")
        limit = min(100, max(1, params.integer("limit", 100) or 100))
        timeout = max(0, params.integer("timeout", 0) or 0)
        if params.has("allowed_updates"):
            allowed = params.json("allowed_updates")
            if not isinstance(allowed, list):
                raise _bad("can't parse allowed_updates JSON array")
            self._allowed_updates = frozenset(str(kind) for kind in allowed) or None
        if offset is not None:
            self._confirm(offset)
        self._state_signal.fire()

        deadline = _now() + timeout
        while True:
            if self._webhook is not None:
                raise ApiError(409, _WEBHOOK_ACTIVE)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            remaining = deadline - _now()
            if self._pending or self._closing or remaining <= 0:
                break
            await self._poll_signal.wait(remaining)
        batch = self._pending[:limit]
        now = _now()
        for record in batch:
            if record.delivered_at is None:
                record.delivered_at = now
        return [record.update for record in batch]

    def _confirm(self, offset: int) -> None:
        now = _now()
        if offset < 0:
            # A negative offset keeps the last -offset updates and forgets the rest.
            forgotten = self._pending[:offset] if -offset < len(self._pending) else []
            kept = self._pending[len(forgotten) :]
        else:
            forgotten = [r for r in self._pending if r.update_id < offset]
            kept = [r for r in self._pending if r.update_id >= offset]
        for record in forgotten:
            record.confirmed_at = now
        self._pending = kept

    async def _set_webhook(self, params: _Params) -> bool:
        url = params.text("url", "") or ""
        if not url:
            # An empty URL removes the webhook, as deleteWebhook does.
            await self._delete_webhook(params)
            return True
        parts = urlsplit(url)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        if not parts.hostname or not secure:
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.match(secret):
            raise _bad("secret token contains unallowed characters")
        max_connections = params.integer("max_connections", 40) or 40
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        if params.has("allowed_updates"):
            allowed = params.json("allowed_updates")
            if not isinstance(allowed, list):
                raise _bad("can't parse allowed_updates JSON array")
            # Telegram keeps the previous list when none is given, as getUpdates does.
            self._allowed_updates = frozenset(str(kind) for kind in allowed) or None
        if params.flag("drop_pending_updates"):
            self._confirm(self._next_update_id)
        await self._stop_webhook()
        hook = _Webhook(url=url, secret_token=secret, max_connections=max_connections)
        self._webhook = hook
        self._webhook_sets += 1
        self._webhook_http = aiohttp.ClientSession()
        self._webhook_task = asyncio.create_task(self._deliver(hook), name="emulator-webhook")
        self._poll_signal.fire()  # a long poll still waiting ends with 409
        self._state_signal.fire()
        return True

    async def _delete_webhook(self, params: _Params) -> bool:
        await self._stop_webhook()
        if params.flag("drop_pending_updates"):
            self._confirm(self._next_update_id)
        self._state_signal.fire()
        return True

    async def _get_webhook_info(self, params: _Params) -> dict[str, Any]:
        hook = self._webhook
        info: dict[str, Any] = {
            "url": "" if hook is None else hook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if hook is None:
            return info
        info["max_connections"] = hook.max_connections
        info["ip_address"] = "127.0.0.1"
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        return info

    async def _stop_webhook(self) -> None:
        self._webhook = None
        task, self._webhook_task = self._webhook_task, None
        posts = list(self._webhook_posts.values())
        for pending in [task, *posts]:
            if pending is not None:
                pending.cancel()
        await asyncio.gather(*(t for t in [task, *posts] if t is not None), return_exceptions=True)
        self._webhook_posts.clear()
        self._webhook_retry_at.clear()
        http, self._webhook_http = self._webhook_http, None
        if http is not None:
            await http.close()

    async def _deliver(self, hook: _Webhook) -> None:
        """POST pending updates: one at a time per chat (in update order), up to
        max_connections at once; an update not answered 2xx waits webhook_retry_after."""
        while self._webhook is hook and not self._closing:
            now = _now()
            wake_at: float | None = None
            chats: set[object] = set()
            for record in list(self._pending):
                if len(self._webhook_posts) >= hook.max_connections:
                    break
                chat = _update_chat(record.update)
                if chat in chats:
                    continue  # an earlier update of this chat goes first
                chats.add(chat)
                if record.update_id in self._webhook_posts:
                    continue
                due = self._webhook_retry_at.get(record.update_id, now)
                if due > now:
                    wake_at = due if wake_at is None else min(wake_at, due)
                    continue
                self._webhook_posts[record.update_id] = asyncio.create_task(
                    self._post(hook, record), name=f"emulator-webhook-{record.update_id}"
                )
            await self._webhook_signal.wait(1.0 if wake_at is None else max(0.0, wake_at - now))

    async def _post(self, hook: _Webhook, record: UpdateRecord) -> None:
        http = self._webhook_http
        assert http is not None
        secret = self._secret_override
        if secret is _KEEP_SECRET:
            secret = hook.secret_token
        headers = {} if secret is None else {_SECRET_HEADER: str(secret)}
        started = _now()
        record.attempts += 1
        if record.delivered_at is None:
            record.delivered_at = started
        status: int | None = None
        error: str | None = None
        try:
            async with http.post(
                hook.url,
                json=record.update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                status = response.status
                await response.read()
                if not 200 <= status < 300:
                    error = f"Wrong response from the webhook: {status} {response.reason}"
        except TimeoutError:
            error = "Read timeout expired"
        except aiohttp.ClientConnectionError:
            error = "Connection refused"
        finally:
            self._webhook_posts.pop(record.update_id, None)
        self.webhook_deliveries.append(
            WebhookDelivery(record.update_id, started, _now(), status, error)
        )
        if error is None:
            self._webhook_retry_at.pop(record.update_id, None)
            record.confirmed_at = _now()
            if record in self._pending:
                self._pending.remove(record)
        else:
            logger.debug("webhook delivery of update %s failed: %s", record.update_id, error)
            hook.last_error_date = _wall()
            hook.last_error_message = error
            self._webhook_retry_at[record.update_id] = _now() + self.webhook_retry_after
        self._webhook_signal.fire()
        self._state_signal.fire()

    async def _set_my_commands(self, params: _Params) -> bool:
        commands = params.json("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON array")
        if len(commands) > 100:
            raise _bad("too many commands")
        cleaned: list[dict[str, str]] = []
        for item in commands:
            if not isinstance(item, Mapping):
                raise _bad("can't parse BotCommand JSON object")
            command = item.get("command")
            description = item.get("description")
            if not isinstance(command, str) or not _COMMAND_NAME_RE.match(command.lower()):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command.lower(), "description": description})
        key = (self._scope_key(params.json("scope")), params.text("language_code", "") or "")
        self._commands[key] = cleaned
        return True

    async def _get_my_commands(self, params: _Params) -> list[dict[str, str]]:
        key = (self._scope_key(params.json("scope")), params.text("language_code", "") or "")
        return list(self._commands.get(key, []))

    async def _delete_my_commands(self, params: _Params) -> bool:
        key = (self._scope_key(params.json("scope")), params.text("language_code", "") or "")
        self._commands.pop(key, None)
        return True

    async def _send_message(self, params: _Params) -> dict[str, Any]:
        chat = self._chat(params)
        self._check_can_write(chat)
        text, entities = self._formatted(params, "text", "entities", caption=False)
        markup = self._markup(params, inline_only=False)
        if params.has("link_preview_options") and not isinstance(
            params.json("link_preview_options"), Mapping
        ):
            raise _bad("can't parse link preview options JSON object")
        reply_to = self._reply_target(params, chat)
        message = self._bot_message(
            chat,
            body=self._text_body(text, entities),
            text=text,
            entities=entities,
            markup=markup,
            reply_to=reply_to,
            protect=params.flag("protect_content"),
        )
        return dict(message.raw)

    async def _edit_message_text(self, params: _Params) -> dict[str, Any]:
        chat, message = self._editable(params, action="edit")
        self._check_can_write(chat)
        if not message.from_bot:
            raise _bad("message can't be edited")
        if message.document is not None or message.invoice is not None or message.service:
            raise _bad("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", caption=False)
        markup = self._markup(params, inline_only=True)
        new_markup = markup.api() if markup is not None else None
        if (
            text == message.text
            and tuple(entities) == message.entities
            and new_markup == message.raw.get("reply_markup")
        ):
            raise _bad(_NOT_MODIFIED[len("Bad Request: ") :])
        return dict(self._edited(chat, message, text=text, entities=entities, markup=markup).raw)

    async def _edit_message_reply_markup(self, params: _Params) -> dict[str, Any]:
        chat, message = self._editable(params, action="edit")
        self._check_can_write(chat)
        if not message.from_bot:
            raise _bad("message can't be edited")
        markup = self._markup(params, inline_only=True)
        new_markup = markup.api() if markup is not None else None
        if new_markup == message.raw.get("reply_markup"):
            raise _bad(_NOT_MODIFIED[len("Bad Request: ") :])
        raw = dict(message.raw)
        raw.pop("reply_markup", None)
        if new_markup is not None:
            raw["reply_markup"] = new_markup
        raw["edit_date"] = _wall()
        updated = replace(
            message,
            buttons=markup.inline if markup is not None else (),
            edited=message.edited + 1,
            edit_date=raw["edit_date"],
            received_at=_now(),
            raw=raw,
        )
        self._store(chat, updated, "edit")
        return dict(raw)

    async def _delete_message(self, params: _Params) -> bool:
        chat, message = self._editable(params, action="delete")
        self._check_member(chat)
        if chat.is_group and not message.from_bot and chat.bot_status not in ADMIN_STATUSES:
            raise _bad("message can't be deleted")
        self._store(chat, replace(message, deleted=True, received_at=_now()), "delete")
        return True

    async def _answer_callback_query(self, params: _Params) -> bool:
        query_id = params.text("callback_query_id") or ""
        query = self._callback_queries.get(query_id)
        now = _now()
        if query is None or query.answered or query.expired(now):
            raise _bad(_QUERY_TOO_OLD[len("Bad Request: ") :])
        params.call.chat_id = query.chat_id
        text = params.text("text")
        if text is not None and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        answer = CallbackAnswer(
            query_id=query_id,
            text=text or None,
            show_alert=params.flag("show_alert"),
            url=params.text("url"),
            cache_time=params.integer("cache_time", 0) or 0,
            answered_at=now,
        )
        if not query.future.done():
            query.future.set_result(answer)
        self._emit(
            EmulatorEvent(
                kind="callback_answer",
                chat_id=query.chat_id,
                at=now,
                callback_answer=answer,
                user_id=query.user_id,
            )
        )
        return True

    async def _send_document(self, params: _Params) -> dict[str, Any]:
        chat = self._chat(params)
        self._check_can_write(chat)
        document = self._document(params)
        caption, entities = self._formatted(params, "caption", "caption_entities", caption=True)
        markup = self._markup(params, inline_only=False)
        reply_to = self._reply_target(params, chat)
        body: dict[str, Any] = {
            "document": {
                "file_id": document.file_id,
                "file_unique_id": document.file_unique_id,
                "file_name": document.file_name,
                "mime_type": document.mime_type,
                "file_size": document.size,
            }
        }
        if caption:
            body.update(self._text_body(caption, entities, "caption"))
        message = self._bot_message(
            chat,
            body=body,
            text=caption,
            entities=entities,
            markup=markup,
            reply_to=reply_to,
            document=document,
            protect=params.flag("protect_content"),
        )
        return dict(message.raw)

    def _document(self, params: _Params) -> Document:
        value = params.values.get("document")
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.values.get(value[len("attach://") :])
            if value is None:
                raise _bad("wrong file identifier/HTTP URL specified")
        if isinstance(value, _Upload):
            if not value.data:
                raise _bad("file must be non-empty")
            name = value.filename or "document"
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            number = self._next_file
            self._next_file += 1
            document = Document(
                file_name=name,
                data=value.data,
                mime_type=mime,
                file_id=f"BQACAgIAAxkBAAIEmu{number:08d}",
                file_unique_id=f"AgADEmu{number:06d}",
            )
            self._files[document.file_id] = document
            return document
        if isinstance(value, str) and value:
            if value.lower().startswith(("http://", "https://")):
                # The emulator never reaches the network.
                raise _bad("failed to get HTTP URL content")
            known = self._files.get(value)
            if known is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            return known
        raise _bad('parameter "document" is required')

    async def _send_invoice(self, params: _Params) -> dict[str, Any]:
        chat = self._chat(params)
        self._check_can_write(chat)
        title = str(params.required("title"))
        description = str(params.required("description"))
        payload = str(params.required("payload"))
        currency = str(params.required("currency")).upper()
        prices_raw = params.json("prices")
        if not isinstance(prices_raw, list) or not prices_raw:
            raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
        prices: list[tuple[str, int]] = []
        for item in prices_raw:
            if (
                not isinstance(item, Mapping)
                or not isinstance(item.get("label"), str)
                or not isinstance(item.get("amount"), int)
            ):
                raise _bad("can't parse prices JSON object")
            prices.append((item["label"], item["amount"]))
        if not 1 <= len(payload.encode("utf-8")) <= 128:
            raise _bad("PAYLOAD_INVALID")
        invoice = Invoice(
            title=title,
            description=description,
            payload=payload,
            currency=currency,
            prices=tuple(prices),
            start_parameter=params.text("start_parameter", "") or "",
        )
        if invoice.total_amount <= 0:
            raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
        if currency == "XTR" and len(prices) != 1:
            raise _bad("STARS_INVOICE_INVALID")
        markup = self._markup(params, inline_only=True)
        if markup is None or not markup.inline:
            # Without a keyboard Telegram shows its own Pay button.
            label = (
                f"Pay ⭐️{invoice.total_amount}"
                if currency == "XTR"
                else f"Pay {invoice.total_amount / 100:.2f} {currency}"
            )
            markup = _Markup(
                "inline",
                inline=((InlineButton(text=label, pay=True),),),
                inline_api=(({"text": label, "pay": True},),),
            )
        body = {
            "invoice": {
                "title": title,
                "description": description,
                "start_parameter": invoice.start_parameter,
                "currency": currency,
                "total_amount": invoice.total_amount,
            }
        }
        message = self._bot_message(
            chat,
            body=body,
            text="",
            entities=[],
            markup=markup,
            reply_to=self._reply_target(params, chat),
            invoice=invoice,
            protect=params.flag("protect_content"),
        )
        return dict(message.raw)

    async def _answer_pre_checkout_query(self, params: _Params) -> bool:
        query_id = params.text("pre_checkout_query_id") or ""
        query = self._pre_checkout_queries.get(query_id)
        now = _now()
        if query is None or query.answered or query.expired(now):
            raise _bad(_QUERY_TOO_OLD[len("Bad Request: ") :])
        params.call.chat_id = query.chat_id
        ok = params.flag("ok")
        error_message = params.text("error_message")
        if not ok and not error_message:
            raise _bad("ERROR_MESSAGE_EMPTY")
        query.answered = True
        answer = PreCheckoutAnswer(
            query_id=query_id, ok=ok, error_message=error_message, answered_at=now
        )
        if not query.future.done():
            query.future.set_result(answer)
        self._emit(
            EmulatorEvent(
                kind="pre_checkout_answer",
                chat_id=query.chat_id,
                at=now,
                pre_checkout_answer=answer,
                user_id=query.user_id,
            )
        )
        return True

    async def _get_chat_member(self, params: _Params) -> dict[str, Any]:
        chat = self._chat(params)
        self._check_member(chat)
        user_id = params.integer("user_id")
        if user_id is None:
            raise _bad('parameter "user_id" is required')
        if user_id == self.bot_id:
            return member_api(self.bot_user, chat.bot_status if chat.is_group else "member")
        user = self._users.get(user_id)
        if user is None:
            raise _bad("user not found")
        if chat.is_group:
            status = chat.members.get(user_id, "left")
        else:
            status = "member" if user_id == chat.id else "left"
        return member_api(user.api(), status)

    async def _get_chat(self, params: _Params) -> dict[str, Any]:
        chat = self._chat(params)
        if chat.user is not None and not chat.user.started:
            raise _bad("chat not found")
        self._check_member(chat)
        return {
            **chat.api(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_chat_administrators(self, params: _Params) -> list[dict[str, Any]]:
        chat = self._chat(params)
        if not chat.is_group:
            raise _bad("there are no administrators in the private chat")
        self._check_member(chat)
        admins = [
            member_api(self._users[user_id].api(), status)
            for user_id, status in chat.members.items()
            if status in ADMIN_STATUSES
        ]
        if chat.bot_status in ADMIN_STATUSES:
            admins.append(member_api(self.bot_user, chat.bot_status))
        return admins

    async def _refund_star_payment(self, params: _Params) -> bool:
        user_id = params.integer("user_id")
        charge_id = params.text("telegram_payment_charge_id") or ""
        charge = self._charges.get(charge_id)
        if charge is None or charge.user_id != user_id:
            raise _bad("CHARGE_NOT_FOUND")
        params.call.chat_id = charge.chat_id
        if charge.refunded:
            raise _bad("CHARGE_ALREADY_REFUNDED")
        charge.refunded = True
        user = self._users[charge.user_id]
        chat = self._chats[charge.chat_id]
        refunded: dict[str, Any] = {
            "currency": charge.currency,
            "total_amount": charge.total_amount,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.id,
            "provider_payment_charge_id": f"{charge.user_id}_{charge.id}",
        }
        payment = Payment(
            currency=charge.currency,
            total_amount=charge.total_amount,
            invoice_payload=charge.payload,
            telegram_payment_charge_id=charge.id,
            provider_payment_charge_id=refunded["provider_payment_charge_id"],
            refunded=True,
        )
        self._service_message(
            chat, user, {"refunded_payment": refunded}, "refunded_payment", payment=payment
        )
        return True

    async def _set_chat_menu_button(self, params: _Params) -> bool:
        button = params.json("menu_button") or {"type": "default"}
        if not isinstance(button, Mapping) or button.get("type") not in (
            "default",
            "commands",
            "web_app",
        ):
            raise _bad("can't parse menu button JSON object")
        if params.has("chat_id"):
            chat = self._chat(params)
            if chat.is_group:
                raise _bad("menu button can be set only in private chats")
            chat.menu_button = dict(button)
        else:
            self._default_menu_button = dict(button)
        return True

    async def _get_chat_menu_button(self, params: _Params) -> dict[str, Any]:
        if params.has("chat_id"):
            chat = self._chat(params)
            if chat.menu_button is not None:
                return dict(chat.menu_button)
        return dict(self._default_menu_button)

    async def _send_chat_action(self, params: _Params) -> bool:
        chat = self._chat(params)
        self._check_can_write(chat)
        params.required("action")
        return True

    # ------------------------------------------------------------------ the users' side
    # Called by bot.emulator.kit; they raise EmulatorError for what no real user could do.

    def _service_message(
        self,
        chat: ChatState,
        user: UserState,
        body: dict[str, Any],
        service: str,
        *,
        payment: Payment | None = None,
    ) -> tuple[ChatMessage, UpdateRecord | None]:
        raw: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": user.api(),
            "chat": chat.api(),
            "date": _wall(),
            **body,
        }
        message = ChatMessage(
            chat_id=chat.id,
            message_id=raw["message_id"],
            from_bot=False,
            sender_id=user.id,
            text="",
            entities=(),
            html="",
            date=raw["date"],
            received_at=_now(),
            payment=payment,
            service=service,
            raw=raw,
        )
        self._store(chat, message, "message")
        record = None
        if not chat.is_group or chat.bot_status in PRESENT_STATUSES:
            record = self._enqueue("message", raw)
        return message, record

    def _visible_chat(self, user: UserState, chat_id: int) -> ChatState:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise EmulatorError(f"no chat {chat_id}")
        if chat.is_group:
            if chat.members.get(user.id) not in PRESENT_STATUSES:
                raise EmulatorError(f"user {user.id} is not a member of chat {chat_id}")
        elif chat.id != user.id:
            raise EmulatorError(f"chat {chat_id} is another user's private chat")
        elif user.blocked:
            raise EmulatorError(f"user {user.id} blocked the bot; unblock() first")
        return chat

    def _current(self, user: UserState, message: ChatMessage) -> tuple[ChatState, ChatMessage]:
        chat = self._visible_chat(user, message.chat_id)
        current = chat.messages.get(message.message_id)
        if current is None:
            raise EmulatorError(f"no message {message.message_id} in chat {chat.id}")
        if current.deleted:
            raise EmulatorError(f"message {message.message_id} was deleted")
        return chat, current

    def _user_send(
        self, user: UserState, chat_id: int, text: str, reply_to: ChatMessage | None
    ) -> ChatMessage:
        chat = self._visible_chat(user, chat_id)
        if chat.members.get(user.id) == "restricted":
            raise EmulatorError(f"user {user.id} may not write in chat {chat.id}")
        text, entities = finish_text(text, [])
        if not text:
            raise EmulatorError("a message needs some text")
        raw: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": user.api(),
            "chat": chat.api(),
            "date": _wall(),
            **self._text_body(text, entities),
        }
        target: ChatMessage | None = None
        if reply_to is not None:
            target = chat.messages.get(reply_to.message_id)
            if target is None or target.deleted or reply_to.chat_id != chat.id:
                raise EmulatorError("can only reply to a visible message in the same chat")
            raw["reply_to_message"] = self._quoted(target)
        if not chat.is_group:
            user.started = True
        message = ChatMessage(
            chat_id=chat.id,
            message_id=raw["message_id"],
            from_bot=False,
            sender_id=user.id,
            text=text,
            entities=tuple(entities),
            html=render_html(text, entities),
            date=raw["date"],
            received_at=_now(),
            reply_to=target.message_id if target is not None else None,
            raw=raw,
        )
        self._store(chat, message, "message")
        if self._bot_sees(chat, message, target):
            self._enqueue("message", raw)
        return message

    def _bot_sees(self, chat: ChatState, message: ChatMessage, target: ChatMessage | None) -> bool:
        """Privacy mode: in a group a bot that is not an admin gets only commands (its own or
        unaddressed ones), replies to its messages and service messages."""
        if not chat.is_group:
            return True
        if chat.bot_status not in PRESENT_STATUSES:
            return False
        if not self.privacy_mode or chat.bot_status in ADMIN_STATUSES:
            return True
        if target is not None and target.from_bot:
            return True
        first = message.entities[0] if message.entities else None
        if first is None or first.type != "bot_command" or first.offset != 0:
            return False
        command = first.text_in(message.text)
        _, _, addressee = command.partition("@")
        return not addressee or addressee.lower() == self.bot_username.lower()

    async def _user_press(
        self,
        user: UserState,
        message: ChatMessage,
        text: str | None,
        data: str | None,
        timeout: float,
    ) -> CallbackAnswer:
        chat, current = self._current(user, message)
        if data is None:
            button = current.button(text)
            if button.callback_data is None:
                kinds: list[tuple[str, object]] = [
                    ("url", button.url),
                    ("copy_text", button.copy_text),
                    ("pay", button.pay),
                    (button.other or "unknown", True),
                ]
                kind = next(name for name, present in kinds if present)
                raise EmulatorError(
                    f"button {button.text!r} is a {kind} button, not a callback button"
                )
            data = button.callback_data
        query_id = str(4_000_000_000_000_000 + self._next_query_id)
        self._next_query_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._callback_queries[query_id] = _PendingQuery(
            query_id, user.id, chat.id, _now(), self.callback_query_ttl, future
        )
        payload = {
            "id": query_id,
            "from": user.api(),
            "message": dict(current.raw),
            "chat_instance": chat.instance,
            "data": data,
        }
        record = self._enqueue("callback_query", payload)
        if record.dropped:
            del self._callback_queries[query_id]
            raise EmulatorError("the bot's allowed_updates leave out callback_query")
        try:
            async with asyncio.timeout(timeout):
                answer: CallbackAnswer = await future
        except TimeoutError:
            raise self._timeout(
                chat, f"the bot did not answer callback query {data!r} within {timeout}s"
            ) from None
        return answer

    async def _user_pay(
        self, user: UserState, message: ChatMessage, timeout: float
    ) -> dict[str, Any]:
        chat, current = self._current(user, message)
        invoice = current.invoice
        if invoice is None:
            raise EmulatorError(f"message {current.message_id} has no invoice")
        query_id = str(5_000_000_000_000_000 + self._next_query_id)
        self._next_query_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pre_checkout_queries[query_id] = _PendingQuery(
            query_id, user.id, chat.id, _now(), self.pre_checkout_ttl, future
        )
        payload = {
            "id": query_id,
            "from": user.api(),
            "currency": invoice.currency,
            "total_amount": invoice.total_amount,
            "invoice_payload": invoice.payload,
        }
        record = self._enqueue("pre_checkout_query", payload)
        if record.dropped:
            del self._pre_checkout_queries[query_id]
            raise EmulatorError("the bot's allowed_updates leave out pre_checkout_query")
        try:
            async with asyncio.timeout(timeout):
                answer: PreCheckoutAnswer = await future
        except TimeoutError:
            raise self._timeout(
                chat, f"the bot did not answer the pre-checkout query within {timeout}s"
            ) from None
        if not answer.ok:
            raise PaymentDeclined(answer.error_message or "")
        number = self._next_charge
        self._next_charge += 1
        charge = _Charge(
            id=f"stxEmu{number:06d}{query_id[-6:]}",
            user_id=user.id,
            chat_id=chat.id,
            currency=invoice.currency,
            total_amount=invoice.total_amount,
            payload=invoice.payload,
        )
        self._charges[charge.id] = charge
        paid: dict[str, Any] = {
            "currency": charge.currency,
            "total_amount": charge.total_amount,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.id,
            "provider_payment_charge_id": f"{user.id}_{charge.id}",
        }
        payment = Payment(
            currency=charge.currency,
            total_amount=charge.total_amount,
            invoice_payload=charge.payload,
            telegram_payment_charge_id=charge.id,
            provider_payment_charge_id=paid["provider_payment_charge_id"],
        )
        _, delivered = self._service_message(
            chat, user, {"successful_payment": paid}, "successful_payment", payment=payment
        )
        if delivered is None:
            raise EmulatorError("the bot is no longer in the chat to see the payment")
        return delivered.update

    def _user_set_blocked(self, user: UserState, blocked: bool) -> dict[str, Any] | None:
        if user.blocked == blocked:
            return None
        user.blocked = blocked
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        payload = {
            "chat": self._chats[user.id].api(),
            "from": user.api(),
            "date": _wall(),
            "old_chat_member": member_api(self.bot_user, old),
            "new_chat_member": member_api(self.bot_user, new),
        }
        self._chats[user.id].signal.fire()
        return self._enqueue("my_chat_member", payload).update

    def _group_set_member(self, chat: ChatState, user: UserState, status: str) -> None:
        if status not in MEMBER_STATUSES:
            raise ValueError(f"status must be one of {MEMBER_STATUSES}")
        chat.members[user.id] = status
        chat.signal.fire()

    def _group_set_bot_status(self, chat: ChatState, by: UserState, status: str) -> dict[str, Any]:
        if status not in MEMBER_STATUSES or status == "creator":
            raise ValueError("the bot can be member, administrator, restricted, left or kicked")
        if chat.members.get(by.id) not in PRESENT_STATUSES:
            raise EmulatorError(f"user {by.id} is not a member of chat {chat.id}")
        old = chat.bot_status
        chat.bot_status = status
        payload = {
            "chat": chat.api(),
            "from": by.api(),
            "date": _wall(),
            "old_chat_member": member_api(self.bot_user, old),
            "new_chat_member": member_api(self.bot_user, status),
        }
        record = self._enqueue("my_chat_member", payload)
        if old not in PRESENT_STATUSES and status in PRESENT_STATUSES:
            self._service_message(
                chat, by, {"new_chat_members": [self.bot_user]}, "new_chat_members"
            )
        chat.signal.fire()
        return record.update

    def _timeout(self, chat: ChatState, what: str) -> EmulatorTimeout:
        return EmulatorTimeout(f"{what}\n{self.transcript(chat.id)}")

    def transcript(self, chat_id: int, last: int = 8) -> str:
        """The last messages of a chat as text lines, for failure messages and logs."""
        messages = self.messages(chat_id, include_deleted=True)[-last:]
        lines = [f"chat {chat_id}, last {len(messages)} message(s):"]
        for m in messages:
            who = "bot" if m.from_bot else f"user {m.sender_id}"
            flags = "".join(
                [" (deleted)" if m.deleted else "", f" (edited x{m.edited})" if m.edited else ""]
            )
            body = m.text or m.service or ("invoice" if m.invoice else "")
            buttons = f" buttons={m.button_texts}" if m.buttons else ""
            lines.append(f"  #{m.message_id} {who}{flags}: {body[:120]!r}{buttons}")
        return "\n".join(lines)
