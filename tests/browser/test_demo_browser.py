"""The demo in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

A person opens the page, starts the bot, buys a WhatsApp number by pressing buttons, sees the
code arrive and copies it, then buys again, waits out the cancel lock, cancels and sees the
refund. Everything behind the page is real: the bot, the emulator, the sandbox DaisySim.

On a 390 px and a 320 px phone, in English and in Russian, the page is checked for what a
thumb and an eye need: no sideways scroll, buttons at least 44 px tall, every text at WCAG AA
contrast (4.5:1, computed from the page's own colours), distinct avatars, the page's own labels
in the person's language, and buttons that stay the same element while the bot redraws a card.

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
SMALL_PHONE: ViewportSize = {"width": 320, "height": 640}
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


# Run in the page: what a phone user would trip over, as a list of readable problems.
# Contrast per WCAG 2.x: relative luminance of sRGB colours, text alpha composited over what is
# behind it (every stop of a gradient wallpaper counts, the worst one decides).
AUDIT_JS = """
() => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (fg, bg) => [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat(1);
  const lum = (c) => {
    const v = c.slice(0, 3).map((x) => {
      x /= 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const backdrops = (node) => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const st = getComputedStyle(n);
      const color = parse(st.backgroundColor);
      const stops = st.backgroundImage === "none"
        ? [] : (st.backgroundImage.match(/rgba?\\([^)]+\\)/g) || []).map(parse);
      layers.push({ color, stops });
      if ((color && color[3] >= 1) || stops.length) break;
    }
    let bases = [[255, 255, 255, 1]];
    for (const layer of layers.reverse()) {
      if (layer.color && layer.color[3] > 0) bases = bases.map((b) => over(layer.color, b));
      if (layer.stops.length) bases = layer.stops.flatMap((s) => bases.map((b) => over(s, b)));
    }
    return bases;
  };
  const shown = (n) => {
    if (!n.getClientRects().length) return false;
    const st = getComputedStyle(n);
    return st.visibility !== "hidden" && st.display !== "none";
  };
  const problems = [];
  const width = window.innerWidth;
  if (document.scrollingElement.scrollWidth > width) {
    problems.push(`scrolls sideways: ${document.scrollingElement.scrollWidth} > ${width}`);
  }
  for (const b of document.querySelectorAll("button")) {
    if (!shown(b)) continue;
    const box = b.getBoundingClientRect();
    const name = (b.textContent.trim() || b.getAttribute("aria-label") || b.id).slice(0, 40);
    if (box.height < 44) problems.push(`button ${name}: ${box.height.toFixed(1)} px tall`);
    if (box.right > width + 0.5 || box.left < -0.5) problems.push(`button ${name} off screen`);
    if (b.scrollWidth > b.clientWidth + 1) problems.push(`button ${name}: label overflows`);
  }
  let checked = 0;
  for (const n of document.querySelectorAll("body *")) {
    const own = Array.from(n.childNodes).some((c) => c.nodeType === 3 && c.textContent.trim());
    if (!own || !shown(n)) continue;
    const st = getComputedStyle(n);
    const color = parse(st.color);
    let alpha = color[3];
    for (let a = n; a; a = a.parentElement) alpha *= Number(getComputedStyle(a).opacity);
    if (alpha === 0) continue; // hidden on purpose: an unrevealed spoiler
    const ink = [...color.slice(0, 3), alpha];
    const worst = Math.min(...backdrops(n).map((bg) => ratio(over(ink, bg), bg)));
    checked += 1;
    if (worst < 4.5) {
      const text = n.textContent.trim().slice(0, 30);
      problems.push(`contrast ${worst.toFixed(2)}:1 for "${text}" (${st.color})`);
    }
  }
  if (!checked) problems.push("no text checked");
  return problems;
}
"""


async def audit(page: Page, sizes: tuple[ViewportSize, ...] = (PHONE, SMALL_PHONE)) -> None:
    """The page as it is now, at each phone size: nothing a thumb or an eye trips over."""
    for size in sizes:
        await page.set_viewport_size(size)
        # Layout is synchronous on resize: the next evaluate sees the new widths.
        problems = await page.evaluate(AUDIT_JS)
        assert problems == [], (size, problems)


async def avatars(page: Page, selector: str) -> list[tuple[str, str]]:
    found = await page.locator(selector).evaluate_all(
        "(nodes) => nodes.map((n) => [n.textContent, getComputedStyle(n).backgroundColor])"
    )
    return [(text, color) for text, color in found]


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
    await expect(keyboard_button(page, "WhatsApp — $1.85")).to_have_count(1)
    # The menu and a long service list, at 390 px and at 320 px.
    await audit(page)
    await page.set_viewport_size(PHONE)
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
    # The bot redraws the card (the countdown, then the unlocked button): the buttons under a
    # finger stay the same elements, and the countdown does not tick on screen within 10 s.
    edits_before = int(await second_card.get_attribute("data-edited") or 0)
    await buttons.evaluate_all(
        """(nodes) => nodes.forEach((n) => {
             n.__steady = true;
             n.__seen = [n.textContent];
             new MutationObserver(() => n.__seen.push(n.textContent))
               .observe(n, { childList: true, subtree: true, characterData: true });
           })"""
    )
    cancel = buttons.filter(has_text="Cancel and refund")
    await expect(cancel).to_have_count(1)
    assert int(await second_card.get_attribute("data-edited") or 0) > edits_before
    steady = await buttons.evaluate_all("(nodes) => nodes.map((n) => n.__steady === true)")
    assert steady == [True, True, True]
    seen = await cancel.evaluate("(n) => n.__seen")
    assert len(seen) == 2, seen
    assert "Cancel in" in seen[0], seen
    assert "Cancel and refund" in seen[1], seen
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
        # Alice and Admin share a first letter, not an avatar: each person has their own.
        people = await avatars(page, ".person .avatar")
        assert len(set(people)) == 3, people
        assert len({text for text, _ in people}) == 3, people
        assert len(set(await avatars(page, ".chat-item .avatar"))) == 2
        await expect(page.locator("#me-chip")).to_have_text("as Alice")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await audit(page, ({"width": 1100, "height": 760},))

        # Boris speaks Russian: the bot answers him in Russian, in his own chat, and the page
        # around the chat speaks Russian to him too.
        await page.locator(f'.person[data-person-id="{BORIS_ID}"]').click()
        await expect(page.locator("#me-chip")).to_have_text("вы — Boris")
        await expect(page.locator("html")).to_have_attribute("lang", "ru")
        await expect(page.locator("#input")).to_have_attribute("placeholder", "Сообщение")
        await expect(page.locator("#send")).to_have_attribute("aria-label", "Отправить")
        await expect(page.locator("#menu-label")).to_have_text("Меню")
        await expect(page.locator("#try-as")).to_have_text("Попробуйте как")
        await expect(page.locator("#chat-sub")).to_have_text("бот")
        await page.get_by_role("button", name="ЗАПУСТИТЬ", exact=True).click()
        answer = page.locator(".msg.in").first
        await expect(answer).to_contain_text(re.compile("[А-Яа-я]{4,}"))
        await page.locator("#menu-btn").click()
        await expect(page.locator(".command").first).to_contain_text(re.compile("[А-Яа-я]"))
        await page.locator("#menu-btn").click()
        await expect(page.locator(".msg.in .kb-btn").first).to_be_visible()
        # Russian labels are longer: the menu still fits a 390 px and a 320 px phone.
        await audit(page)
        await page.set_viewport_size({"width": 1100, "height": 760})

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
        # Service notes are in his language as well.
        await expect(page.locator(".msg.service").first).to_have_text(
            "Alice добавляет DaisySim Bot в группу"
        )

        # ?lang=ru makes the page Russian whoever is shown.
        await page.goto(f"{demo.url}/?lang=ru#as={ALICE_ID}&chat={ALICE_ID}")
        await expect(page.locator("body[data-ready]")).to_have_count(1)
        await expect(page.locator("#me-chip")).to_have_text("вы — Alice")
        await expect(page.locator("#input")).to_have_attribute("placeholder", "Сообщение")

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


async def test_a_redrawn_card_keeps_its_buttons_and_ticks_at_most_every_10_s(
    tiny_web: Any, browser: Browser
) -> None:
    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(viewport=PHONE)
    # The page's clock is ours: ten seconds pass in one call, not in ten real ones.
    await context.clock.install()
    try:
        page, errors = await open_page(context, tiny_web.url)
        await page.locator("#input").fill("/card")
        await page.locator("#input").press("Enter")
        card = page.locator(".msg.in").filter(has_text="Card")
        buttons = card.locator(".kb-btn")
        await expect(buttons).to_have_text(["Tick", "⏳ Cancel in 0:30"])
        await buttons.evaluate_all("(nodes) => nodes.forEach((n) => { n.__steady = true; })")

        # A redraw that only moves the clocks arrives, and the page keeps what it shows.
        await buttons.first.click()
        await expect(card).to_have_attribute("data-edited", "1")
        await expect(buttons).to_have_text(["Tick", "⏳ Cancel in 0:30"])
        await expect(card.locator(".text")).to_contain_text("Card ⏱ 0:00")
        # Ten seconds after it was drawn, the countdown ticks in place.
        await page.clock.fast_forward(10_000)
        await expect(buttons).to_have_text(["Tick", "⏳ Cancel in 0:29"])
        await expect(card.locator(".text")).to_contain_text("Card ⏱ 0:01")
        await expect(card.locator(".meta")).to_contain_text("edited")

        # The next clock-only redraw waits again; a change of state is drawn at once.
        await buttons.first.click()
        await expect(card).to_have_attribute("data-edited", "2")
        await expect(buttons).to_have_text(["Tick", "⏳ Cancel in 0:29"])
        await buttons.first.click()
        await expect(buttons).to_have_text(["Tick", "✖️ Cancel and refund"])
        await expect(card.locator(".text")).to_contain_text("Card ⏱ 0:03")
        steady = await buttons.evaluate_all("(nodes) => nodes.map((n) => n.__steady === true)")
        assert steady == [True, True]
        assert errors == []
    finally:
        await context.close()


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
