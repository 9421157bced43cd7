"""The Bot API emulator driven by a real aiogram Bot and Dispatcher over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberUpdated,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from bot.emulator import (
    BotAPIEmulator,
    ChatMessage,
    EmulatorError,
    EmulatorEvent,
    EmulatorTimeout,
    FloodLimits,
    PaymentDeclined,
)

TOKEN = "42:TEST"
NUMBER = "+19401234567"
WELCOME = "😀 <b>Welcome</b>, {name}! Your number: <code>{number}</code>"
CSV = b"id,amount\n1,10830\n"


class Recorder:
    """What the handlers saw, with a way to wait for it without sleeping."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, kind: str, value: Any) -> None:
        self.items.append((kind, value))
        self._changed.set()

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.items if k == kind]

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)


def status_text(status: object) -> str:
    """aiogram gives a member status as a ChatMemberStatus or a plain string."""
    return str(getattr(status, "value", status))


def menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Buy WhatsApp — $1.85", callback_data="v1:buy:wa")],
            [
                InlineKeyboardButton(text="Copy number", copy_text=CopyTextButton(text=NUMBER)),
                InlineKeyboardButton(text="Help", url="https://example.com/help"),
            ],
        ]
    )


def build_router(rec: Recorder) -> Router:
    router = Router(name="emulator-e2e")

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        name = message.from_user.first_name
        await message.answer(WELCOME.format(name=name, number=NUMBER), reply_markup=menu())

    @router.callback_query(F.data == "v1:buy:wa")
    async def buy(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        rec.add("chat_instance", query.chat_instance)
        cancel = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Cancel", callback_data="v1:cancel")]]
        )
        await query.message.edit_text(
            f"Number <code>{NUMBER}</code>: <i>waiting for the code</i>", reply_markup=cancel
        )
        await query.answer("Bought")

    @router.callback_query()
    async def unknown(query: CallbackQuery) -> None:
        rec.add("unknown_callback", query.data)
        await query.answer("This button is no longer valid", show_alert=True)

    @router.message(Command("doc"))
    async def doc(message: Message) -> None:
        await message.answer_document(
            BufferedInputFile(CSV, filename="ledger.csv"), caption="<b>Ledger</b> export"
        )

    @router.message(Command("invoice"))
    async def invoice(message: Message, command: CommandObject) -> None:
        await message.answer_invoice(
            title="Top up $1",
            description="Adds $1.00 to your balance",
            payload=command.args or "topup:1",
            currency="XTR",
            prices=[LabeledPrice(label="Top up", amount=80)],
        )

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        if query.invoice_payload == "topup:soldout":
            await query.answer(ok=False, error_message="Sold out")
        else:
            await query.answer(ok=True)

    @router.message(F.successful_payment)
    async def paid(message: Message) -> None:
        assert message.successful_payment is not None
        rec.add("paid", message.successful_payment.telegram_payment_charge_id)
        await message.answer(f"Paid {message.successful_payment.total_amount} Stars")

    @router.message(F.refunded_payment)
    async def refunded(message: Message) -> None:
        assert message.refunded_payment is not None
        rec.add("refunded", message.refunded_payment.telegram_payment_charge_id)

    @router.my_chat_member()
    async def membership(event: ChatMemberUpdated) -> None:
        old, new = event.old_chat_member.status, event.new_chat_member.status
        rec.add("my_chat_member", (event.chat.id, status_text(old), status_text(new)))

    @router.message(Command("buy"))
    async def group_buy(message: Message) -> None:
        await message.answer("Group purchase started")

    @router.message(F.text)
    async def other_text(message: Message) -> None:
        rec.add("text", message.text)

    return router


