"""The web chat: an aiohttp server that shows the emulator's chats to a browser and acts for
the demo people in them.

The page gets everything pushed over server-sent events: first a snapshot of every chat, then
one event per change the emulator reports (a new message, an edit, a deletion). It only calls
back for what a person does: send a text, press a button, pay an invoice.

It listens on loopback only, and it still checks the Host header and insists on JSON bodies:
a web page on the internet could otherwise reach 127.0.0.1 from the visitor's browser (DNS
rebinding, form posts) and press buttons as a demo person.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from bot.emulator import (
    BotAPIEmulator,
    ChatMessage,
    EmulatedUser,
    EmulatorError,
    EmulatorEvent,
    EmulatorTimeout,
    InlineButton,
    PaymentDeclined,
)

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
_STATIC_FILES: Final = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}
# A proxy or a sleeping laptop drops an idle stream; a comment line now and then keeps it open.
KEEPALIVE_SECONDS: Final = 15.0
# A tab that stops reading its stream must not make the server hold every event forever: past
# this many unsent events the stream ends and the browser reconnects to a fresh snapshot.
CLIENT_QUEUE_LIMIT: Final = 1000
# How long a button press or a payment may wait for the bot's answer. Telegram itself gives a
# bot about 15 s before a callback query is too old to answer.
ANSWER_TIMEOUT_SECONDS: Final = 15.0
# Telegram member statuses of someone who is in a group (and so sees and writes in it).
_PRESENT: Final = frozenset({"creator", "administrator", "member", "restricted"})
_CSP: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class DemoPerson:
    """Someone a visitor can be in the web chat."""

    id: int
    first_name: str
    language_code: str
    label: str  # shown under the name: what this person is for
    username: str | None = None
    # The label for a Russian-speaking page; the English one when not given.
    label_ru: str | None = None


@dataclass(frozen=True)
class DemoGroup:
    """A group the bot was added to, with the demo people in it."""

    id: int
    title: str
    members: tuple[tuple[int, str], ...]  # (person id, Telegram status)


class _Client:
    """One open event stream."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.overflowed = False

    def push(self, item: bytes | None) -> None:
        if self.overflowed:
            return
        if item is not None and self.queue.qsize() >= CLIENT_QUEUE_LIMIT:
            self.overflowed = True
            item = None
        self.queue.put_nowait(item)


def _sse(event: str, data: object) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"ok": False, "error": text}, status=status)


def button_json(button: InlineButton) -> dict[str, Any]:
    data: dict[str, Any] = {"text": button.text}
    if button.callback_data is not None:
        data.update(kind="callback", callback_data=button.callback_data)
    elif button.url is not None:
        data.update(kind="url", url=button.url)
    elif button.copy_text is not None:
        data.update(kind="copy", copy_text=button.copy_text)
    elif button.pay:
        data["kind"] = "pay"
    else:
        data.update(kind="other", other=button.other)
    return data


