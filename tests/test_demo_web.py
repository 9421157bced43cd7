"""The web chat's server on a bare emulator with a small real aiogram bot: the parts the shop
bot does not exercise yet (Stars invoices, documents, alerts, a bot that never answers), and
the message JSON the page renders from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from bot.demo.server import DemoGroup, DemoPerson, DemoWeb
from bot.emulator import BotAPIEmulator, FloodLimits

TOKEN = "777:demo-web-test"
ANN, BEN = 2001, 2002
GROUP = -4001

FORMATTED = (
    "<b>bold</b> <i>italic</i> <code>+19401234567</code> "
    '<a href="https://example.org/x">link</a> <tg-spoiler>secret</tg-spoiler>\n'
    '<pre><code class="language-python">print("hi")</code></pre>'
)


def card_markup(ticks: int) -> tuple[str, InlineKeyboardMarkup]:
    """A card like the shop's: a clock in its text and a countdown on a button, redrawn by
    "tick" presses; the third tick unlocks the cancel button (a real change of state)."""
    cancel = "✖️ Cancel and refund" if ticks >= 3 else f"⏳ Cancel in 0:{30 - ticks:02d}"
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Tick", callback_data="tick")],
            [InlineKeyboardButton(text=cancel, callback_data="cancel")],
        ]
    )
    return f"Card ⏱ 0:{ticks:02d}", keyboard


def tiny_bot() -> Router:
    router = Router(name="tiny")
    ticks: dict[int, int] = {}

    @router.message(Command("card"))
    async def card(message: Message) -> None:
        text, keyboard = card_markup(0)
        sent = await message.answer(text, reply_markup=keyboard)
        ticks[sent.message_id] = 0

    @router.callback_query(F.data == "tick")
    async def tick(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        count = ticks[query.message.message_id] = ticks.get(query.message.message_id, 0) + 1
        text, keyboard = card_markup(count)
        await query.message.edit_text(text, reply_markup=keyboard)
        await query.answer()

    @router.message(Command("invoice"))
    async def invoice(message: Message, bot: Bot) -> None:
        payload = "no" if "decline" in (message.text or "") else "topup:10"
        await bot.send_invoice(
            message.chat.id,
            title="Top up $10",
            description="Play money for the demo",
            payload=payload,
            currency="XTR",
            prices=[LabeledPrice(label="$10", amount=800)],
        )

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        if query.invoice_payload == "no":
            await query.answer(ok=False, error_message="Sold out")
        else:
            await query.answer(ok=True)

    @router.message(F.successful_payment)
    async def paid(message: Message) -> None:
        assert message.successful_payment is not None
        await message.answer(f"Paid {message.successful_payment.total_amount} Stars")

    @router.message(Command("doc"))
    async def document(message: Message) -> None:
        await message.answer_document(BufferedInputFile(b"a,b\n1,2\n", filename="ledger.csv"))

    @router.message(Command("fmt"))
    async def formatted(message: Message) -> None:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text="Alert", callback_data="alert")],
                [InlineKeyboardButton(text="Silent", callback_data="silent")],
                [InlineKeyboardButton(text="Site", url="https://example.org/")],
            ]
        )
        await message.answer(FORMATTED, reply_markup=keyboard)

    @router.callback_query(F.data == "alert")
    async def alert(query: CallbackQuery) -> None:
        await query.answer("Not yet: wait 30 s", show_alert=True)

    @router.callback_query(F.data == "silent")
    async def silent(query: CallbackQuery) -> None:
        return None  # a bot that forgets to answer: the page must not hang

    return router


@pytest.fixture
async def web() -> AsyncIterator[DemoWeb]:
    async with BotAPIEmulator(token=TOKEN, flood=FloodLimits.off(), bot_first_name="Tiny") as emu:
        people = [DemoPerson(ANN, "Ann", "en", "user"), DemoPerson(BEN, "Ben", "ru", "user")]
        groups = [DemoGroup(GROUP, "Club", ((ANN, "administrator"), (BEN, "member")))]
        page = DemoWeb(emu, people, groups, answer_timeout=1.0)
        group = emu.group(GROUP, "Club")
        group.add_member(emu.user(ANN), "administrator")
        group.add_member(emu.user(BEN), "member")
        await group.add_bot(by=emu.user(ANN))
        bot = Bot(
            TOKEN,
            session=emu.aiogram_session(),
            default=DefaultBotProperties(parse_mode=ParseMode.HTML),
        )
        dp = Dispatcher()
        dp.include_router(tiny_bot())
        await bot.set_my_commands([BotCommand(command="doc", description="A file")])
        await bot.set_my_commands(
            [BotCommand(command="doc", description="Файл")], language_code="ru"
        )
        await bot.set_my_commands(
            [BotCommand(command="invoice", description="Pay")],
            scope=BotCommandScopeAllGroupChats(),
        )
        async with page, emu.polling(dp, bot):
            yield page


@pytest.fixture
async def http(web: DemoWeb) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=web.url) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(path, json=body) as response:
        return response.status, await response.json()


async def send(http: aiohttp.ClientSession, user_id: int, text: str, chat_id: int = 0) -> None:
    status, body = await call(
        http, "/api/send", {"user_id": user_id, "chat_id": chat_id or user_id, "text": text}
    )
    assert status == 200, body


async def test_a_stars_invoice_is_paid_with_one_call(
    web: DemoWeb, http: aiohttp.ClientSession
) -> None:
    ann = web.emulator.user(ANN)
    await send(http, ANN, "/invoice")
    invoice = await ann.wait_for(lambda m: m.invoice is not None)
    json_invoice = web.message_json(invoice)
    assert json_invoice["invoice"] == {
        "title": "Top up $10",
        "description": "Play money for the demo",
        "currency": "XTR",
        "total_amount": 800,
    }
    assert json_invoice["paid"] is False

    pay = {"user_id": ANN, "chat_id": ANN, "message_id": invoice.message_id}
    status, body = await call(http, "/api/pay", pay)
    assert status == 200, body
    assert body["telegram_payment_charge_id"]
    thanks = await ann.wait_for(lambda m: m.from_bot and "Paid 800 Stars" in m.text)
    assert thanks.message_id > invoice.message_id
    service = [m for m in ann.chat if m.service == "successful_payment"]
    assert web.message_json(service[0])["text"] == "Ann paid ⭐ 800"
    # The page words the note in its own language from these parts.
    assert web.message_json(service[0])["service_data"] == {
        "who": "Ann",
        "bot": "Tiny",
        "currency": "XTR",
        "amount": 800,
    }
    assert web.message_json(ann.current(invoice))["paid"] is True
    payment = web.emulator.charge(body["telegram_payment_charge_id"])
    assert payment is not None
    assert payment.total_amount == 800

    # A second click on the same invoice pays nothing.
    status, body = await call(http, "/api/pay", pay)
    assert (status, body["ok"]) == (409, False)


async def test_a_declined_payment_is_reported_and_can_be_retried(
    web: DemoWeb, http: aiohttp.ClientSession
) -> None:
    ann = web.emulator.user(ANN)
    await send(http, ANN, "/invoice decline")
    invoice = await ann.wait_for(lambda m: m.invoice is not None)
    pay = {"user_id": ANN, "chat_id": ANN, "message_id": invoice.message_id}
    status, body = await call(http, "/api/pay", pay)
    assert status == 402
    assert "Sold out" in body["error"]
    assert web.message_json(ann.current(invoice))["paid"] is False
    status, _ = await call(http, "/api/pay", pay)
    assert status == 402  # not "already paid": the first attempt did not count


async def test_alerts_timeouts_and_links(web: DemoWeb, http: aiohttp.ClientSession) -> None:
    ann = web.emulator.user(ANN)
    await send(http, ANN, "/fmt")
    message = await ann.wait_for(lambda m: m.from_bot and bool(m.buttons))
    data = web.message_json(message)

    types = [e["type"] for e in data["entities"]]
    assert types == ["bold", "italic", "code", "text_link", "spoiler", "pre"]
    link = next(e for e in data["entities"] if e["type"] == "text_link")
    assert link["url"] == "https://example.org/x"
    pre = next(e for e in data["entities"] if e["type"] == "pre")
    assert pre["language"] == "python"
    kinds = [[b["kind"] for b in row] for row in data["buttons"]]
    assert kinds == [["callback"], ["callback"], ["url"]]
    assert data["buttons"][2][0]["url"] == "https://example.org/"

    press = {"user_id": ANN, "chat_id": ANN, "message_id": message.message_id}
    status, body = await call(http, "/api/press", {**press, "callback_data": "alert"})
    assert status == 200, body
    assert body["answer"] == {"text": "Not yet: wait 30 s", "show_alert": True, "url": None}

    status, body = await call(http, "/api/press", {**press, "callback_data": "silent"})
    assert (status, body["ok"]) == (504, False)


async def test_documents_can_be_downloaded(web: DemoWeb, http: aiohttp.ClientSession) -> None:
    ann = web.emulator.user(ANN)
    await send(http, ANN, "/doc")
    message = await ann.wait_for(lambda m: m.document is not None)
    assert web.message_json(message)["document"]["file_name"] == "ledger.csv"
    async with http.get(f"/api/file/{ANN}/{message.message_id}") as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"] == 'attachment; filename="ledger.csv"'
        assert await response.read() == b"a,b\n1,2\n"
    # Ben's page cannot fetch what is in Ann's chat through a chat it does not know.
    async with http.get(f"/api/file/999/{message.message_id}") as response:
        assert response.status == 404


async def test_only_members_act_in_a_group(web: DemoWeb, http: aiohttp.ClientSession) -> None:
    web.emulator.group(GROUP).add_member(web.emulator.user(BEN), "left")
    status, body = await call(http, "/api/send", {"user_id": BEN, "chat_id": GROUP, "text": "/x"})
    assert (status, body["ok"]) == (404, False)
    assert [c["members"] for c in web.chats_json() if c["id"] == GROUP] == [
        [{"user_id": ANN, "status": "administrator"}, {"user_id": BEN, "status": "left"}]
    ]


async def test_people_carry_their_label_in_both_page_languages(web: DemoWeb) -> None:
    ann = web.person_json(web.people[0])
    assert ann["labels"] == {"en": "user", "ru": "user"}  # no Russian given: the English one
    labelled = DemoPerson(3, "Vera", "ru", "user", label_ru="пользователь")
    assert web.person_json(labelled)["labels"] == {"en": "user", "ru": "пользователь"}


async def test_commands_follow_telegrams_scope_and_language_order(web: DemoWeb) -> None:
    assert web.commands_for(ANN, ANN) == [{"command": "doc", "description": "A file"}]
    assert web.commands_for(BEN, BEN) == [{"command": "doc", "description": "Файл"}]
    assert web.commands_for(BEN, GROUP) == [{"command": "invoice", "description": "Pay"}]


async def test_group_members_write_in_the_group(web: DemoWeb, http: aiohttp.ClientSession) -> None:
    await send(http, BEN, "/invoice", GROUP)
    group = web.emulator.group(GROUP)
    invoice = await group.wait_for(lambda m: m.invoice is not None)
    sender = [m for m in group.messages if not m.from_bot][-1]
    assert web.message_json(sender)["from"] == {"id": BEN, "name": "Ben", "is_bot": False}
    status, body = await call(
        http, "/api/pay", {"user_id": ANN, "chat_id": GROUP, "message_id": invoice.message_id}
    )
    assert status == 200, body
