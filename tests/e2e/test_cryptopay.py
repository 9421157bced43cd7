"""Crypto Pay top-ups end to end: the real app polling the Bot API emulator, the DaisySim
sandbox, and the local Crypto Pay counterpart, all over loopback HTTP, with a real SQLite file.

A payment is credited exactly once per invoice whether the webhook (mounted on the ops
server), the poll of getInvoices, or both at once see it, and however often the webhook comes;
a forged webhook credits nothing; an expired invoice credits nothing and the user is told.
Each test checks the ledger and runs ledger-check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App
from bot.cryptopay import parse_invoice, sign_body
from bot.cryptopay_sandbox import CryptoPayControlError, CryptoPaySandbox
from bot.emulator import BotAPIEmulator, ChatMessage, EmulatedUser
from bot.sandbox import Sandbox
from tests.conftest import TIME_SCALE, make_settings, running_app
from tests.e2e.helpers import assert_books_balanced, balance, ledger, no_traceback, start
from tests.fixtures.waiting import wait_until

WEBHOOK_PATH = "/cryptopay/webhook"
ADMIN = 900
QUIET = 3600.0  # poll seconds: the scheduled poll never runs within a test
FAST = 0.1

Factory = Callable[..., AbstractAsyncContextManager[App]]


@pytest.fixture
async def cp() -> AsyncIterator[CryptoPaySandbox]:
    # Retries soon, and for long enough that a test switching the URL never misses them all.
    retries = (0.1, 0.3, 1.0, 2.0, 4.0)
    async with CryptoPaySandbox(time_scale=TIME_SCALE, webhook_retry_delays=retries) as sb:
        yield sb


@pytest.fixture
def crypto_app(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> Factory:
    """The app with Crypto Pay on: polling every `poll` seconds, the webhook on the ops
    server (registered with the counterpart) when `webhook`."""

    def factory(*, poll: float, webhook: bool) -> AbstractAsyncContextManager[App]:
        settings = make_settings(
            tmp_path,
            sandbox,
            emulator,
            metrics_listen="127.0.0.1:0",
            cryptopay_webhook_path=WEBHOOK_PATH if webhook else None,
            cryptopay_poll_seconds=poll,
            admin_ids=str(ADMIN),
        )
        return running_app(
            settings,
            emulator,
            cryptopay_base_url_override=cp.base_url,
            cryptopay_token_override=cp.token,
        )

    return factory


def webhook_url(app: App) -> str:
    assert app.ops_server is not None
    return app.ops_server.url + WEBHOOK_PATH


async def open_crypto(user: EmulatedUser, menu: ChatMessage) -> ChatMessage:
    await user.press(menu, "Balance")
    screen = await user.wait_for_edit(menu, lambda m: "Balance:" in m.text)
    await user.press(screen, "Top up")
    amounts = await user.wait_for_edit(screen, lambda m: "Telegram Stars" in m.text)
    await user.press(amounts, "💎 Crypto")
    return await user.wait_for_edit(amounts, lambda m: "Top up with crypto" in m.text)


def is_invoice(message: ChatMessage) -> bool:
    return message.text.startswith("💎 Invoice for")


async def crypto_invoice(
    user: EmulatedUser, menu: ChatMessage, amount: str = "$5.00", *, typed: bool = False
) -> ChatMessage:
    """The pay message for `amount`, pressed as a preset or typed on the Crypto screen."""
    screen = await open_crypto(user, menu)
    before = user.messages[-1].message_id
    if typed:
        await user.send(amount)
    else:
        await user.press(screen, amount)
    return await user.wait_for(is_invoice, after=before)


def invoice_id_of(app: App, message: ChatMessage) -> Any:
    async def find() -> int | None:
        wallet = await app.repo.wallets.get_by_owner("user", message.chat_id)
        assert wallet is not None
        for invoice in await app.repo.crypto.list_for_wallet(wallet.id):
            if invoice.message_id == message.message_id:
                return invoice.invoice_id
        return None

    return wait_until(find, what="the invoice stored with its message")


def receipts(user: EmulatedUser) -> list[ChatMessage]:
    return [m for m in user.history if "Payment received" in m.text]


async def test_preset_invoice_paid_by_webhook_and_seen_by_the_poll_credits_once(
    crypto_app: Factory, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> None:
    async with crypto_app(poll=QUIET, webhook=True) as app:
        alice, menu = await start(emulator, app, 1001, funds=0)
        message = await crypto_invoice(alice, menu, "$5.00")
        assert "$5.00" in message.text
        [pay] = [b for b in message.all_buttons if b.url]
        assert pay.text == "Pay $5.00"
        invoice_id = await invoice_id_of(app, message)
        remote = await cp.control.invoice(invoice_id)
        assert pay.url == remote["bot_invoice_url"]
        assert (remote["currency_type"], remote["fiat"], remote["amount"]) == ("fiat", "USD", "5")
        assert remote["accepted_assets"] == ["USDT", "TON", "BTC"]

        # Paid before the webhook is set: then the webhook and the poll see it at once.
        await cp.control.pay(invoice_id, asset="USDT")
        await cp.control.set_webhook(webhook_url(app))
        assert app.crypto is not None
        statuses, report = await asyncio.gather(
            cp.control.resend_webhook(invoice_id), app.crypto.poll()
        )
        assert statuses == [200]
        assert report.asked == 1
        # And a poll that had fetched the paid invoice before the credit settles it again.
        late = parse_invoice(await cp.control.invoice(invoice_id))
        assert await app.crypto.settle(late, source="poll") == "duplicate"

        done = await alice.wait_for(lambda m: "Payment received" in m.text)
        assert "Payment received: $5.00 via Crypto Pay (USDT)" in done.text
        assert "Balance: $5.00" in done.text
        await alice.wait_for_edit(message, lambda m: "paid" in m.text)
        assert await balance(app, 1001) == 50_000
        entries = await ledger(app, 1001)
        assert [(e.kind, e.amount) for e in entries] == [("crypto", 50_000)]
        stored = await app.repo.crypto.get_by_invoice_id("sandbox", invoice_id)
        assert stored is not None
        assert stored.status == "paid"
        assert stored.paid_asset == "USDT"
        assert entries[0].crypto_invoice_id == stored.id
        assert len(receipts(alice)) == 1
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_the_scheduled_poll_alone_credits_a_typed_amount(
    crypto_app: Factory, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> None:
    async with crypto_app(poll=FAST, webhook=False) as app:
        bob, menu = await start(emulator, app, 1002, name="Bob", funds=0)
        # A typed amount that is not one is answered, and the next line is another try.
        screen = await open_crypto(bob, menu)
        # A word is a search, as anywhere else: the Crypto screen does not take it.
        sent = await bob.send("whats")
        found = await bob.wait_for(after=sent)
        assert "WhatsApp" in str(found.button_texts), found.text
        sent = await bob.send("7.505")
        refused = await bob.wait_for(after=sent)
        assert "Whole cents" in refused.text
        before = bob.messages[-1].message_id
        await bob.send("7.50")
        message = await bob.wait_for(is_invoice, after=before)
        assert screen.message_id != message.message_id
        invoice_id = await invoice_id_of(app, message)
        assert (await cp.control.invoice(invoice_id))["amount"] == "7.5"
        await cp.control.pay(invoice_id, asset="TON")
        done = await bob.wait_for(lambda m: "Payment received" in m.text)
        assert "$7.50 via Crypto Pay (TON)" in done.text
        # More polls change nothing: the invoice is no longer active.
        assert app.crypto is not None
        assert (await app.crypto.poll()).asked == 0
        assert await balance(app, 1002) == 75_000
        assert [(e.kind, e.amount) for e in await ledger(app, 1002)] == [("crypto", 75_000)]
        assert len(receipts(bob)) == 1
        await assert_books_balanced(app)
        no_traceback(bob)


async def test_a_webhook_delivered_three_times_credits_once(
    crypto_app: Factory, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> None:
    async with crypto_app(poll=QUIET, webhook=True) as app:
        await cp.control.set_webhook(webhook_url(app))
        alice, menu = await start(emulator, app, 1001, funds=0)
        message = await crypto_invoice(alice, menu, "$10.00")
        invoice_id = await invoice_id_of(app, message)
        await cp.control.pay(invoice_id, asset="BTC")
        await alice.wait_for(lambda m: "Payment received" in m.text)
        assert await cp.control.resend_webhook(invoice_id, times=2) == [200, 200]
        # Two more at the same moment, as a retry racing a re-send would.
        together = await asyncio.gather(*(cp.control.resend_webhook(invoice_id) for _ in "ab"))
        assert together == [[200], [200]]
        log = await cp.control.webhook_log()
        assert [a["status"] for a in log] == [200] * 5
        assert await balance(app, 1001) == 100_000
        assert [(e.kind, e.amount) for e in await ledger(app, 1001)] == [("crypto", 100_000)]
        assert len(receipts(alice)) == 1
        await assert_books_balanced(app)


async def test_an_unanswered_webhook_is_retried_and_credited_once(
    crypto_app: Factory, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> None:
    async with crypto_app(poll=QUIET, webhook=True) as app:
        # First a wrong path (404 from the ops server), then the right one: Crypto Pay
        # retries the same update until it is answered with 200.
        await cp.control.set_webhook(webhook_url(app) + "-typo")
        alice, menu = await start(emulator, app, 1001, funds=0)
        invoice_id = await invoice_id_of(app, await crypto_invoice(alice, menu, "$1.00"))
        await cp.control.pay(invoice_id)
        await wait_until(cp.control.webhook_log, what="the first attempt")
        await cp.control.set_webhook(webhook_url(app))
        await alice.wait_for(lambda m: "Payment received" in m.text)
        log = await cp.control.webhook_log()
        assert log[0]["status"] == 404
        assert log[-1]["status"] == 200
        assert await balance(app, 1001) == 10_000
        await assert_books_balanced(app)


async def post_webhook(app: App, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["crypto-pay-api-signature"] = signature
    async with httpx.AsyncClient() as http:
        return await http.post(webhook_url(app), content=body, headers=headers)


def update_for(invoice: dict[str, Any], **changes: Any) -> bytes:
    payload = {**invoice, **changes}
    update = {
        "update_id": 77,
        "update_type": "invoice_paid",
        "request_date": "2026-12-04T21:00:00.000Z",
        "payload": payload,
    }
    return json.dumps(update, separators=(",", ":")).encode()


async def test_forged_webhooks_credit_nothing(
    crypto_app: Factory,
    emulator: BotAPIEmulator,
    cp: CryptoPaySandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with crypto_app(poll=QUIET, webhook=True) as app:
        admin, _ = await start(emulator, app, ADMIN, name="Admin", funds=0)
        alice, menu = await start(emulator, app, 1001, funds=0)
        invoice_id = await invoice_id_of(app, await crypto_invoice(alice, menu, "$5.00"))
        active = await cp.control.invoice(invoice_id)
        paid_look = {"status": "paid", "paid_asset": "USDT", "paid_amount": "5"}
        real = update_for(active, **paid_look)

        # No signature, and a signature made with another token.
        assert (await post_webhook(app, real, None)).status_code == 401
        wrong = sign_body("4242:someone-else", real)
        assert (await post_webhook(app, real, wrong)).status_code == 401
        # A signed body altered after signing.
        altered = update_for(active, **{**paid_look, "amount": "500"})
        assert (await post_webhook(app, altered, sign_body(cp.token, real))).status_code == 401
        # Correctly signed, but about an invoice we never created.
        unknown = update_for(active, **{**paid_look, "invoice_id": 987_654})
        response = await post_webhook(app, unknown, sign_body(cp.token, unknown))
        assert response.json()["outcome"] == "unknown"
        # Correctly signed, ours, but for another amount or currency than we asked.
        for changed in ({"amount": "500"}, {"fiat": "EUR"}, {"hash": "IVFORGED"}):
            body = update_for(active, **{**paid_look, **changed})
            response = await post_webhook(app, body, sign_body(cp.token, body))
            assert response.json()["outcome"] == "mismatch", changed

        # Signed, but not an update at all; and an update of another type.
        junk = b"not json"
        response = await post_webhook(app, junk, sign_body(cp.token, junk))
        assert response.json()["outcome"] == "malformed"
        other = json.dumps({"update_id": 78, "update_type": "check_activated"}).encode()
        response = await post_webhook(app, other, sign_body(cp.token, other))
        assert response.json()["outcome"] == "ignored"

        assert await balance(app, 1001) == 0
        assert await ledger(app, 1001) == []
        stored = await app.repo.crypto.get_by_invoice_id("sandbox", invoice_id)
        assert stored is not None
        assert stored.status == "active"
        logged = caplog.text
        assert "webhook refused" in logged
        assert "is not one of ours" in logged
        assert "differs from what we created" in logged
        assert cp.token not in logged
        assert receipts(alice) == []

        # A signed "paid" that credits nothing reaches the admins: someone may have paid.
        # Unsigned ones never do (anyone can send those).
        def alerts() -> list[ChatMessage]:
            return [m for m in admin.history if "was not credited" in m.text]

        await wait_until(
            lambda: len(alerts()) == 4, what="one alert per signed report that credited nothing"
        )
        assert "987654" in alerts()[0].text
        assert "not an invoice of this bot" in alerts()[0].text
        await assert_books_balanced(app)

        # The real payment still credits, once.
        await cp.control.set_webhook(webhook_url(app))
        await cp.control.pay(invoice_id)
        await alice.wait_for(lambda m: "Payment received" in m.text)
        assert await balance(app, 1001) == 50_000
        assert len(alerts()) == 4
        await assert_books_balanced(app)


async def test_an_expired_invoice_credits_nothing_and_the_user_is_told(
    crypto_app: Factory, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> None:
    async with crypto_app(poll=FAST, webhook=False) as app:
        alice, menu = await start(emulator, app, 1001, funds=0)
        message = await crypto_invoice(alice, menu, "$25.00")
        invoice_id = await invoice_id_of(app, message)
        # An hour on Crypto Pay's clock (CRYPTOPAY_INVOICE_MINUTES=60) passes.
        await cp.control.advance_clock(3601)
        ended = await alice.wait_for_edit(message, lambda m: "expired" in m.text)
        assert "The invoice for $25.00 expired unpaid; nothing was charged" in ended.text
        assert not [b for b in ended.all_buttons if b.url]  # the pay button is gone
        assert [b.text for b in ended.all_buttons] == ["💎 New invoice"]
        with pytest.raises(CryptoPayControlError):
            await cp.control.pay(invoice_id)
        stored = await app.repo.crypto.get_by_invoice_id("sandbox", invoice_id)
        assert stored is not None
        assert stored.status == "expired"
        assert await balance(app, 1001) == 0
        assert await ledger(app, 1001) == []
        assert receipts(alice) == []
        # The button starts again.
        await alice.press(ended, "💎 New invoice")
        await alice.wait_for_edit(ended, lambda m: "Top up with crypto" in m.text)
        await assert_books_balanced(app)
        no_traceback(alice)


async def test_without_crypto_pay_the_top_up_screen_has_no_crypto_button(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    settings = make_settings(tmp_path, sandbox, emulator)
    async with running_app(settings, emulator) as app:
        assert app.crypto is None
        alice, menu = await start(emulator, app, 1001, funds=0)
        await alice.press(menu, "Balance")
        screen = await alice.wait_for_edit(menu, lambda m: "Balance:" in m.text)
        await alice.press(screen, "Top up")
        amounts = await alice.wait_for_edit(screen, lambda m: "Telegram Stars" in m.text)
        assert "💎 Crypto" not in [b.text for b in amounts.all_buttons]
        assert "crypto" not in amounts.text


async def test_a_group_wallet_is_funded_by_a_crypto_invoice_anyone_pays(
    crypto_app: Factory, emulator: BotAPIEmulator, cp: CryptoPaySandbox
) -> None:
    async with crypto_app(poll=FAST, webhook=False) as app:
        alice, _ = await start(emulator, app, 1001, funds=0)
        bob = emulator.user(1002, "Bob")
        group = emulator.group(-100500, "Team")
        group.add_member(alice, "creator")
        group.add_member(bob, "member")
        await group.add_bot(by=alice)
        await group.wait_for(lambda m: "own wallet" in m.text)
        sent = await alice.send("/wallet", chat=group)
        panel = await group.wait_for(after=sent)
        await alice.press(panel, "Fund with Stars")
        stars = await group.wait_for_edit(panel, lambda m: "Choose an amount" in m.text)
        await alice.press(stars, "💎 Crypto")
        amounts = await group.wait_for_edit(stars, lambda m: "Crypto Pay invoice" in m.text)
        # Only the group's admins make invoices: Bob's tap on an amount is refused.
        answer = await bob.press(amounts, "$5.00")
        assert answer.text == "Only the group's admins can do this."
        before = group.messages[-1].message_id
        await alice.press(amounts, "$10.00")
        invoice = await group.wait_for(is_invoice, after=before)
        assert [b.text for b in invoice.all_buttons] == ["Pay $10.00"]
        wallet = await app.repo.wallets.get_by_owner("group", -100500)
        assert wallet is not None
        [stored] = await app.repo.crypto.list_for_wallet(wallet.id)
        assert (stored.user_id, stored.chat_id, stored.amount_units) == (1001, -100500, 100_000)
        # Anyone with the link pays (here "Bob"); the group wallet gets it, once.
        await cp.control.pay(stored.invoice_id, asset="TON")
        done = await group.wait_for(lambda m: "Payment received" in m.text)
        assert "$10.00 via Crypto Pay (TON) for the group wallet" in done.text
        assert "Group balance: $10.00" in done.text
        assert len(await app.repo.crypto.list_for_wallet(wallet.id)) == 1
        assert await balance(app, 1001) == 0
        group_wallet = await app.repo.wallets.get(wallet.id)
        assert group_wallet is not None
        assert group_wallet.balance == 100_000
        # The group's spending screen counts it as funding this month.
        sent = await alice.send("/spending", chat=group)
        report = await group.wait_for(after=sent)
        assert "funded in 30 days: $10.00" in report.text, report.text
        await assert_books_balanced(app)


async def test_a_pay_link_telegram_refuses_as_a_button_goes_in_the_text(
    tmp_path: Path, sandbox: Sandbox, emulator: BotAPIEmulator
) -> None:
    """Telegram refuses URL buttons it deems invalid (a local page in sandbox mode): the link
    is then in the message text, and paying still credits once."""
    async with CryptoPaySandbox(public_url="ftp://pay.invalid") as local:
        settings = make_settings(tmp_path, sandbox, emulator, cryptopay_poll_seconds=FAST)
        async with running_app(
            settings,
            emulator,
            cryptopay_base_url_override=local.base_url,
            cryptopay_token_override=local.token,
        ) as app:
            alice, menu = await start(emulator, app, 1001, funds=0)
            message = await crypto_invoice(alice, menu, "$1.00")
            assert not [b for b in message.all_buttons if b.url]
            invoice_id = await invoice_id_of(app, message)
            url = (await local.control.invoice(invoice_id))["bot_invoice_url"]
            assert url.startswith("ftp://pay.invalid/pay/")
            assert f"Pay here: {url}" in message.text
            await local.control.pay(invoice_id)
            await alice.wait_for(lambda m: "Payment received: $1.00" in m.text)
            assert await balance(app, 1001) == 10_000
            await assert_books_balanced(app)
