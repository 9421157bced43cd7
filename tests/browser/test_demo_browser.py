"""The demo in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

A person opens the page, starts the bot, buys a WhatsApp number by pressing buttons, sees the
code arrive and copies it, then buys again, waits out the cancel lock, cancels and sees the
refund. Everything behind the page is real: the bot, the emulator, the sandbox DaisySim.

Screenshots land in test-artifacts/; with DAISYBOT_UPDATE_DOCS_SCREENSHOT=1 the phone-sized one
is also saved as docs/demo.png for the README.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "no /usr/bin/chromium (apt-get install -y chromium fonts-noto-color-emoji)",
        allow_module_level=True,
    )
pytest.importorskip("playwright.async_api", reason="no playwright module (pip install playwright)")

# Imported only once we know it is installed; the ignore keeps `mypy .` clean without it.
from playwright.async_api import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from bot.demo import Demo, DemoConfig  # noqa: E402
from bot.demo.runner import ALICE_ID, BORIS_ID, DEMO_SANDBOX_KEY, GROUP_ID  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "demo.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
# Waits for the bot and the sandbox; generous because CI machines are slow, never slept.
WAIT_MS = 15_000

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    config = DemoConfig(
        port=0,
        # Upstream time ×60: the 180 s cancel lock is 3 s, auto-cancel 10 s.
        time_scale=60,
        # Codes only when the test delivers one, so the second number stays cancellable.
        code_after=None,
        database_path=tmp_path / "demo.sqlite3",
        settings_overrides={"poll_min_interval_seconds": 0.2},
    )
    async with Demo(config) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def phone(browser: Browser, demo: Demo) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo.url)
    try:
        yield context
    finally:
        await context.close()


async def open_page(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(url)
    await expect(page.locator("body[data-ready]")).to_have_count(1)
    return page, errors


def bot_bubble(page: Page, text: str | re.Pattern[str]) -> Any:
    return page.locator(".msg.in").filter(has_text=text)


def keyboard_button(page: Page, text: str | re.Pattern[str]) -> Any:
    return page.locator(".kb-btn").filter(has_text=text)


async def test_buy_get_the_code_copy_it_then_cancel_for_a_refund(
    demo: Demo, phone: BrowserContext
) -> None:
    expect.set_options(timeout=WAIT_MS)
    page, errors = await open_page(phone, demo.url)
    ARTIFACTS.mkdir(exist_ok=True)

    # The phone layout: the chat fills the screen, nothing scrolls sideways.
    await expect(page.locator("#chat-name")).to_have_text("DaisySim Bot")
    await expect(page.locator("#sidebar")).to_be_hidden()
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"]

    await page.get_by_role("button", name="START", exact=True).click()
    await expect(page.locator(".msg.out").filter(has_text="/start")).to_have_count(1)
    await expect(bot_bubble(page, "SANDBOX")).to_have_count(1)
    # Entities are rendered, not shown as markup.
    await expect(bot_bubble(page, "SANDBOX").locator("b").first).to_be_visible()
    assert "<b>" not in await page.locator("#messages").inner_text()

    # The bot's command menu, from setMyCommands.
    await page.locator("#menu-btn").click()
    await expect(page.locator(".command").filter(has_text="/buy")).to_have_count(1)
    await page.locator("#menu-btn").click()
    await expect(page.locator("#commands")).to_be_hidden()

    await keyboard_button(page, "Buy a number").click()
    await keyboard_button(page, "WhatsApp — $1.85").click()
    card = bot_bubble(page, "waiting for the SMS")
    await expect(card).to_have_count(1)
    number = (await card.locator("code").first.inner_text()).strip()
    assert re.fullmatch(r"\+1940\d{7}", number), number

    # The SMS arrives upstream; the poller brings it to the chat by itself.
    account = await demo.sandbox.control.account(DEMO_SANDBOX_KEY)
    first = account.orders[-1]
    assert first.phone_number == number
    code = await demo.sandbox.control.deliver_code(first.activation_id)
    code_message = bot_bubble(page, f"code for {number}")
    await expect(code_message).to_contain_text(code)
    await expect(bot_bubble(page, "code received")).to_contain_text(code)  # the card, edited
    await expect(page.locator(".msg").filter(has_text="code received")).to_contain_text("edited")
    await expect(page.locator("#toast")).to_be_hidden()  # a clean picture for the README
    await page.screenshot(path=str(ARTIFACTS / "demo-phone-code.png"))
    if os.environ.get("DAISYBOT_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / "demo-phone-code.png", DOCS_SCREENSHOT)

    # Copy the code with the message's copy_text button.
    copy_code = page.locator(".msg").filter(has_text=f"code for {number}").locator(".kb-btn")
    await copy_code.filter(has_text="Copy code").click()
    await expect(page.locator("#toast")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == code

    # Buy the same again from the card, and this time no code comes.
    await keyboard_button(page, "Buy again").first.click()
    second_card = bot_bubble(page, "waiting for the SMS")
    await expect(second_card).to_have_count(1)
    # From here on the card is found by its message id: its text is about to change.
    second_card = page.locator(
        f'.msg[data-message-id="{await second_card.get_attribute("data-message-id")}"]'
    )
    second = (await second_card.locator("code").first.inner_text()).strip()
    assert second != number
    # Locked first, with a countdown; the poller redraws the card when the lock ends.
    buttons = second_card.locator(".kb-btn")
    await expect(buttons).to_have_text(
        ["📋 Copy number", "🔄 Refresh", re.compile("Cancel in 0:0\\d")]
    )
    cancel = buttons.filter(has_text="Cancel and refund")
    await expect(cancel).to_have_count(1)
    await cancel.click()
    await expect(page.locator("#toast")).to_contain_text("is back on your balance")
    await expect(second_card).to_contain_text("cancelled — $1.85 refunded")

    # The ledger agrees: $10 of play money, one WhatsApp bought, the other refunded.
    await page.locator("#input").fill("/balance")
    await page.locator("#input").press("Enter")
    await expect(bot_bubble(page, "$8.15").last).to_be_visible()
    account = await demo.sandbox.control.account(DEMO_SANDBOX_KEY)
    statuses = {o.phone_number: o.status for o in account.orders}
    assert statuses == {number: "Completed", second: "Cancelled"}

    await page.screenshot(path=str(ARTIFACTS / "demo-phone-refund.png"))
    assert errors == []
    # The emulator holds Telegram's flood limits; the bot stayed within them.
    assert demo.emulator.flood_429_count == 0


async def test_people_languages_and_the_group_on_a_wide_screen(
    demo: Demo, browser: Browser
) -> None:
    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(viewport={"width": 1100, "height": 760})
    try:
        page, errors = await open_page(context, demo.url)
        await expect(page.locator("#sidebar")).to_be_visible()
        await expect(page.locator(".person")).to_have_count(3)

        # Boris speaks Russian: the bot answers him in Russian, in his own chat.
        await page.locator(f'.person[data-person-id="{BORIS_ID}"]').click()
        await expect(page.locator("#me-chip")).to_have_text("as Boris")
        await page.get_by_role("button", name="START", exact=True).click()
        answer = page.locator(".msg.in").first
        await expect(answer).to_contain_text(re.compile("[А-Яа-я]{4,}"))
        await page.locator("#menu-btn").click()
        await expect(page.locator(".command").first).to_contain_text(re.compile("[А-Яа-я]"))
        await page.locator("#menu-btn").click()

        # Alice's chat is hers alone; the group is shared by both.
        await page.locator(f'.person[data-person-id="{ALICE_ID}"]').click()
        await expect(page.get_by_role("button", name="START", exact=True)).to_be_visible()
        await page.locator(f'.chat-item[data-chat-id="{GROUP_ID}"]').click()
        await expect(page.locator("#chat-sub")).to_contain_text("you are an admin")
        await expect(page.locator(".msg").first).to_contain_text("added DaisySim Bot")
        await page.locator("#input").fill("/help")
        await page.locator("#input").press("Enter")
        await expect(page.locator(".msg.out").filter(has_text="/help")).to_have_count(1)
        await page.locator(f'.person[data-person-id="{BORIS_ID}"]').click()
        # Boris stays in the group he shares with Alice, and sees her message as hers.
        await expect(page.locator("#chat-name")).to_have_text("Daisy Team")
        mine = page.locator(".msg.in").filter(has_text="/help")
        await expect(mine.locator(".sender")).to_have_text("Alice")

        await page.screenshot(path=str(ARTIFACTS / "demo-desktop.png"))
        assert errors == []
    finally:
        await context.close()


async def test_top_up_with_telegram_stars_in_one_tap(demo: Demo, phone: BrowserContext) -> None:
    expect.set_options(timeout=WAIT_MS)
    page, errors = await open_page(phone, demo.url)
    await page.get_by_role("button", name="START", exact=True).click()
    await keyboard_button(page, "Balance").click()
    await keyboard_button(page, "Top up").click()
    await keyboard_button(page, "$5.00").click()

    # The bot's invoice, paid with the one button Telegram shows under it.
    invoice = page.locator(".msg.in").filter(has=page.locator(".invoice"))
    await expect(invoice.locator(".price")).to_have_text("⭐ 400")
    await invoice.locator(".kb-btn.pay").click()
    await expect(page.locator(".msg.service")).to_contain_text("paid ⭐ 400")
    await expect(bot_bubble(page, "Payment received")).to_contain_text("$15.00")
    await expect(invoice.locator(".paid")).to_have_text("Paid ✓")
    payments = [c for c in demo.emulator.calls_to("answerPreCheckoutQuery") if c.ok]
    assert len(payments) == 1
    assert errors == []


@pytest.fixture
async def tiny_web() -> AsyncIterator[Any]:
    """The page over a bare emulator and a small aiogram bot that sends what the shop bot
    does not (yet): Stars invoices, documents, spoilers, alerts."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.default import DefaultBotProperties
    from aiogram.enums import ParseMode

    from bot.demo.server import DemoPerson, DemoWeb
    from bot.emulator import BotAPIEmulator, FloodLimits
    from tests.test_demo_web import ANN, TOKEN, tiny_bot

    async with BotAPIEmulator(token=TOKEN, flood=FloodLimits.off(), bot_first_name="Tiny") as emu:
        page_server = DemoWeb(emu, [DemoPerson(ANN, "Ann", "en", "user")], answer_timeout=2.0)
        bot = Bot(
            TOKEN,
            session=emu.aiogram_session(),
            default=DefaultBotProperties(parse_mode=ParseMode.HTML),
        )
        dp = Dispatcher()
        dp.include_router(tiny_bot())
        async with page_server, emu.polling(dp, bot):
            yield page_server


