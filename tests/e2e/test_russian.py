"""The same flows in Russian show no English: every Latin word on screen is a service name."""

from __future__ import annotations

import re
import time

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.sandbox import Sandbox
from tests.e2e.helpers import (
    assert_books_balanced,
    balance,
    buy_from,
    is_code_message,
    no_traceback,
    open_services,
    start,
    with_card,
)
from tests.fixtures.waiting import wait_until

# A /command is typed as is in every language, so it is not an English word.
LATIN_WORD = re.compile(r"(?<![/A-Za-z])[A-Za-z]{2,}")
# Names that are the same in every language: the services' own names.
ALLOWED = {"WhatsApp", "Telegram", "Signal", "Facebook"}


def english_words(message: ChatMessage) -> list[str]:
    texts = [message.text] + [b.text for b in message.all_buttons]
    return [w for text in texts for w in LATIN_WORD.findall(text) if w not in ALLOWED]


async def test_a_russian_user_buys_cancels_and_gets_a_code_without_english(
    app_factory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory() as app:
        ivan, menu = await start(emulator, app, 5001, name="Иван", language="ru")
        assert "Баланс" in menu.text
        services = await open_services(ivan, menu, "Купить номер")
        assert services.button_texts[0][0] == "WhatsApp — 1,85\xa0$"

        # The pool picker and the out-of-stock alternatives.
        await ivan.press(services, "WhatsApp 3")
        pools = await ivan.wait_for_edit(services)
        assert pools.all_buttons[0].text == "⚡ Самый дешёвый — 1,09\xa0$"
        await sandbox.control.set_stock("sb_wa", "3109", 0)
        await ivan.press(pools, "Пул 3109")
        offer = await ivan.wait_for(lambda m: "закончились" in m.text, after=pools)
        card = await buy_from(ivan, offer, "Самый дешёвый")
        bought = await with_card(app, ivan.id, card)

        # Too early to cancel, then the code by Refresh.
        early = await ivan.press(card, "Отмена через")
        assert early.text is not None
        assert early.text.startswith("Отменить можно через")
        assert bought.upstream_id is not None
        await sandbox.control.deliver_code(bought.upstream_id)
        answer = await ivan.press(card, "Обновить")
        assert answer.text == "Код пришёл!"
        await ivan.wait_for(is_code_message, after=card)

        # A second number, cancelled after the lock and refunded.
        services2 = await open_services(ivan, await _menu(ivan), "Купить номер")
        card2 = await buy_from(ivan, services2, "Signal — 0,60\xa0$")
        second = await with_card(app, ivan.id, card2)
        assert second.cancel_after is not None
        cancel_after = second.cancel_after
        await wait_until(lambda: time.time() >= cancel_after, timeout=10, what="the lock")
        done = await ivan.press(card2, "Отмена через")
        assert done.text == "Отменено: 0,60\xa0$ вернулось на баланс."

        # My numbers, the balance, help, a search, a stale button.
        for label in ("Мои номера", "Баланс", "Помощь"):
            screen = await _menu(ivan)
            await ivan.press(screen, label)
            await ivan.wait_for_edit(screen)
        sent = await ivan.send("теле")
        await ivan.wait_for(after=sent)
        sent = await ivan.send("tele")
        found = await ivan.wait_for(after=sent)
        assert "Telegram — 1,40\xa0$" in [b.text for b in found.all_buttons]
        stale = await ivan.press(found, data="v0m:b")
        assert stale.text == "Эта кнопка устарела."

        assert await balance(app, ivan.id) == 100_000 - 11_000  # pool 2266, $1.092 → $1.10
        await assert_books_balanced(app)
        no_traceback(ivan)
        # What Ivan typed is his own; everything the bot wrote is Russian.
        for message in ivan.history:
            if message.from_bot and "«tele»" not in message.text:
                assert english_words(message) == [], message.text


async def _menu(user: EmulatedUser) -> ChatMessage:
    sent = await user.send("/start")
    return await user.wait_for(after=sent)


async def test_language_follows_telegram_and_can_be_switched(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    anna, menu = await start(emulator, bot_app, 5002, name="Anna", language="en")
    assert "Balance" in menu.text
    await anna.press(menu, "Language")
    picker = await anna.wait_for_edit(menu)
    answer = await anna.press(picker, "Русский")
    assert answer.text == "Язык: русский"
    russian = anna.current(menu)
    assert "Баланс" in russian.text
    assert english_words(russian) == []
    user = await bot_app.repo.users.get(anna.id)
    assert user is not None
    assert user.language == "ru"
    # Her command menu follows the choice, though her Telegram is in English.
    await wait_until(
        lambda: bool(emulator.commands(scope={"type": "chat", "chat_id": anna.id})),
        what="Anna's own command menu",
    )
    own = {
        c["command"]: c["description"]
        for c in emulator.commands(scope={"type": "chat", "chat_id": anna.id})
    }
    assert own["buy"] == "Купить номер"
    assert "admin" not in own
    # Telegram's language_code only sets the first language; the choice sticks.
    sent = await anna.send("/start")
    assert "Баланс" in (await anna.wait_for(after=sent)).text
