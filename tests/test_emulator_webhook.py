"""The emulator's webhooks, as the Bot API has them: setWebhook, getWebhookInfo,
deleteWebhook, 409 on getUpdates, and delivery by POST with the secret header, one at a time
per chat, redelivered until answered 2xx. The receiver is a small aiohttp server on loopback
whose answers each test chooses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web

from bot.emulator import BotAPIEmulator, EmulatorError
from tests.conftest import free_port
from tests.fixtures.waiting import wait_until

TOKEN = "42:TEST"
SECRET = "the_secret-1"


@dataclass
class Receiver:
    """A webhook endpoint: records each POST, answers `status` (or holds it while `gate` is
    closed)."""

    url: str = ""
    status: int = 200
    posts: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    most_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.posts.append(
                (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
            )
            await self.gate.wait()
            return web.json_response({}, status=self.status)
        finally:
            self.in_flight -= 1

    def texts(self) -> list[str]:
        return [body["message"]["text"] for body, _ in self.posts if "message" in body]


@pytest.fixture
async def emu() -> AsyncIterator[BotAPIEmulator]:
    async with BotAPIEmulator(token=TOKEN, webhook_retry_after=0.05) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: BotAPIEmulator) -> AsyncIterator[Bot]:
    bot = Bot(TOKEN, session=emu.aiogram_session())
    yield bot
    await bot.session.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    receiver.gate.set()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield receiver
    receiver.gate.set()
    await runner.cleanup()


async def test_set_webhook_info_and_409_on_get_updates(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    info = await bot.get_webhook_info()
    assert info.url == ""
    assert await bot.set_webhook(
        receiver.url,
        secret_token=SECRET,
        allowed_updates=["message", "callback_query"],
        max_connections=5,
    )
    info = await bot.get_webhook_info()
    assert info.url == receiver.url
    assert info.allowed_updates == ["callback_query", "message"]
    assert info.max_connections == 5
    assert info.pending_update_count == 0
    assert info.last_error_date is None
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == []


@pytest.mark.parametrize(
    ("url", "secret", "error"),
    [
        ("http://bot.example.com/hook", None, "An HTTPS URL must be provided"),
        ("not a url", None, "An HTTPS URL must be provided"),
        ("https://bot.example.com/hook", "with space", "secret token contains unallowed"),
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(
    bot: Bot, url: str, secret: str | None, error: str
) -> None:
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.set_webhook(url, secret_token=secret)


async def test_a_long_poll_ends_with_409_when_a_webhook_is_set(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await emu.wait_polling()
    await bot.set_webhook(receiver.url)
    with pytest.raises(TelegramConflictError):
        await asyncio.wait_for(poll, timeout=5)


async def test_updates_are_posted_with_the_secret_header_and_confirmed(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url, secret_token=SECRET)
    alice = emu.user(1001, "Alice")
    await alice.send("/start")
    await emu.wait_confirmed()
    [(body, header)] = receiver.posts
    assert header == SECRET
    assert body["update_id"] == emu.updates[-1].update_id
    assert body["message"]["text"] == "/start"
    assert emu.pending_update_count == 0
    assert emu.webhook_deliveries[-1].accepted


async def test_an_update_not_answered_2xx_stays_pending_and_is_posted_again(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url, secret_token=SECRET)
    receiver.status = 500
    alice = emu.user(1001, "Alice")
    await alice.send("one")
    await wait_until(lambda: len(receiver.posts) >= 2, what="a second POST of the update")
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None
    receiver.status = 200
    await emu.wait_confirmed()
    record = emu.updates[-1]
    assert record.attempts == len(receiver.posts) >= 3
    assert set(receiver.texts()) == {"one"}


async def test_a_webhook_that_does_not_listen_is_a_connection_error(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there
    await emu.user(1001, "Alice").send("hello")
    await wait_until(lambda: emu.webhook_deliveries, what="a failed delivery")
    assert (await bot.get_webhook_info()).last_error_message == "Connection refused"
    assert emu.pending_update_count == 1
    # Moving the webhook delivers what waited.
    await bot.set_webhook(receiver.url)
    await emu.wait_confirmed()
    assert receiver.texts() == ["hello"]


async def test_one_chat_in_order_chats_side_by_side_up_to_max_connections(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url, max_connections=2)
    receiver.gate.clear()
    alice, bob, carol = emu.user(1, "A"), emu.user(2, "B"), emu.user(3, "C")
    await alice.send("a1")
    await alice.send("a2")
    await bob.send("b1")
    await carol.send("c1")
    # Two connections: alice's first and bob's; alice's second waits for her first.
    await wait_until(lambda: len(receiver.posts) == 2, what="two POSTs in flight")
    assert sorted(receiver.texts()) == ["a1", "b1"]
    receiver.gate.set()
    await emu.wait_confirmed()
    texts = receiver.texts()
    assert sorted(texts) == ["a1", "a2", "b1", "c1"]
    assert texts.index("a1") < texts.index("a2")
    assert receiver.most_in_flight == 2


async def test_redeliver_posts_an_accepted_update_again_with_its_id(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    with pytest.raises(EmulatorError, match="needs a webhook"):
        emu.redeliver(1)
    await bot.set_webhook(receiver.url)
    await emu.user(1001, "Alice").send("once")
    await emu.wait_confirmed()
    update_id = emu.updates[-1].update_id
    emu.redeliver(update_id)
    await emu.wait_confirmed(update_id)
    assert [body["update_id"] for body, _ in receiver.posts] == [update_id, update_id]
    assert emu.updates[-1].attempts == 2


async def test_an_overridden_secret_is_sent_instead_of_the_bots(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    await bot.set_webhook(receiver.url, secret_token=SECRET)
    alice = emu.user(1001, "Alice")
    emu.override_webhook_secret(None)
    await alice.send("no header")
    await emu.wait_confirmed()
    emu.override_webhook_secret("wrong")
    await alice.send("wrong header")
    await emu.wait_confirmed()
    emu.restore_webhook_secret()
    await alice.send("right header")
    await emu.wait_confirmed()
    assert [header for _, header in receiver.posts] == [None, "wrong", SECRET]


async def test_drop_pending_updates_forgets_what_waited(
    emu: BotAPIEmulator, bot: Bot, receiver: Receiver
) -> None:
    await emu.user(1001, "Alice").send("old")
    await bot.set_webhook(receiver.url, drop_pending_updates=True)
    await emu.user(1001).send("new")
    await emu.wait_confirmed()
    assert receiver.texts() == ["new"]
