"""The web chat's server API, driven with aiohttp's client against the whole demo: the real bot
polling the Bot API emulator, a sandbox DaisySim behind it, all on loopback.

What a page does, a test does here: read the event stream, send a text, press a button.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.demo import Demo, DemoConfig
from bot.demo.runner import ADMIN_ID, ALICE_ID, BORIS_ID, GROUP_ID

WAIT = 10.0

Event = tuple[str, dict[str, Any]]


class EventStream:
    """A server-sent event reader over one open /api/events response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.seen: list[Event] = []

    async def _read_one(self) -> Event | None:
        name, data = "message", list[str]()
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None  # the server ended the stream
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    return name, json.loads("\n".join(data))
                name, data = "message", []
            elif line.startswith(":") or line.startswith("retry:"):
                continue
            elif line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip())

    async def next(self, predicate: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                event = await self._read_one()
                if event is None:
                    raise AssertionError(f"stream ended; seen: {[e[0] for e in self.seen]}")
                self.seen.append(event)
                if predicate(event):
                    return event

    async def ended(self, timeout: float = WAIT) -> list[Event]:
        """Everything until the server closes the stream."""
        rest: list[Event] = []
        async with asyncio.timeout(timeout):
            while (event := await self._read_one()) is not None:
                rest.append(event)
        return rest


def bot_message(
    chat_id: int, *, kind: str | None = None, text: str = ""
) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        name, data = event
        if name != "message":
            return False
        message = data["message"]
        return (
            message["chat_id"] == chat_id
            and message["from"]["is_bot"]
            and (kind is None or data["kind"] == kind)
            and text in message["text"]
        )

    return match


def button(message: dict[str, Any], text: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        b for row in message["buttons"] for b in row if text in b["text"]
    ]
    assert len(found) == 1, (text, message["buttons"])
    return found[0]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    config = DemoConfig(
        port=0,
        time_scale=60,
        code_after=None,
        database_path=tmp_path / "demo.sqlite3",
        settings_overrides={"poll_min_interval_seconds": 0.1},
    )
    async with Demo(config) as running:
        yield running


@pytest.fixture
async def http(demo: Demo) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=demo.url, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


@pytest.fixture
async def stream(http: aiohttp.ClientSession) -> AsyncIterator[EventStream]:
    async with http.get("/api/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        yield EventStream(response)


async def post(http: aiohttp.ClientSession, path: str, body: object) -> tuple[int, dict[str, Any]]:
    async with http.post(path, json=body) as response:
        return response.status, await response.json()


async def test_the_stream_starts_with_a_snapshot_of_people_and_chats(
    demo: Demo, stream: EventStream
) -> None:
    name, snapshot = await stream.next(lambda e: True)
    assert name == "snapshot"
    assert snapshot["bot"]["name"] == "DaisySim Bot"
    people = {p["name"]: p for p in snapshot["people"]}
    assert set(people) == {"Alice", "Boris", "Admin"}
    assert people["Boris"]["language"] == "ru"
    assert ADMIN_ID in demo.settings.admin_ids
    chats = {c["id"]: c for c in snapshot["chats"]}
    assert set(chats) == {ALICE_ID, BORIS_ID, ADMIN_ID, GROUP_ID}
    members = {m["user_id"]: m["status"] for m in chats[GROUP_ID]["members"]}
    assert members == {ALICE_ID: "creator", BORIS_ID: "member"}
    # The bot was added to the group like in Telegram: a service message everyone sees.
    added = [m for m in snapshot["messages"] if m["chat_id"] == GROUP_ID]
    assert [m["service"] for m in added] == ["new_chat_members"]
    assert "added DaisySim Bot" in added[0]["text"]
    assert "play money" in snapshot["info"]["text"]


async def test_send_and_press_are_pushed_back_as_messages_and_edits(
    http: aiohttp.ClientSession, stream: EventStream, demo: Demo
) -> None:
    await stream.next(lambda e: e[0] == "snapshot")

    status, body = await post(
        http, "/api/send", {"user_id": ALICE_ID, "chat_id": ALICE_ID, "text": "/start"}
    )
    assert (status, body["ok"]) == (200, True)
    _, mine = await stream.next(
        lambda e: e[0] == "message" and not e[1]["message"]["from"]["is_bot"]
    )
    assert mine["kind"] == "new"
    assert mine["message"]["text"] == "/start"
    assert mine["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]

    _, menu = await stream.next(bot_message(ALICE_ID, kind="new"))
    menu_message = menu["message"]
    assert "SANDBOX" in menu_message["text"]
    assert "$10.00" in menu_message["text"]  # sandbox play money, as configured
    assert any(e["type"] == "bold" for e in menu_message["entities"])
    buy = button(menu_message, "Buy")
    assert buy["kind"] == "callback"

    status, body = await post(
        http,
        "/api/press",
        {
            "user_id": ALICE_ID,
            "chat_id": ALICE_ID,
            "message_id": menu_message["message_id"],
            "callback_data": buy["callback_data"],
        },
    )
    assert (status, body["ok"]) == (200, True)
    assert set(body["answer"]) == {"text", "show_alert", "url"}

    _, edit = await stream.next(bot_message(ALICE_ID, kind="edit"))
    picker = edit["message"]
    assert picker["message_id"] == menu_message["message_id"]
    assert picker["edited"] >= 1
    whatsapp = button(picker, "WhatsApp — $1.85")

    status, body = await post(
        http,
        "/api/press",
        {
            "user_id": ALICE_ID,
            "chat_id": ALICE_ID,
            "message_id": picker["message_id"],
            "callback_data": whatsapp["callback_data"],
        },
    )
    assert status == 200, body
    _, card = await stream.next(bot_message(ALICE_ID, text="+1940"))
    copy = button(card["message"], "Copy number")
    assert copy["kind"] == "copy"
    assert copy["copy_text"].startswith("+1940")
    assert copy["copy_text"] in card["message"]["text"]

    # The same state is there for a page that connects later.
    async with http.get("/api/state") as response:
        state = await response.json()
    ids = [m["message_id"] for m in state["messages"] if m["chat_id"] == ALICE_ID]
    assert card["message"]["message_id"] in ids


async def test_a_group_message_reaches_every_member_page(
    http: aiohttp.ClientSession, stream: EventStream
) -> None:
    await stream.next(lambda e: e[0] == "snapshot")
    status, body = await post(
        http, "/api/send", {"user_id": BORIS_ID, "chat_id": GROUP_ID, "text": "/help"}
    )
    assert status == 200, body
    _, sent = await stream.next(
        lambda e: e[0] == "message" and e[1]["message"]["chat_id"] == GROUP_ID
    )
    assert sent["message"]["from"] == {"id": BORIS_ID, "name": "Boris", "is_bot": False}


async def test_commands_menu_in_each_persons_language(http: aiohttp.ClientSession) -> None:
    async def commands(user_id: int, chat_id: int) -> list[dict[str, str]]:
        async with http.get(
            "/api/commands", params={"user_id": user_id, "chat_id": chat_id}
        ) as response:
            body = await response.json()
        assert body["ok"], body
        result: list[dict[str, str]] = body["commands"]
        return result

    english = await commands(ALICE_ID, ALICE_ID)
    russian = await commands(BORIS_ID, BORIS_ID)
    assert "buy" in [c["command"] for c in english]
    assert [c["command"] for c in english] == [c["command"] for c in russian]
    assert english != russian
    assert any("\u0400" <= ch <= "\u04ff" for c in russian for ch in c["description"])
    assert not any("\u0400" <= ch <= "\u04ff" for c in english for ch in c["description"])
    # In the group a person sees the list for groups, or the default one.
    assert await commands(BORIS_ID, GROUP_ID)


async def test_the_api_refuses_what_a_person_could_not_do(
    http: aiohttp.ClientSession, demo: Demo
) -> None:
    status, body = await post(http, "/api/send", {"user_id": 4242, "chat_id": 4242, "text": "hi"})
    assert (status, body["ok"]) == (404, False)
    # Alice cannot write in Boris's private chat with the bot.
    status, _ = await post(
        http, "/api/send", {"user_id": ALICE_ID, "chat_id": BORIS_ID, "text": "hi"}
    )
    assert status == 404
    status, _ = await post(
        http, "/api/send", {"user_id": ALICE_ID, "chat_id": ALICE_ID, "text": " "}
    )
    assert status == 400
    status, _ = await post(
        http,
        "/api/press",
        {"user_id": ALICE_ID, "chat_id": ALICE_ID, "message_id": 999, "callback_data": "x"},
    )
    assert status == 404
    status, _ = await post(
        http,
        "/api/press",
        {"user_id": ALICE_ID, "chat_id": ALICE_ID, "message_id": "1", "callback_data": "x"},
    )
    assert status == 400
    status, _ = await post(
        http, "/api/pay", {"user_id": ALICE_ID, "chat_id": ALICE_ID, "message_id": 1}
    )
    assert status == 404
    async with http.post(
        "/api/send", data=b"{not json", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
    # A form post from another site is not JSON: refused before anything happens.
    async with http.post("/api/send", data={"user_id": "1001", "text": "/start"}) as r:
        assert r.status == 415
    async with http.get("/api/commands", params={"user_id": "x", "chat_id": "1"}) as r:
        assert r.status == 400
    async with http.get(f"/api/file/{ALICE_ID}/1") as r:
        assert r.status == 404
    assert demo.emulator.messages(ALICE_ID) == []


async def test_page_and_static_files(http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        page = await response.text()
    assert '<script src="/static/app.js"' in page
    assert 'name="viewport"' in page
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        async with http.get(f"/static/{name}") as response:
            assert response.status == 200
            assert response.content_type == kind
    for missing in ("/static/index.html", "/static/..%2Fserver.py", "/nope"):
        async with http.get(missing) as response:
            assert response.status == 404, missing


async def test_another_host_name_is_refused(demo: Demo) -> None:
    # DNS rebinding: a hostile page resolves its own name to 127.0.0.1 and calls the demo.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{demo.url}/api/state", headers={"Host": f"evil.example:{demo.web.port}"}
        ) as response,
    ):
        assert response.status == 403


async def test_stopping_the_demo_ends_open_streams(tmp_path: Path) -> None:
    config = DemoConfig(
        port=0, time_scale=60, code_after=None, database_path=tmp_path / "d.sqlite3"
    )
    demo = Demo(config)
    await demo.start()
    bot_task = demo.bot_task
    try:
        async with (
            aiohttp.ClientSession(base_url=demo.url) as http,
            http.get("/api/events") as response,
        ):
            stream = EventStream(response)
            await stream.next(lambda e: e[0] == "snapshot")
            await demo.emulator.user(ALICE_ID).send("/start")
            await stream.next(bot_message(ALICE_ID, text="SANDBOX"))
            stopping = asyncio.create_task(demo.stop())
            rest = await stream.ended()
            await stopping
    finally:
        await demo.stop()
    assert [name for name, _ in rest] == ["bye"]
    assert bot_task.done()
    assert not bot_task.cancelled()  # polling stopped the production way, not cancelled
    # Nothing of the demo is left running: no server task, no poller, no sender.
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []


async def test_a_crypto_top_up_is_paid_on_the_local_pay_page(
    http: aiohttp.ClientSession, stream: EventStream, demo: Demo
) -> None:
    """The 💎 Crypto top-up in the demo: the Pay button's link opens the local Crypto Pay's
    page, whose asset buttons play the payer; the receipt comes back in the chat."""
    await stream.next(lambda e: e[0] == "snapshot")

    async def press(message: dict[str, Any], text: str) -> None:
        data = button(message, text)["callback_data"]
        status, body = await post(
            http,
            "/api/press",
            {
                "user_id": ALICE_ID,
                "chat_id": ALICE_ID,
                "message_id": message["message_id"],
                "callback_data": data,
            },
        )
        assert status == 200, body

    await post(http, "/api/send", {"user_id": ALICE_ID, "chat_id": ALICE_ID, "text": "/start"})
    _, menu = await stream.next(bot_message(ALICE_ID, kind="new"))
    await press(menu["message"], "Balance")
    _, screen = await stream.next(bot_message(ALICE_ID, kind="edit", text="Balance:"))
    await press(screen["message"], "Top up")
    _, amounts = await stream.next(bot_message(ALICE_ID, kind="edit", text="Telegram Stars"))
    await press(amounts["message"], "💎 Crypto")
    _, crypto = await stream.next(bot_message(ALICE_ID, kind="edit", text="Top up with crypto"))
    await press(crypto["message"], "$5.00")
    _, invoice = await stream.next(bot_message(ALICE_ID, kind="new", text="Invoice for"))
    pay = button(invoice["message"], "Pay $5.00")
    assert pay["kind"] == "url"
    assert pay["url"].startswith(demo.crypto.base_url + "/pay/")

    async with aiohttp.ClientSession() as payer:
        async with payer.get(pay["url"]) as page:
            assert page.status == 200
            html = await page.text()
        assert "Pay with TON" in html
        async with payer.post(pay["url"], data={"asset": "TON"}) as paid:
            assert "Paid with TON" in await paid.text()
    _, receipt = await stream.next(bot_message(ALICE_ID, text="Payment received"))
    assert "$5.00 via Crypto Pay (TON)" in receipt["message"]["text"]
    assert "Balance: $15.00" in receipt["message"]["text"]  # $10 of play money + $5