@pytest.fixture
async def emu() -> AsyncIterator[BotAPIEmulator]:
    async with BotAPIEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: BotAPIEmulator) -> AsyncIterator[Bot]:
    bot = Bot(
        TOKEN,
        session=emu.aiogram_session(),
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    yield bot
    await bot.session.close()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def dp(rec: Recorder) -> Dispatcher:
    dispatcher = Dispatcher()
    dispatcher.include_router(build_router(rec))
    return dispatcher


async def started_user(emu: BotAPIEmulator, user_id: int = 1001, name: str = "Alice") -> Any:
    user = emu.user(user_id, name, username=name.lower())
    await user.send("hi")  # a user must have written to the bot before it can write to them
    return user


# ------------------------------------------------------------------ the dispatcher end to end


async def test_start_tap_and_edit(emu: BotAPIEmulator, bot: Bot, dp: Dispatcher, rec: Recorder):
    async with emu.polling(dp, bot):
        alice = emu.user(1001, "Alice", username="alice")
        sent = await alice.send("/start")
        assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bot_command", 0, 6)]

        welcome = await alice.wait_for(lambda m: "Welcome" in m.text, after=sent)
        assert welcome.text == f"😀 Welcome, Alice! Your number: {NUMBER}"
        # UTF-16 offsets: the emoji counts as two code units.
        assert [(e.type, e.offset, e.length) for e in welcome.entities] == [
            ("bold", 3, 7),
            ("code", 32, 12),
        ]
        assert welcome.entity_texts("code") == [NUMBER]
        assert welcome.html == f"😀 <b>Welcome</b>, Alice! Your number: <code>{NUMBER}</code>"
        assert welcome.button_texts == [["Buy WhatsApp — $1.85"], ["Copy number", "Help"]]
        assert welcome.button("Help").url == "https://example.com/help"
        assert alice.copy(welcome, "Copy number") == NUMBER
        assert alice.last_message == welcome
        assert alice.bot_messages == [welcome]

        answer = await alice.press(welcome, "Buy")
        assert answer.text == "Bought"
        assert not answer.show_alert
        edited = await alice.wait_for_edit(welcome, lambda m: "waiting" in m.text)
        assert edited.message_id == welcome.message_id
        assert edited.edited == 1
        assert edited.text == f"Number {NUMBER}: waiting for the code"
        assert edited.entity_texts("italic") == ["waiting for the code"]
        assert edited.button_texts == [["Cancel"]]
        assert alice.chat == [sent, edited]
        # The version the test held is unchanged: edits make new versions.
        assert welcome.edited == 0
        assert rec.of("chat_instance") == [alice.chat_instance]

        with pytest.raises(EmulatorError, match="no button"):
            await alice.press(edited, "Buy")
        with pytest.raises(EmulatorError, match="not a copy_text button"):
            alice.copy(edited, "Cancel")


async def test_forged_callback_reaches_the_bot(
    emu: BotAPIEmulator, bot: Bot, dp: Dispatcher, rec: Recorder
):
    async with emu.polling(dp, bot):
        alice = emu.user(1001, "Alice")
        welcome = await alice.wait_for(after=await alice.send("/start"))
        answer = await alice.press(welcome, data="v1:buy:forged")
        assert answer.text == "This button is no longer valid"
        assert answer.show_alert
        assert rec.of("unknown_callback") == ["v1:buy:forged"]
        assert alice.current(welcome).edited == 0


async def test_document_upload(emu: BotAPIEmulator, bot: Bot, dp: Dispatcher):
    async with emu.polling(dp, bot):
        alice = emu.user(1001, "Alice")
        doc = await alice.wait_for(lambda m: m.document is not None, after=await alice.send("/doc"))
        assert doc.document is not None
        assert doc.document.file_name == "ledger.csv"
        assert doc.document.data == CSV
        assert doc.document.mime_type == "text/csv"
        assert doc.text == "Ledger export"
        assert doc.entity_texts("bold") == ["Ledger"]

        # The file id Telegram returned sends the same file again.
        again = await bot.send_document(alice.id, document=doc.document.file_id)
        assert again.document is not None
        assert again.document.file_name == "ledger.csv"
        assert alice.last_message is not None
        assert alice.last_message.document == doc.document
        with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
            await bot.edit_message_text("x", chat_id=alice.id, message_id=doc.message_id)


async def test_invoice_payment_redelivery_and_refund(
    emu: BotAPIEmulator, bot: Bot, dp: Dispatcher, rec: Recorder
):
    async with emu.polling(dp, bot):
        alice = emu.user(1001, "Alice")
        invoice_msg = await alice.wait_for(
            lambda m: m.invoice is not None, after=await alice.send("/invoice")
        )
        invoice = invoice_msg.invoice
        assert invoice is not None
        assert (invoice.currency, invoice.total_amount, invoice.payload) == ("XTR", 80, "topup:1")
        assert invoice_msg.all_buttons[0].pay

        update = await alice.pay(invoice_msg)
        charge_id = update["message"]["successful_payment"]["telegram_payment_charge_id"]
        assert await rec.wait("paid") == [charge_id]
        await alice.wait_for(lambda m: m.text == "Paid 80 Stars")
        assert emu.charge(charge_id) is not None

        second = await alice.pay(invoice_msg)
        second_id = second["message"]["successful_payment"]["telegram_payment_charge_id"]
        assert second_id != charge_id

        # Telegram may deliver an update twice; the emulator can make it happen.
        again = emu.push_update(update)
        assert again["update_id"] > second["update_id"]
        assert again["message"] == update["message"]
        assert await rec.wait("paid", 3) == [charge_id, second_id, charge_id]

        assert await bot.refund_star_payment(alice.id, charge_id) is True
        with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
            await bot.refund_star_payment(alice.id, charge_id)
        with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
            await bot.refund_star_payment(alice.id, "no-such-charge")
        assert await rec.wait("refunded") == [charge_id]
        refund_note = await alice.wait_for(
            lambda m: m.service == "refunded_payment", from_bot=False
        )
        assert refund_note.payment is not None
        assert refund_note.payment.refunded

        declined_invoice = await alice.wait_for(
            lambda m: m.invoice is not None, after=await alice.send("/invoice topup:soldout")
        )
        with pytest.raises(PaymentDeclined) as declined:
            await alice.pay(declined_invoice)
        assert declined.value.error_message == "Sold out"


async def test_group_privacy_mode_and_membership(
    emu: BotAPIEmulator, bot: Bot, dp: Dispatcher, rec: Recorder
):
    async with emu.polling(dp, bot):
        alice = emu.user(1001, "Alice")
        bob = emu.user(1002, "Bob")
        group = emu.group(-1001234567890, "Team")
        group.add_member(alice, "creator")
        group.add_member(bob, "member")

        with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup"):
            await bot.send_message(group.id, "hello")

        await group.add_bot(by=alice)
        assert await rec.wait("my_chat_member") == [(group.id, "left", "member")]
        assert group.messages[0].service == "new_chat_members"

        await bob.send("hello everyone", chat=group)
        await bob.send("/buy@other_bot", chat=group)
        sent = await bob.send("/buy", chat=group)
        reply = await group.wait_for(lambda m: m.text == "Group purchase started", after=sent)
        assert reply.chat_id == group.id
        delivered_texts = [
            r.update["message"].get("text") for r in emu.updates if r.kind == "message"
        ]
        # Privacy mode: plain chatter and other bots' commands never reach the bot.
        assert "hello everyone" not in delivered_texts
        assert "/buy@other_bot" not in delivered_texts
        assert "/buy" in delivered_texts

        with pytest.raises(EmulatorError, match="not a member"):
            await emu.user(1003, "Carol").send("/buy", chat=group)

        await group.remove_bot(by=alice)
        await rec.wait("my_chat_member", 2)
        with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup"):
            await bot.send_message(group.id, "still here?")


async def test_blocking_the_bot(emu: BotAPIEmulator, bot: Bot, dp: Dispatcher, rec: Recorder):
    async with emu.polling(dp, bot):
        alice = await started_user(emu)
        alice.block()
        assert await rec.wait("my_chat_member") == [(alice.id, "member", "kicked")]
        with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
            await bot.send_message(alice.id, "are you there?")
        with pytest.raises(EmulatorError, match="blocked the bot"):
            await alice.send("/start")
        alice.unblock()
        assert (await rec.wait("my_chat_member", 2))[1] == (alice.id, "kicked", "member")
        await bot.send_message(alice.id, "welcome back")
        assert alice.last_message is not None
        assert alice.last_message.text == "welcome back"


async def test_bot_without_callback_handlers_never_sees_taps(emu: BotAPIEmulator, bot: Bot):
    dispatcher = Dispatcher()
    texts = Router()

    @texts.message()
    async def answer(message: Message) -> None:
        await message.answer("menu", reply_markup=menu())

    dispatcher.include_router(texts)
    async with emu.polling(dispatcher, bot):
        alice = emu.user(1001, "Alice")
        shown = await alice.wait_for(after=await alice.send("hello"))
        assert emu.allowed_updates == frozenset({"message"})
        with pytest.raises(EmulatorError, match="allowed_updates leave out callback_query"):
            await alice.press(shown, "Buy")


async def test_listeners_get_every_change(emu: BotAPIEmulator, bot: Bot, dp: Dispatcher):
    events: list[EmulatorEvent] = []
    async_events: list[EmulatorEvent] = []

    async def async_listener(event: EmulatorEvent) -> None:
        async_events.append(event)

    emu.add_listener(events.append)
    emu.add_listener(async_listener)
    async with emu.polling(dp, bot):
        alice = emu.user(1001, "Alice")
        welcome = await alice.wait_for(after=await alice.send("/start"))
        await alice.press(welcome, "Buy")
        await bot.delete_message(alice.id, welcome.message_id)
        await alice.wait_for_delete(welcome)
    kinds = [event.kind for event in events]
    assert kinds == ["message", "message", "edit", "callback_answer", "delete"]
    assert events[3].callback_answer is not None
    assert events[3].callback_answer.text == "Bought"
    assert events[3].user_id == alice.id
    assert events[4].message is not None
    assert events[4].message.deleted
    assert alice.history[-1].deleted
    assert alice.chat == [events[0].message]
    emu.remove_listener(events.append)
    assert [event.kind for event in async_events] == kinds


# ------------------------------------------------------------------ errors through aiogram


async def test_edit_and_delete_errors(emu: BotAPIEmulator, bot: Bot):
    alice = await started_user(emu)
    sent = await bot.send_message(
        alice.id, WELCOME.format(name="A", number=NUMBER), reply_markup=menu()
    )
    with pytest.raises(TelegramBadRequest, match="message is not modified: specified new"):
        await bot.edit_message_text(
            WELCOME.format(name="A", number=NUMBER),
            chat_id=alice.id,
            message_id=sent.message_id,
            reply_markup=menu(),
        )
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=alice.id, message_id=sent.message_id, reply_markup=menu()
        )
    # Editing the text without a keyboard removes the keyboard, as in Telegram.
    await bot.edit_message_text(
        WELCOME.format(name="A", number=NUMBER), chat_id=alice.id, message_id=sent.message_id
    )
    assert alice.current(sent.message_id).buttons == ()
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=alice.chat[0].message_id)
    assert await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=alice.id, message_id=sent.message_id)


