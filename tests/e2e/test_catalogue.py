"""The catalogue: cached for 5 minutes, re-fetched when prices fail verification, prices with
the markup, favourites and recent purchases first. Against the sandbox over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.app import App
from bot.config import Settings
from bot.daisysim import DaisySimClient
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from bot.services.catalogue import (
    CACHE_SECONDS,
    MARKUP_FIXED_UNITS_KEY,
    MARKUP_PERCENT_KEY,
    Catalogue,
    page_of,
)
from storage.db import Database
from storage.repo import Repo
from tests.e2e.helpers import assert_books_balanced, balance, buy_from, open_services, start


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[DaisySimClient]:
    async with DaisySimClient(sandbox.base_url, "catalogue-key") as c:
        yield c


async def apps_requests(sandbox: Sandbox) -> int:
    return len([e for e in await sandbox.control.request_log() if e.endpoint == "apps"])


async def test_apps_are_cached_for_five_minutes(
    db: Database, client: DaisySimClient, sandbox: Sandbox
) -> None:
    clock = Clock()
    catalogue = Catalogue(client, Repo(db), Settings(_env_file=None), clock=clock)
    services = await catalogue.services("USA")
    assert [s.code for s in services][:3] == ["WhatsApp", "whatsapp-(us)5", "sb_wa"]
    await catalogue.services("USA")
    clock.now += CACHE_SECONDS - 1
    await catalogue.services("USA")
    assert await apps_requests(sandbox) == 1
    clock.now += 2
    await catalogue.services("USA")
    assert await apps_requests(sandbox) == 2
    catalogue.invalidate("USA")
    await catalogue.services("USA")
    assert await apps_requests(sandbox) == 3
    assert [c.id for c in await catalogue.countries()] == ["USA"]


async def test_prices_and_pools(db: Database, client: DaisySimClient, sandbox: Sandbox) -> None:
    settings = Settings(_env_file=None, markup_percent=Decimal(10))
    catalogue = Catalogue(client, Repo(db), settings)
    sb_wa = await catalogue.find("USA", "sb_wa")
    assert sb_wa is not None
    assert sb_wa.multi_pool
    assert sb_wa.price_units == 12_000  # 1.083 * 1.1 = 1.1913, rounded up to the cent
    assert [p.provider_id for p in sb_wa.pools] == ["3109", "2266", "3170", "2617"]
    quote = await catalogue.quote("USA", "sb_wa", "2617")
    assert quote is not None
    assert (quote.price_units, quote.upstream_units) == (39_600, 36_000)
    assert await catalogue.quote("USA", "sb_wa", "nope") is None
    assert await catalogue.quote("USA", "nope", None) is None

    # An admin's stored markup wins over the environment's; a bad stored value is ignored.
    repo = Repo(db)
    await repo.settings.set(MARKUP_PERCENT_KEY, "0")
    await repo.settings.set(MARKUP_FIXED_UNITS_KEY, "100")
    signal = await catalogue.find("USA", "Signal")
    assert signal is not None
    assert signal.price_units == 6_100
    await repo.settings.set(MARKUP_PERCENT_KEY, "lots")
    signal = await catalogue.find("USA", "Signal")
    assert signal is not None
    assert signal.price_units == 6_700

    # "Cheapest available" follows the stock.
    await sandbox.control.set_stock("sb_wa", "3109", 0)
    catalogue.invalidate()
    sb_wa = await catalogue.find("USA", "sb_wa")
    assert sb_wa is not None
    assert sb_wa.upstream_units == 10_920
    assert [p.provider_id for p in sb_wa.pools_in_stock()] == ["2266", "3170", "2617"]


async def test_search_and_paging(db: Database, client: DaisySimClient) -> None:
    catalogue = Catalogue(client, Repo(db), Settings(_env_file=None))
    assert [s.name for s in await catalogue.search("USA", "  TELE ")] == ["Telegram", "Telegram 2"]
    assert [s.name for s in await catalogue.search("USA", "book")] == ["Facebook"]
    assert await catalogue.search("USA", "") == []
    services = await catalogue.services("USA")
    page, number, pages = page_of(services, 5, size=3)
    assert (number, pages) == (2, 3)
    assert len(page) == 1


async def test_price_verification_failed_refetches_the_catalogue(
    bot_app: App, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    alice, menu = await start(emulator, bot_app, 7001)
    services = await open_services(alice, menu)
    assert await apps_requests(sandbox) == 1
    await sandbox.control.add_fault("purchase", "error", code="PRICE_VERIFICATION_FAILED")
    await alice.press(services, "Signal — $0.60")
    told = await alice.wait_for(lambda m: "Prices have just changed" in m.text, after=services)
    assert "you were not charged" in told.text
    assert await balance(bot_app, 7001) == 100_000  # the hold came back in full
    await alice.press(told, "Services")
    fresh = await alice.wait_for_edit(told)
    assert await apps_requests(sandbox) == 2
    card = await buy_from(alice, fresh, "Signal — $0.60")
    assert "$0.60" in card.text
    assert await balance(bot_app, 7001) == 100_000 - 6_000
    await assert_books_balanced(bot_app)
