"""What the end-to-end tests do again and again: start a user, fund them, find the card, and
read the books. Only public APIs: the emulator's user kit, the services, the repositories."""

from __future__ import annotations

import re

from bot.app import App
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.ledger_check import check_ledger
from bot.services import money
from storage.models import Activation, LedgerEntry
from tests.fixtures.waiting import wait_until

# A phone shows these two messages with these first characters (see bot/locales/*/card.ftl).
CARD_MARK = "📱"
CODE_MARK = "🔑"
PHONE = re.compile(r"^\+1940\d{7}$")
# With this POLL_MIN_INTERVAL (upstream seconds: a real minute at the tests' scale) the poller
# looks at a new number at once and then not again within a test, so after its first look
# (`poller_looked_once`) every request the upstream sees for that number is the user's own.
QUIET_POLL_SECONDS = 3600.0


async def poller_looked_once(app: App, activation_id: int) -> None:
    poller = app.poller
    await wait_until(
        lambda: poller.follows(activation_id) and poller.stats.ids_checked >= 1,
        what="the poller's first look at the number",
    )


async def bought_and_watched(
    emu: BotAPIEmulator, app: App, user_id: int, label: str
) -> tuple[EmulatedUser, ChatMessage, Activation]:
    """A new user who bought `label` and holds its card, once the poller has looked at the
    number (so a test with a quiet poller knows the next check is the user's own)."""
    user, menu = await start(emu, app, user_id)
    card = await buy_from(user, await open_services(user, menu), label)
    activation = await with_card(app, user_id, card)
    await poller_looked_once(app, activation.id)
    return user, card, activation


async def fund(app: App, user_id: int, units: int) -> None:
    """An admin top-up, through the wallet service (the user must have written to the bot)."""
    wallet = await app.repo.wallets.get_by_owner("user", user_id)
    assert wallet is not None, "the user has no wallet yet: send /start first"
    await money.credit(app.repo, wallet.id, units, kind="topup", actor_id=0, note="test")


async def start(
    emu: BotAPIEmulator,
    app: App,
    user_id: int,
    *,
    name: str = "Alice",
    language: str = "en",
    funds: int = 100_000,
) -> tuple[EmulatedUser, ChatMessage]:
    """A user who wrote /start and got the menu, with `funds` units on their wallet."""
    user = emu.user(user_id, name, language_code=language)
    sent = await user.send("/start")
    menu = await user.wait_for(after=sent)
    if funds:
        await fund(app, user_id, funds)
    return user, menu


async def open_services(
    user: EmulatedUser, menu: ChatMessage, buy_label: str = "🛒"
) -> ChatMessage:
    """Tap Buy on the menu; the menu turns into the service list."""
    await user.press(menu, buy_label)
    return await user.wait_for_edit(menu)


def is_card(message: ChatMessage) -> bool:
    return message.text.startswith(CARD_MARK)


def is_code_message(message: ChatMessage) -> bool:
    return message.text.startswith(CODE_MARK)


async def buy_from(
    user: EmulatedUser, message: ChatMessage, label: str, *, timeout: float = 10.0
) -> ChatMessage:
    """Tap a buying button and return the card that comes for it."""
    before = user.messages[-1].message_id if user.messages else 0
    await user.press(message, label, timeout=timeout)
    return await user.wait_for(is_card, after=before, timeout=timeout)


async def balance(app: App, user_id: int) -> int:
    wallet = await app.repo.wallets.get_by_owner("user", user_id)
    assert wallet is not None
    return wallet.balance


async def ledger(app: App, user_id: int) -> list[LedgerEntry]:
    """The user's ledger entries, oldest first."""
    wallet = await app.repo.wallets.get_by_owner("user", user_id)
    assert wallet is not None
    return list(reversed(await app.repo.ledger.last_entries(wallet.id, 1000)))


async def activations(app: App, user_id: int) -> list[Activation]:
    """Newest first."""
    return await app.repo.activations.last_for_user(user_id, 1000)


async def only_activation(app: App, user_id: int) -> Activation:
    found = await activations(app, user_id)
    assert len(found) == 1, found
    return found[0]


async def assert_books_balanced(app: App) -> None:
    problems = await check_ledger(app.repo)
    assert problems == [], problems


def no_traceback(user: EmulatedUser) -> None:
    """Nothing a user sees looks like a stack trace or a raw exception."""
    for message in user.history:
        for marker in ("Traceback", "Exception", "Error:", 'File "', "aiogram", "sqlite"):
            assert marker not in message.text, message.text


async def with_card(app: App, user_id: int, card: ChatMessage) -> Activation:
    """The activation shown on `card`, once the bot has stored the card on it (the bot
    stores it right after sending, so a test may look a moment too early)."""
    found: list[Activation] = []

    async def stored() -> bool:
        for activation in await activations(app, user_id):
            if activation.card_message_id == card.message_id:
                found.append(activation)
                return True
        return False

    await wait_until(stored, what=f"a card stored for message {card.message_id}")
    return found[-1]