async def test_send_errors(emu: BotAPIEmulator, bot: Bot):
    stranger = emu.user(2002, "Stranger")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(stranger.id, "hello")
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(424242, "hello")
    alice = await started_user(emu)
    with pytest.raises(TelegramBadRequest, match="can't parse entities: Unsupported start tag"):
        await bot.send_message(alice.id, "<blink>x</blink>")
    with pytest.raises(TelegramBadRequest, match="can't parse entities: Can't find end tag"):
        await bot.send_message(alice.id, "<b>x")
    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="v1:" + "9" * 62)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(alice.id, "x", reply_markup=too_long)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(alice.id, "  <b> </b> ")
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(alice.id, "x", reply_to_message_id=777)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("123456")
    # Explicit entities win over parse_mode, and the reply is linked.
    from aiogram.types import MessageEntity, ReplyParameters

    reply = await bot.send_message(
        alice.id,
        "<b>not bold</b>",
        entities=[MessageEntity(type="italic", offset=0, length=3)],
        reply_parameters=ReplyParameters(message_id=alice.chat[0].message_id),
    )
    assert reply.text == "<b>not bold</b>"
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "hi"
    assert alice.current(reply.message_id).reply_to == alice.chat[0].message_id
    assert emu.calls_to("sendMessage")[-1].ok


