"""Webhook mode end to end: the emulator POSTs updates to the app's webhook server over
loopback HTTP, as Telegram would, and the app answers through the Bot API as in polling mode.

The secret-token check (no header or a wrong one: 401, nothing handled), an update delivered
twice handled once, what setWebhook told Telegram, the ops routes on the webhook server,
updates that arrive while the bot is down, and a stop (and a SIGTERM to `daisybot run`) in the
middle of an update. The tests marked `both_modes` elsewhere run the shared flows this way too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from aiogram.exceptions import TelegramConflictError

from bot import healthcheck
from bot.app import App
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from tests.conftest import (
    BOT_TOKEN,
    DAISYSIM_KEY,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    AppFactory,
    webhook_settings,
)
from tests.e2e.helpers import (
    activations,
    assert_books_balanced,
    buy_from,
    fund,
    is_card,
    ledger,
    open_services,
    start,
)
from tests.fixtures.waiting import wait_until

WHATSAPP = "WhatsApp — $1.85"
WHATSAPP_UNITS = 18_500


@pytest.fixture
def bot_mode() -> str:
    # Every test here runs the app in webhook mode (conftest's `make_settings`).
    return "webhook"


def server_url(app: App) -> str:
    assert app.webhook is not None
    return app.webhook.local_url


def duplicates(app: App) -> float:
    value = app.ops.metrics.registry.get_sample_value("daisybot_updates_duplicate_total")
    return value or 0.0


def statuses(emulator: BotAPIEmulator, update_id: int) -> list[int | None]:
    return [d.status for d in emulator.webhook_deliveries if d.update_id == update_id]


async def test_start_sets_the_webhook_with_our_url_secret_and_update_types(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    settings = bot_app.settings
    assert settings.webhook_url is not None
    assert settings.webhook_url.endswith(WEBHOOK_PATH)
    info = await bot_app.bot.get_webhook_info()
    assert info.url == settings.webhook_url
    assert info.allowed_updates == sorted(bot_app.dp.resolve_used_update_types())
    assert {"message", "callback_query", "pre_checkout_query", "my_chat_member"} <= set(
        info.allowed_updates
    )
    [call] = emulator.calls_to("setWebhook")
    assert call.params["secret_token"] == WEBHOOK_SECRET
    assert call.params.get("drop_pending_updates") in (None, False, "false")
    # While the webhook is set, Telegram refuses getUpdates.
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook"):
        await bot_app.bot.get_updates(timeout=0)
    assert emulator.calls_to("getUpdates")[-1].error_code == 409
    # The app itself never polled.
    assert len(emulator.calls_to("getUpdates")) == 1


async def test_without_the_secret_or_with_a_wrong_one_nothing_is_handled(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice, menu = await start(emulator, bot_app, 1001, funds=100_000)
    services = await open_services(alice, menu)
    before_ledger = await ledger(bot_app, alice.id)
    before_messages = len(alice.messages)

    emulator.override_webhook_secret(None)
    press = asyncio.create_task(alice.press(services, WHATSAPP, timeout=10))
    await wait_until(
        lambda: (
            emulator.updates[-1].kind == "callback_query"
            and statuses(emulator, emulator.updates[-1].update_id)[-2:] == [401, 401]
        ),
        what="the tap refused twice without the header",
    )
    tap = emulator.updates[-1]
    emulator.override_webhook_secret("not-the-secret")
    refused = len(statuses(emulator, tap.update_id))
    await wait_until(
        lambda: len(statuses(emulator, tap.update_id)) >= refused + 2,
        what="the tap refused twice with a wrong secret",
    )
    assert set(statuses(emulator, tap.update_id)) == {401}
    info = await bot_app.bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message == "Wrong response from the webhook: 401 Unauthorized"
    # Nothing was handled: no reply, no purchase, no money moved, the id not even recorded.
    assert len(alice.messages) == before_messages
    assert await activations(bot_app, alice.id) == []
    assert await ledger(bot_app, alice.id) == before_ledger
    assert await bot_app.repo.updates.count() == tap.update_id - 1

    # A request straight to the server is refused the same way, before its body is read.
    async with httpx.AsyncClient() as http:
        url = server_url(bot_app) + WEBHOOK_PATH
        bare = await http.post(url, json=tap.update)
        wrong = await http.post(
            url, json=tap.update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
        )
    assert (bare.status_code, wrong.status_code) == (401, 401)
    assert await activations(bot_app, alice.id) == []

    # With the secret back, the same update goes through, once.
    emulator.restore_webhook_secret()
    await press
    card = await alice.wait_for(is_card, after=services)
    assert "WhatsApp" in card.text
    assert [e.kind for e in await ledger(bot_app, alice.id)] == ["topup", "purchase"]
    assert len(await activations(bot_app, alice.id)) == 1
    await assert_books_balanced(bot_app)


async def test_an_update_delivered_twice_is_handled_once(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    alice = emulator.user(1002, "Bob")
    await alice.send("/start")
    menu = await alice.wait_for(lambda m: "Buy a number" in " ".join(m.button_texts[0]))
    first = emulator.updates[-1]
    emulator.redeliver(first.update_id)
    await emulator.wait_confirmed(first.update_id)
    await wait_until(lambda: duplicates(bot_app) == 1, what="the second /start skipped")
    assert first.attempts == 2
    assert [m.message_id for m in alice.messages if m.from_bot] == [menu.message_id]

    # A buy tap Telegram sends again charges once and sends one card.
    await fund(bot_app, alice.id, 100_000)
    card = await buy_from(alice, await open_services(alice, menu), WHATSAPP)
    tap = next(r for r in reversed(emulator.updates) if r.kind == "callback_query")
    emulator.redeliver(tap.update_id)
    await emulator.wait_confirmed(tap.update_id)
    await wait_until(lambda: duplicates(bot_app) == 2, what="the second tap skipped")
    assert [m.message_id for m in alice.messages if is_card(m)] == [card.message_id]
    assert [(e.kind, e.amount) for e in await ledger(bot_app, alice.id)] == [
        ("topup", 100_000),
        ("purchase", -WHATSAPP_UNITS),
    ]
    assert len(await activations(bot_app, alice.id)) == 1

    # Acknowledged like any update (so Telegram stops resending it), and nothing in the body:
    # replies go out as API calls, never in the webhook answer.
    answers = len([m for m in alice.messages if m.from_bot])
    async with httpx.AsyncClient() as http:
        again = await http.post(
            server_url(bot_app) + WEBHOOK_PATH,
            json=first.update,
            headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
        )
    assert (again.status_code, again.json()) == (200, {})
    await wait_until(lambda: duplicates(bot_app) == 3, what="the third /start skipped")
    assert len([m for m in alice.messages if m.from_bot]) == answers
    await assert_books_balanced(bot_app)


async def test_polling_after_webhook_mode_takes_the_webhook_down_first(
    app_factory: AppFactory, emulator: BotAPIEmulator
) -> None:
    async with app_factory() as app:
        await start(emulator, app, 1007)
    assert emulator.webhook_url is not None
    # The same bot started without WEBHOOK_URL: getUpdates would be refused while the webhook
    # is set, so the polling start deletes it (keeping what is pending) and polls.
    async with app_factory(webhook_url=None) as app:
        assert app.webhook is None
        assert emulator.webhook_url is None
        [call] = emulator.calls_to("deleteWebhook")
        assert call.params.get("drop_pending_updates") in (None, False, "false")
        alice = emulator.user(1007)
        answer = await alice.wait_for(after=await alice.send("/balance"))
        assert "Balance" in answer.text


async def test_metrics_health_and_readiness_on_the_webhook_server(
    bot_app: App, emulator: BotAPIEmulator
) -> None:
    assert bot_app.ops_server is None  # no METRICS_LISTEN: the webhook server serves them
    await start(emulator, bot_app, 1003)
    async with httpx.AsyncClient(base_url=server_url(bot_app)) as http:
        health = await http.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert 'daisybot_updates_total{outcome="ok",type="message"}' in metrics.text
        assert "daisybot_updates_duplicate_total 0.0" in metrics.text
        assert WEBHOOK_SECRET not in metrics.text

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await wait_until(ready, what="/readyz 200")
        # The webhook route takes POSTs only.
        assert (await http.get(WEBHOOK_PATH)).status_code == 405


async def test_the_container_health_probe_asks_the_webhook_server(bot_app: App) -> None:
    settings = bot_app.settings
    assert settings.webhook_url is not None
    env = {"WEBHOOK_URL": settings.webhook_url, "WEBHOOK_LISTEN": settings.webhook_listen}
    assert healthcheck.health_urls(env) == [server_url(bot_app) + "/healthz"]
    # The probe blocks (urllib): in a thread, so the server on this loop can answer it.
    assert await asyncio.to_thread(healthcheck.main, [], env) == 0


async def test_updates_sent_while_the_bot_is_down_arrive_after_the_next_start(
    app_factory: AppFactory, emulator: BotAPIEmulator
) -> None:
    async with app_factory() as app:
        alice, _ = await start(emulator, app, 1004)
    sent = await alice.send("/balance")
    update = emulator.updates[-1]
    await wait_until(lambda: statuses(emulator, update.update_id), what="a failed delivery")
    assert statuses(emulator, update.update_id)[0] is None  # nobody listening
    async with app_factory() as app:
        answer = await alice.wait_for(after=sent)
        assert "Balance" in answer.text
        # The new start moved the webhook to its own port; nothing was dropped.
        assert emulator.webhook_url == app.settings.webhook_url
        assert len(emulator.calls_to("setWebhook")) == 2
        await emulator.wait_confirmed()


async def test_a_stop_in_the_middle_of_an_update_lets_it_finish(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory() as app:
        alice, menu = await start(emulator, app, 1005)
        # The update's upstream call is slow; the stop comes while it waits for it.
        await sandbox.control.add_fault("apps", "delay_before", delay=0.5)
        pressed = asyncio.create_task(alice.press(menu, "Buy a number"))
        await wait_until(lambda: app.inflight.running > 0, what="the update in flight")
    # Accepted before the stop, and handled to the end after it began.
    assert (await pressed).text is None
    assert "Choose a service" in alice.current(menu).text
    assert app.inflight.running == 0
    assert not app.scheduler.running


async def test_sigterm_to_daisybot_run_in_webhook_mode_finishes_the_update(
    tmp_path: Path, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAISYSIM_", "BOT_", "TELEGRAM_", "DATABASE_", "WEBHOOK_"))
    }
    hook = webhook_settings()
    env.update(
        {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": emulator.api_url,
            "DAISYSIM_API_KEY": DAISYSIM_KEY,
            "DAISYSIM_BASE_URL": sandbox.base_url,
            "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
            "WEBHOOK_URL": hook["webhook_url"],
            "WEBHOOK_SECRET": hook["webhook_secret"],
            "WEBHOOK_LISTEN": hook["webhook_listen"],
            "LOG_LEVEL": "INFO",
        }
    )
    hooked = asyncio.create_task(emulator.wait_webhook(timeout=30))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert await hooked == hook["webhook_url"]
        alice = emulator.user(1006, "Alice", language_code="en")
        menu = await alice.wait_for(after=await alice.send("/start"), timeout=10)
        await sandbox.control.add_fault("apps", "delay_before", delay=1.0)
        pressed = asyncio.create_task(alice.press(menu, "Buy a number", timeout=10))
        tap = await _accepted_tap(emulator)
        assert tap > 0
        process.send_signal(signal.SIGTERM)
        answer = await pressed
        assert answer.text is None
        assert "Choose a service" in alice.current(menu).text
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert WEBHOOK_SECRET not in log
    assert "TEST-token" not in log
    assert "shutdown done" in log


async def _accepted_tap(emulator: BotAPIEmulator) -> int:
    """The id of the first callback query the bot's webhook accepted."""

    def accepted() -> int | None:
        taps = {r.update_id for r in emulator.updates if r.kind == "callback_query"}
        accepted = [d.update_id for d in emulator.webhook_deliveries if d.accepted]
        return next((update_id for update_id in accepted if update_id in taps), None)

    found: int | None = await wait_until(
        accepted, timeout=10, what="the tap accepted by the webhook"
    )
    assert found is not None
    return found