async def test_formatting_invoices_documents_and_alerts(tiny_web: Any, browser: Browser) -> None:
    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(viewport=PHONE)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tiny_web.url)
    try:
        page, errors = await open_page(context, tiny_web.url)
        await page.locator("#input").fill("/fmt")
        await page.locator("#input").press("Enter")
        text = page.locator(".msg.in .text").first
        await expect(text.locator("b")).to_have_text("bold")
        await expect(text.locator("i")).to_have_text("italic")
        link = text.locator("a", has_text="link")
        await expect(link).to_have_attribute("href", "https://example.org/x")
        await expect(link).to_have_attribute("target", "_blank")
        await expect(text.locator("pre code.language-python")).to_have_text('print("hi")')
        spoiler = text.locator(".spoiler")
        await expect(spoiler).to_have_text("secret")
        assert await spoiler.evaluate("e => getComputedStyle(e).color") == "rgba(0, 0, 0, 0)"
        await spoiler.click()
        await expect(spoiler).to_have_class(re.compile("revealed"))
        # Tapping monospace text copies it, like in Telegram.
        await text.locator("code.inline").click()
        await expect(page.locator("#toast")).to_have_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == "+19401234567"
        await expect(keyboard_button(page, "Site")).to_have_attribute("data-kind", "url")

        # An answer with show_alert is a dialog, not a toast.
        await keyboard_button(page, "Alert").click()
        await expect(page.locator("#alert-text")).to_have_text("Not yet: wait 30 s")
        await page.locator("#alert-ok").click()
        await expect(page.locator("#alert")).to_be_hidden()

        # A Stars invoice is paid with one button: pre-checkout, then the successful payment.
        await page.locator("#input").fill("/invoice")
        await page.locator("#input").press("Enter")
        invoice = page.locator(".msg.in").filter(has_text="Top up $10")
        await expect(invoice.locator(".price")).to_have_text("⭐ 800")
        pay = invoice.locator(".kb-btn.pay")
        await expect(pay).to_contain_text("800")
        await pay.click()
        await expect(page.locator(".msg.service")).to_have_text("Ann paid ⭐ 800")
        await expect(bot_bubble(page, "Paid 800 Stars")).to_have_count(1)
        await expect(invoice.locator(".paid")).to_have_text("Paid ✓")
        await expect(invoice.locator(".kb-btn.pay")).to_have_count(0)

        await page.locator("#input").fill("/doc")
        await page.locator("#input").press("Enter")
        document = page.locator(".msg.in a.document")
        await expect(document).to_contain_text("ledger.csv")
        async with page.expect_download() as download_info:
            await document.click()
        download = await download_info.value
        assert download.suggested_filename == "ledger.csv"
        saved = Path(await download.path())
        assert await asyncio.to_thread(saved.read_bytes) == b"a,b\n1,2\n"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "demo-formatting.png"))
        assert errors == []
    finally:
        await context.close()