async def test_flood_limits_answer_429_with_retry_after(emu: BotAPIEmulator, bot: Bot):
    emu.flood_limits = FloodLimits(chat_burst=2, chat_per_second=1, group_per_minute=3)
    alice = await started_user(emu)
    await bot.send_message(alice.id, "one")
    await bot.send_message(alice.id, "two")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(alice.id, "three")
    assert caught.value.retry_after == 1
    assert "Too Many Requests: retry after 1" in caught.value.message
    assert emu.flood_429_count == 1
    refused = emu.calls_to("sendMessage")[-1]
    assert (refused.error_code, refused.retry_after, refused.chat_id) == (429, 1, alice.id)

    group = emu.group(-500, "Team")
    group.add_member(alice, "creator")
    await group.add_bot(by=alice)
    for n in range(3):
        await bot.send_message(group.id, f"group {n}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(group.id, "group 3")
    assert caught.value.retry_after == 20  # 20 a minute: a token every 3 s, here 3 a minute
    assert emu.flood_429_count == 2

    emu.flood_limits = FloodLimits(global_per_second=3, chat_burst=10)
    users = [await started_user(emu, 3000 + n, f"U{n}") for n in range(4)]
    for user in users[:3]:
        await bot.send_message(user.id, "broadcast")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(users[3].id, "broadcast")
    assert emu.flood_429_count == 3


async def test_default_flood_limits_let_a_tap_handler_through(emu: BotAPIEmulator, bot: Bot):
    alice = await started_user(emu)
    sent = await bot.send_message(alice.id, "card", reply_markup=menu())
    # A handler answering a tap: a new message plus an edit or two, at once.
    await bot.send_message(alice.id, "code: 123456")
    await bot.edit_message_text("card v2", chat_id=alice.id, message_id=sent.message_id)
    await bot.edit_message_text("card v3", chat_id=alice.id, message_id=sent.message_id)
    await bot.send_message(alice.id, "refund done")
    assert emu.flood_429_count == 0


# ------------------------------------------------------------------ polling, members, commands


async def test_long_poll_wakes_on_update_and_times_out(emu: BotAPIEmulator, bot: Bot):
    loop = asyncio.get_running_loop()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await emu.wait_polling()
    started = loop.time()
    alice = emu.user(1001, "Alice")
    await alice.send("/start")
    updates = await asyncio.wait_for(poll, timeout=5)
    assert loop.time() - started < 1.0  # woken by the update, not by the 10 s timeout
    assert [u.message.text for u in updates if u.message] == ["/start"]
    record = emu.updates[-1]
    assert record.delivered_at is not None
    assert record.delivered_at >= record.created_at

    # Confirmed with offset, the update is gone; with nothing queued the poll runs its time.
    started = loop.time()
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1) == []
    assert loop.time() - started >= 0.9
    await emu.wait_confirmed()
    assert record.confirmed_at is not None

    # A second poller terminates the first, like Telegram's 409.
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await emu.wait_polling()
    second = await bot.get_updates(timeout=0)
    assert second == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first