class DemoWeb:
    """The page and its API over one emulator; people and groups must already exist in it."""

    def __init__(
        self,
        emulator: BotAPIEmulator,
        people: Sequence[DemoPerson],
        groups: Sequence[DemoGroup] = (),
        *,
        info: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        self.emulator = emulator
        self.answer_timeout = answer_timeout
        self.people = tuple(people)
        self.groups = tuple(groups)
        self.info = dict(info or {})
        self._host = host
        self._requested_port = port
        self._users: dict[int, EmulatedUser] = {
            p.id: emulator.user(
                p.id, p.first_name, username=p.username, language_code=p.language_code
            )
            for p in self.people
        }
        self._names = {p.id: p.first_name for p in self.people}
        self._names[emulator.bot_id] = emulator.bot_first_name
        self._paid: set[tuple[int, int]] = set()
        self._clients: set[_Client] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the demo web server is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the demo web server is not started")
        return self._port

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/commands", self._commands)
        app.router.add_post("/api/send", self._send)
        app.router.add_post("/api/press", self._press)
        app.router.add_post("/api/pay", self._pay)
        app.router.add_get(r"/api/file/{chat_id:-?\d+}/{message_id:\d+}", self._file)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the demo web server is already started")
        runner = web.AppRunner(
            self.build_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self.emulator.add_listener(self._on_event)
        logger.info("demo web chat on %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.emulator.remove_listener(self._on_event)
        # Tell every open page first, so its stream ends now instead of being cut at cleanup.
        for client in list(self._clients):
            client.push(None)
        await runner.cleanup()
        logger.info("demo web chat stopped")

    async def __aenter__(self) -> DemoWeb:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ state as JSON

    def person_json(self, person: DemoPerson) -> dict[str, Any]:
        return {
            "id": person.id,
            "name": person.first_name,
            "language": person.language_code,
            "label": person.label,
            "labels": {"en": person.label, "ru": person.label_ru or person.label},
            "username": person.username,
        }

    def chats_json(self) -> list[dict[str, Any]]:
        chats: list[dict[str, Any]] = [
            {"id": p.id, "type": "private", "title": self.emulator.bot_first_name, "members": []}
            for p in self.people
        ]
        for group in self.groups:
            statuses = self.emulator.group(group.id, group.title).members
            chats.append(
                {
                    "id": group.id,
                    "type": "group",
                    "title": group.title,
                    "members": [
                        {"user_id": uid, "status": status} for uid, status in statuses.items()
                    ],
                }
            )
        return chats

    def chat_ids(self) -> list[int]:
        return [p.id for p in self.people] + [g.id for g in self.groups]

    def message_json(self, message: ChatMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "chat_id": message.chat_id,
            "message_id": message.message_id,
            "from": {
                "id": message.sender_id,
                "name": self._names.get(message.sender_id, str(message.sender_id)),
                "is_bot": message.from_bot,
            },
            "date": message.date,
            "text": message.text,
            "entities": [e.to_api() for e in message.entities],
            "buttons": [[button_json(b) for b in row] for row in message.buttons],
            "edited": message.edited,
            "deleted": message.deleted,
            "service": message.service,
            "paid": (message.chat_id, message.message_id) in self._paid,
        }
        if message.service is not None:
            data["text"] = self._service_text(message)
            # The page words service notes in its own language from these parts.
            data["service_data"] = self._service_data(message)
        if message.invoice is not None:
            invoice = message.invoice
            data["invoice"] = {
                "title": invoice.title,
                "description": invoice.description,
                "currency": invoice.currency,
                "total_amount": invoice.total_amount,
            }
        if message.document is not None:
            data["document"] = {
                "file_name": message.document.file_name,
                "mime_type": message.document.mime_type,
                "size": message.document.size,
            }
        return data

    def _service_text(self, message: ChatMessage) -> str:
        who = self._names.get(message.sender_id, "Someone")
        if message.service == "new_chat_members":
            return f"{who} added {self.emulator.bot_first_name} to the group"
        if message.service == "successful_payment" and message.payment is not None:
            amount = message.payment.total_amount
            price = f"⭐ {amount}" if message.payment.currency == "XTR" else str(amount)
            return f"{who} paid {price}"
        return message.text or (message.service or "").replace("_", " ")

    def _service_data(self, message: ChatMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "who": self._names.get(message.sender_id),
            "bot": self.emulator.bot_first_name,
        }
        if message.service == "successful_payment" and message.payment is not None:
            data["currency"] = message.payment.currency
            data["amount"] = message.payment.total_amount
        return data

    def snapshot(self) -> dict[str, Any]:
        messages = [
            self.message_json(m)
            for chat_id in self.chat_ids()
            for m in self.emulator.messages(chat_id)
        ]
        return {
            "bot": {
                "id": self.emulator.bot_id,
                "name": self.emulator.bot_first_name,
                "username": self.emulator.bot_username,
            },
            "people": [self.person_json(p) for p in self.people],
            "chats": self.chats_json(),
            "messages": messages,
            "info": self.info,
        }

    def commands_for(self, user_id: int, chat_id: int) -> list[dict[str, str]]:
        """The bot's command menu as this person sees it in this chat.

        Telegram's order: the most specific scope that has a list wins, and within a scope the
        person's language before the list without a language.
        """
        language = (self._person(user_id).language_code or "").split("-")[0]
        if chat_id > 0:
            scopes: list[dict[str, Any]] = [
                {"type": "chat", "chat_id": chat_id},
                {"type": "all_private_chats"},
                {"type": "default"},
            ]
        else:
            status = self.emulator.group(chat_id).members.get(user_id)
            admin = status in ("creator", "administrator")
            scopes = [{"type": "chat_member", "chat_id": chat_id, "user_id": user_id}]
            if admin:
                scopes.append({"type": "chat_administrators", "chat_id": chat_id})
            scopes.append({"type": "chat", "chat_id": chat_id})
            if admin:
                scopes.append({"type": "all_chat_administrators"})
            scopes += [{"type": "all_group_chats"}, {"type": "default"}]
        for scope in scopes:
            for lang in (language, ""):
                commands = self.emulator.commands(scope, lang)
                if commands:
                    return commands
        return []

    # ------------------------------------------------------------------ pushing events

    def _on_event(self, event: EmulatorEvent) -> None:
        if event.message is None or event.chat_id not in self.chat_ids():
            return
        kind = {"message": "new", "edit": "edit", "delete": "delete"}.get(event.kind)
        if kind is None:
            return  # callback and pre-checkout answers go back to the press that asked
        self._broadcast("message", {"kind": kind, "message": self.message_json(event.message)})

    def _broadcast(self, event: str, data: object) -> None:
        frame = _sse(event, data)
        for client in list(self._clients):
            client.push(frame)

    # ------------------------------------------------------------------ HTTP

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0].strip("[]").lower()
        if host not in ("127.0.0.1", "localhost", "::1"):
            return _error(403, "this demo only answers on 127.0.0.1")
        if request.method == "POST" and request.content_type != "application/json":
            return _error(415, "send JSON")
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    async def _index(self, request: web.Request) -> web.Response:
        body = (STATIC_DIR / "index.html").read_bytes()
        response = web.Response(body=body, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = _CSP
        return response

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = _STATIC_FILES.get(name)
        if content_type is None:
            raise web.HTTPNotFound()
        body = (STATIC_DIR / name).read_bytes()
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, **self.snapshot()})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        client = _Client()
        # Registered and snapshotted with no await in between: no event can fall in the gap.
        self._clients.add(client)
        try:
            await response.write(b"retry: 1000\n\n" + _sse("snapshot", self.snapshot()))
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        item = await client.queue.get()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    if not client.overflowed:
                        await response.write(_sse("bye", {}))
                    break
                await response.write(item)
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            self._clients.discard(client)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPBadRequest(
                text='{"ok": false, "error": "bad JSON"}', content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text='{"ok": false, "error": "expected a JSON object"}',
                content_type="application/json",
            )
        return body

    def _person(self, user_id: object) -> DemoPerson:
        for person in self.people:
            if person.id == user_id:
                return person
        raise _Refused(404, "no such demo person")

    def _chat_for(self, person: DemoPerson, chat_id: object) -> int:
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise _Refused(400, "chat_id must be a number")
        if chat_id == person.id:
            return chat_id
        for group in self.groups:
            if group.id == chat_id:
                status = self.emulator.group(group.id, group.title).members.get(person.id)
                if status in _PRESENT:
                    return chat_id
        raise _Refused(404, "no such chat for this person")

    def _message(self, chat_id: int, message_id: object) -> ChatMessage:
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise _Refused(400, "message_id must be a number")
        for message in self.emulator.messages(chat_id):
            if message.message_id == message_id:
                return message
        raise _Refused(404, "that message is gone")

    async def _commands(self, request: web.Request) -> web.Response:
        try:
            user_id = int(request.query.get("user_id", ""))
            chat_id = int(request.query.get("chat_id", ""))
        except ValueError:
            return _error(400, "user_id and chat_id must be numbers")
        try:
            person = self._person(user_id)
            self._chat_for(person, chat_id)
        except _Refused as exc:
            return _error(exc.status, exc.text)
        return web.json_response({"ok": True, "commands": self.commands_for(user_id, chat_id)})

    async def _send(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "text must be a non-empty string")
        if len(text) > 4096:
            return _error(400, "a Telegram message holds at most 4096 characters")
        try:
            person = self._person(body.get("user_id"))
            chat_id = self._chat_for(person, body.get("chat_id"))
            sent = await self._users[person.id].send(text.strip(), chat=chat_id)
        except _Refused as exc:
            return _error(exc.status, exc.text)
        except EmulatorError as exc:
            return _error(409, str(exc))
        return web.json_response({"ok": True, "message_id": sent.message_id})

    async def _press(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        data = body.get("callback_data")
        if not isinstance(data, str) or not data:
            return _error(400, "callback_data must be a non-empty string")
        try:
            person = self._person(body.get("user_id"))
            chat_id = self._chat_for(person, body.get("chat_id"))
            message = self._message(chat_id, body.get("message_id"))
            answer = await self._users[person.id].press(
                message, data=data, timeout=self.answer_timeout
            )
        except _Refused as exc:
            return _error(exc.status, exc.text)
        except EmulatorTimeout:
            return _error(504, "The bot did not answer this button in time.")
        except EmulatorError as exc:
            return _error(409, str(exc))
        return web.json_response(
            {
                "ok": True,
                "answer": {"text": answer.text, "show_alert": answer.show_alert, "url": answer.url},
            }
        )

    async def _pay(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            person = self._person(body.get("user_id"))
            chat_id = self._chat_for(person, body.get("chat_id"))
            message = self._message(chat_id, body.get("message_id"))
            if message.invoice is None:
                raise _Refused(400, "that message is not an invoice")
            key = (chat_id, message.message_id)
            if key in self._paid:
                raise _Refused(409, "this invoice is already paid")
            # Marked before paying, so a double click cannot pay twice while the bot answers.
            self._paid.add(key)
            try:
                update = await self._users[person.id].pay(message, timeout=self.answer_timeout)
            except BaseException:
                self._paid.discard(key)
                raise
        except _Refused as exc:
            return _error(exc.status, exc.text)
        except PaymentDeclined as exc:
            return _error(402, f"The bot declined the payment: {exc.error_message}")
        except EmulatorTimeout:
            return _error(504, "The bot did not confirm the payment in time.")
        except EmulatorError as exc:
            return _error(409, str(exc))
        # The invoice itself did not change in the emulator; tell the pages it is paid now.
        current = self._message(chat_id, message.message_id)
        self._broadcast("message", {"kind": "edit", "message": self.message_json(current)})
        charge = update.get("message", {}).get("successful_payment", {})
        return web.json_response(
            {"ok": True, "telegram_payment_charge_id": charge.get("telegram_payment_charge_id")}
        )

    async def _file(self, request: web.Request) -> web.Response:
        chat_id = int(request.match_info["chat_id"])
        message_id = int(request.match_info["message_id"])
        if chat_id not in self.chat_ids():
            raise web.HTTPNotFound()
        try:
            message = self._message(chat_id, message_id)
        except _Refused:
            raise web.HTTPNotFound() from None
        if message.document is None:
            raise web.HTTPNotFound()
        document = message.document
        response = web.Response(body=document.data, content_type="application/octet-stream")
        # The name is the bot's; quote it so it cannot break out of the header.
        safe = document.file_name.replace("\\", "_").replace('"', "_")
        response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
        return response


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