async def test_updates_have_increasing_ids_and_calls_are_recorded(emu: BotAPIEmulator, bot: Bot):
    alice = emu.user(1001, "Alice")
    first = await alice.send("one")
    second = await alice.send("two")
    assert second.message_id == first.message_id + 1
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [1, 2]
    sent = await bot.send_message(alice.id, "three")
    assert sent.message_id == second.message_id + 1
    call = emu.calls_to("sendMessage")[0]
    assert call.chat_id == alice.id
    assert call.params["text"] == "three"
    assert call.params["parse_mode"] == "HTML"
    assert call.ok
    assert call.done_at is not None
    assert call.at <= call.done_at
    assert [c.at for c in emu.calls] == sorted(c.at for c in emu.calls)


async def test_get_chat_member_statuses(emu: BotAPIEmulator, bot: Bot):
    alice, bob, carol, dave = (emu.user(1000 + n, name) for n, name in enumerate("ABCD", 1))
    group = emu.group(-100777, "Shop")
    group.add_member(alice, "creator")
    group.add_member(bob, "member")
    group.add_member(dave, "administrator")
    update = await group.add_bot(by=alice)
    assert update["my_chat_member"]["new_chat_member"]["status"] == "member"

    async def status(user_id: int) -> str:
        member = await bot.get_chat_member(group.id, user_id)
        return status_text(member.status)

    assert await status(alice.id) == "creator"
    assert await status(bob.id) == "member"
    assert await status(carol.id) == "left"
    assert await status(dave.id) == "administrator"
    assert await status(emu.bot_id) == "member"
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await bot.get_chat_member(group.id, 999_999)

    group.add_member(bob, "kicked")
    assert await status(bob.id) == "kicked"
    await group.set_bot_status("administrator", by=alice)
    assert await status(emu.bot_id) == "administrator"
    admins = await bot.get_chat_administrators(group.id)
    assert sorted(a.user.id for a in admins) == sorted([alice.id, dave.id, emu.bot_id])

    chat = await bot.get_chat(group.id)
    assert (chat.type, chat.title) == ("group", "Shop")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(alice.id)  # she never wrote to the bot


async def test_commands_menu_button_and_get_me(emu: BotAPIEmulator, bot: Bot):
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (42, True, "test_bot")
    assert await bot.delete_webhook(drop_pending_updates=True)
    english = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="buy", description="Buy"),
    ]
    russian = [BotCommand(command="start", description="Начать")]
    assert await bot.set_my_commands(english)
    assert await bot.set_my_commands(russian, language_code="ru")
    assert await bot.set_my_commands(english[:1], scope=BotCommandScopeAllGroupChats())
    assert [c.command for c in await bot.get_my_commands()] == ["start", "buy"]
    assert [c.description for c in await bot.get_my_commands(language_code="ru")] == ["Начать"]
    groups = await bot.get_my_commands(scope=BotCommandScopeAllGroupChats())
    assert [c.command for c in groups] == ["start"]
    assert await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=5)) == []
    assert emu.commands(language_code="ru") == [{"command": "start", "description": "Начать"}]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    assert await bot.set_chat_menu_button()


# ------------------------------------------------------------------ raw HTTP, as Telegram answers


async def test_raw_http_answers(emu: BotAPIEmulator):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emu.api_url}/bot43:WRONG/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{emu.api_url}/bot{TOKEN}/sendSticker") as resp:
            assert resp.status == 404
            assert (await resp.json())["description"] == "Not Found"
        async with http.get(f"{emu.api_url}/bot{TOKEN}/GETME") as resp:
            assert (await resp.json())["result"]["username"] == "test_bot"

        alice = await started_user(emu)
        body = {
            "chat_id": alice.id,
            "text": "<i>json</i>",
            "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": [[{"text": "Go", "callback_data": "v1:go"}]]},
        }
        async with http.post(f"{emu.api_url}/bot{TOKEN}/sendMessage", json=body) as resp:
            result = (await resp.json())["result"]
        assert result["entities"] == [{"type": "italic", "offset": 0, "length": 4}]
        assert result["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "v1:go"

        form = aiohttp.FormData()
        form.add_field("chat_id", str(alice.id))
        form.add_field("document", b"%PDF-1.4", filename="receipt.pdf")
        async with http.post(f"{emu.api_url}/bot{TOKEN}/sendDocument", data=form) as resp:
            document = (await resp.json())["result"]["document"]
        assert (document["file_name"], document["file_size"]) == ("receipt.pdf", 8)
        assert document["mime_type"] == "application/pdf"


async def test_wrong_token_through_aiogram(emu: BotAPIEmulator):
    intruder = Bot("43:WRONG", session=emu.aiogram_session())
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.get_me()
    finally:
        await intruder.session.close()


async def test_wait_for_times_out_with_a_transcript(emu: BotAPIEmulator, bot: Bot):
    alice = await started_user(emu)
    await bot.send_message(alice.id, "something else")
    with pytest.raises(EmulatorTimeout) as caught:
        await alice.wait_for(lambda m: "never" in m.text, timeout=0.2)
    assert "something else" in str(caught.value)
    # Found at once when it is already there, including a message edited into shape.
    sent = await bot.send_message(alice.id, "draft")
    await bot.edit_message_text("final", chat_id=alice.id, message_id=sent.message_id)
    found: ChatMessage = await alice.wait_for(lambda m: m.text == "final", timeout=0.2)
    assert found.edited == 1


async def test_reply_keyboard_chat_action_menu_button_and_webhook_info(
    emu: BotAPIEmulator, bot: Bot
):
    from aiogram.types import (
        KeyboardButton,
        MenuButtonCommands,
        ReplyKeyboardMarkup,
        ReplyKeyboardRemove,
    )

    alice = await started_user(emu)
    keyboard = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Buy"), KeyboardButton(text="Balance")]],
        resize_keyboard=True,
    )
    sent = await bot.send_message(alice.id, "Main menu", reply_markup=keyboard)
    assert sent.reply_markup is None  # Telegram only echoes inline keyboards
    assert alice.keyboard == (("Buy", "Balance"),)
    await bot.send_message(alice.id, "Bye", reply_markup=ReplyKeyboardRemove())
    assert alice.keyboard is None

    assert await bot.send_chat_action(alice.id, "typing")
    assert await bot.set_chat_menu_button(chat_id=alice.id, menu_button=MenuButtonCommands())
    assert (await bot.get_chat_menu_button(chat_id=alice.id)).type == "commands"

    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == ("", 1)  # alice's "hi"
    await alice.send("two")
    await alice.send("three")
    # A negative offset keeps the last updates and forgets the older ones.
    updates = await bot.get_updates(offset=-1, timeout=0)
    assert [u.message.text for u in updates if u.message] == ["three"]
    assert emu.pending_update_count == 1


async def test_group_deletes_need_admin_rights(emu: BotAPIEmulator, bot: Bot):
    alice = emu.user(1001, "Alice")
    group = emu.group(-42, "Team")
    group.add_member(alice, "creator")
    await group.add_bot(by=alice)
    await emu.user(1001).send("/buy", chat=group)
    said = group.messages[-1]
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(group.id, said.message_id)
    await group.set_bot_status("administrator", by=alice)
    assert await bot.delete_message(group.id, said.message_id)
    assert said.message_id not in [m.message_id for m in group.messages]
    assert group.history[-1].deleted


async def test_polling_reports_a_dispatcher_that_fails_to_start(emu: BotAPIEmulator):
    broken = Dispatcher()

    @broken.startup()
    async def fail() -> None:
        raise RuntimeError("bad settings")

    bot = Bot(TOKEN, session=emu.aiogram_session())
    try:
        with pytest.raises(RuntimeError, match="bad settings"):
            async with emu.polling(broken, bot, timeout=5):
                pytest.fail("polling should not have started")
    finally:
        await bot.session.close()
