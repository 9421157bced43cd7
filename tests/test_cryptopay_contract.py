"""Our Crypto Pay client against the local counterpart, and the counterpart against what the
Crypto Pay API reference documents (help.crypt.bot/crypto-pay-api): the token header, the
`ok`/`result`/`error` envelope, createInvoice's parameters and checks, getInvoices' filters,
the Invoice fields, the statuses, and webhooks signed with HMAC-SHA-256 keyed by SHA-256 of
the token, retried until answered with 200. Everything over loopback HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.cryptopay import (
    CryptoPayApiError,
    CryptoPayClient,
    CryptoPayUnauthorized,
    parse_update,
    verify_signature,
)
from bot.cryptopay_sandbox import CryptoPayControlError, CryptoPaySandbox
from tests.fixtures.waiting import wait_until

TOKEN = "1234:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # the reference's example token shape
SCALE = 60.0


@pytest.fixture
async def cp() -> AsyncIterator[CryptoPaySandbox]:
    async with CryptoPaySandbox(token=TOKEN, time_scale=SCALE) as sandbox:
        yield sandbox


@pytest.fixture
async def client(cp: CryptoPaySandbox) -> AsyncIterator[CryptoPayClient]:
    async with CryptoPayClient(cp.base_url, TOKEN, timeout=5.0) as c:
        yield c


async def raw(cp: CryptoPaySandbox, method: str, token: str | None = TOKEN, **params: Any) -> Any:
    """A request as the reference's examples make it: GET with query parameters."""
    headers = {} if token is None else {"Crypto-Pay-API-Token": token}
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{cp.base_url}/api/{method}", params=params, headers=headers)
    return response.status_code, response.json()


# --- the counterpart against the reference's documented shapes ------------------------------


async def test_get_me_as_documented(cp: CryptoPaySandbox) -> None:
    status, body = await raw(cp, "getMe")
    assert status == 200
    assert body["ok"] is True
    assert set(body["result"]) >= {"app_id", "name", "payment_processing_bot_username"}


@pytest.mark.parametrize("token", [None, "1234:wrong"])
async def test_a_missing_or_wrong_token_is_401_unauthorized(
    cp: CryptoPaySandbox, token: str | None
) -> None:
    status, body = await raw(cp, "getMe", token=token)
    assert status == 401
    assert body == {"ok": False, "error": {"code": 401, "name": "UNAUTHORIZED"}}


async def test_an_unknown_method_is_refused(cp: CryptoPaySandbox) -> None:
    status, body = await raw(cp, "transferEverything")
    assert status == 405
    assert body["ok"] is False
    assert body["error"]["name"] == "METHOD_NOT_FOUND"


async def test_create_invoice_in_fiat_with_accepted_assets(cp: CryptoPaySandbox) -> None:
    status, body = await raw(
        cp,
        "createInvoice",
        currency_type="fiat",
        fiat="USD",
        amount="5.25",
        accepted_assets="USDT,TON",
        description="Example page for $5.25!",
        payload="order-1",
        expires_in="3600",
        paid_btn_name="openBot",
        paid_btn_url="https://t.me/daisy_bot",
    )
    assert status == 200
    invoice = body["result"]
    assert invoice["status"] == "active"
    assert invoice["currency_type"] == "fiat"
    assert invoice["fiat"] == "USD"
    assert "asset" not in invoice
    assert invoice["amount"] == "5.25"  # amounts are strings
    assert invoice["accepted_assets"] == ["USDT", "TON"]
    assert invoice["payload"] == "order-1"
    assert isinstance(invoice["invoice_id"], int)
    assert invoice["hash"]
    for url in ("bot_invoice_url", "mini_app_invoice_url", "web_app_invoice_url"):
        assert invoice[url].startswith("http")
    assert invoice["created_at"].endswith("Z")
    assert "expiration_date" in invoice
    assert "paid_at" not in invoice


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"currency_type": "fiat", "fiat": "XYZ", "amount": "1"}, "FIAT_INVALID"),
        ({"currency_type": "crypto", "asset": "DOGE", "amount": "1"}, "ASSET_INVALID"),
        ({"currency_type": "barter", "amount": "1"}, "CURRENCY_TYPE_INVALID"),
        ({"asset": "TON", "amount": "-1"}, "AMOUNT_INVALID"),
        ({"asset": "TON", "amount": "ten"}, "AMOUNT_INVALID"),
        ({"asset": "TON"}, "AMOUNT_INVALID"),
        (
            {"currency_type": "fiat", "fiat": "USD", "amount": "1", "accepted_assets": "USDT,X"},
            "ACCEPTED_ASSETS_INVALID",
        ),
        ({"asset": "TON", "amount": "1", "expires_in": "0"}, "EXPIRES_IN_INVALID"),
        ({"asset": "TON", "amount": "1", "expires_in": "2678401"}, "EXPIRES_IN_INVALID"),
        ({"asset": "TON", "amount": "1", "description": "x" * 1025}, "DESCRIPTION_TOO_LONG"),
        ({"asset": "TON", "amount": "1", "payload": "x" * 4097}, "PAYLOAD_TOO_LONG"),
        ({"asset": "TON", "amount": "1", "paid_btn_name": "openBot"}, "PAID_BTN_URL_INVALID"),
        (
            {"asset": "TON", "amount": "1", "paid_btn_name": "dance", "paid_btn_url": "https://x"},
            "PAID_BTN_NAME_INVALID",
        ),
    ],
)
async def test_create_invoice_refuses_what_the_reference_does_not_allow(
    cp: CryptoPaySandbox, params: dict[str, str], name: str
) -> None:
    status, body = await raw(cp, "createInvoice", **params)
    assert status == 400
    assert body == {"ok": False, "error": {"code": 400, "name": name}}
    assert await cp.control.invoices() == []


async def test_get_invoices_answers_items(cp: CryptoPaySandbox) -> None:
    await raw(cp, "createInvoice", asset="TON", amount="1")
    status, body = await raw(cp, "getInvoices")
    assert status == 200
    assert [i["amount"] for i in body["result"]["items"]] == ["1"]


async def test_the_documented_webhook_check(cp: CryptoPaySandbox) -> None:
    """The reference's check, as its example writes it: secret = SHA-256(token), the
    signature = hex HMAC-SHA-256(secret, body as sent), in `crypto-pay-api-signature`."""
    received: list[tuple[bytes, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("crypto-pay-api-signature")))
        return web.Response(text="ok")

    async with receiver(hook) as url:
        await cp.control.set_webhook(url)
        _, created = await raw(cp, "createInvoice", asset="USDT", amount="2.5", payload="p")
        invoice_id = created["result"]["invoice_id"]
        await cp.control.pay(invoice_id)
        await wait_until(lambda: received, what="the webhook")
    body, signature = received[0]
    secret = hashlib.sha256(TOKEN.encode()).digest()
    assert signature == hmac.new(secret, body, hashlib.sha256).hexdigest()
    update = json.loads(body)
    assert update["update_type"] == "invoice_paid"
    assert isinstance(update["update_id"], int)
    assert update["request_date"].endswith("Z")
    assert update["payload"]["invoice_id"] == invoice_id
    assert update["payload"]["status"] == "paid"
    assert update["payload"]["paid_asset"] == "USDT"
    assert update["payload"]["payload"] == "p"
    assert verify_signature(TOKEN, body, signature)
    assert not verify_signature("1234:other", body, signature)
    assert not verify_signature(TOKEN, body + b" ", signature)
    assert not verify_signature(TOKEN, body, None)


class receiver:
    """A webhook endpoint on loopback for the counterpart to call."""

    def __init__(self, handler: Any) -> None:
        self._app = web.Application()
        self._app.router.add_post("/hook", handler)
        self._runner = web.AppRunner(self._app, access_log=None)

    async def __aenter__(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


async def test_an_unanswered_webhook_is_retried_with_the_same_update(
    cp: CryptoPaySandbox,
) -> None:
    bodies: list[bytes] = []

    async def flaky(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        # Two failures (a 500, then a 404-style refusal), then the app answers.
        return web.Response(status=500 if len(bodies) == 1 else 404 if len(bodies) == 2 else 200)

    async with receiver(flaky) as url:
        await cp.control.set_webhook(url)
        _, created = await raw(cp, "createInvoice", asset="TON", amount="1")
        await cp.control.pay(created["result"]["invoice_id"], asset="TON")
        await wait_until(lambda: len(bodies) == 3, what="two retries")
        log = await cp.control.webhook_log()
    assert [a["status"] for a in log] == [500, 404, 200]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    assert bodies[0] == bodies[1] == bodies[2]


async def test_a_webhook_nobody_listens_to_is_logged_as_unanswered(cp: CryptoPaySandbox) -> None:
    await cp.control.set_webhook("http://127.0.0.1:9/nothing-here")
    _, created = await raw(cp, "createInvoice", asset="TON", amount="1")
    await cp.control.pay(created["result"]["invoice_id"])
    log = await wait_until(cp.control.webhook_log, what="the first attempt")
    assert log[0]["status"] is None
    assert log[0]["error"]


# --- our client against the counterpart -----------------------------------------------------


async def test_client_get_me(client: CryptoPayClient) -> None:
    me = await client.get_me()
    assert me.payment_processing_bot_username == "CryptoBot"


async def test_client_wrong_token_raises_unauthorized(cp: CryptoPaySandbox) -> None:
    async with CryptoPayClient(cp.base_url, "1:nope") as bad:
        with pytest.raises(CryptoPayUnauthorized) as raised:
            await bad.get_me()
    assert (raised.value.code, raised.value.name) == (401, "UNAUTHORIZED")
    assert "nope" not in str(raised.value)


async def test_client_create_and_read_a_fiat_invoice(
    cp: CryptoPaySandbox, client: CryptoPayClient
) -> None:
    invoice = await client.create_invoice(
        amount=Decimal("12.50"),
        fiat="USD",
        accepted_assets=("USDT", "TON", "BTC"),
        description="Balance top-up $12.50",
        payload="v1c:7:125000",
        expires_in=600,
    )
    assert invoice.status == "active"
    assert invoice.amount == Decimal("12.5")
    assert invoice.fiat == "USD"
    assert invoice.accepted_assets == ("USDT", "TON", "BTC")
    assert invoice.payload == "v1c:7:125000"
    await cp.control.pay(invoice.invoice_id, asset="BTC")
    [paid] = await client.get_invoices(invoice_ids=[invoice.invoice_id])
    assert paid.status == "paid"
    assert paid.paid_asset == "BTC"
    assert paid.paid_amount is not None
    assert paid.paid_amount > 0
    assert paid.paid_at is not None
    assert paid.hash == invoice.hash


async def test_client_errors_are_typed(client: CryptoPayClient) -> None:
    with pytest.raises(CryptoPayApiError) as raised:
        await client.create_invoice(amount=Decimal(1), fiat="XYZ")
    assert raised.value.name == "FIAT_INVALID"
    assert raised.value.code == 400


async def test_get_invoices_filters_and_pages(
    cp: CryptoPaySandbox, client: CryptoPayClient
) -> None:
    made = [
        await client.create_invoice(amount=Decimal(n), fiat="USD", accepted_assets=("USDT",))
        for n in (1, 2, 3, 4)
    ]
    await client.create_invoice(amount=Decimal(9), asset="TON")
    await cp.control.pay(made[1].invoice_id)
    await cp.control.expire(made[2].invoice_id)
    by_id = await client.get_invoices(invoice_ids=[made[0].invoice_id, made[1].invoice_id])
    assert {i.invoice_id: i.status for i in by_id} == {
        made[0].invoice_id: "active",
        made[1].invoice_id: "paid",
    }
    active = await client.get_invoices(status="active", fiat="USD")
    assert {i.invoice_id for i in active} == {made[0].invoice_id, made[3].invoice_id}
    assert [i.invoice_id for i in await client.get_invoices(status="paid")] == [made[1].invoice_id]
    assert [i.amount for i in await client.get_invoices(asset="TON")] == [Decimal(9)]
    everything = await client.get_invoices()
    first = await client.get_invoices(count=2)
    second = await client.get_invoices(count=2, offset=2)
    assert [i.invoice_id for i in first + second] == [i.invoice_id for i in everything[:4]]
    statuses = {i.invoice_id: i.status for i in everything}
    assert statuses[made[2].invoice_id] == "expired"


async def test_an_invoice_expires_on_the_scaled_clock(
    cp: CryptoPaySandbox, client: CryptoPayClient
) -> None:
    invoice = await client.create_invoice(amount=Decimal(1), fiat="USD", expires_in=3600)
    await cp.control.advance_clock(3599)
    [still] = await client.get_invoices(invoice_ids=[invoice.invoice_id])
    assert still.status == "active"
    await cp.control.advance_clock(2)
    [gone] = await client.get_invoices(invoice_ids=[invoice.invoice_id])
    assert gone.status == "expired"
    with pytest.raises(CryptoPayControlError) as refused:
        await cp.control.pay(invoice.invoice_id)
    assert refused.value.name == "INVOICE_EXPIRED"


async def test_a_paid_invoice_cannot_be_paid_again(
    cp: CryptoPaySandbox, client: CryptoPayClient
) -> None:
    invoice = await client.create_invoice(amount=Decimal(1), fiat="USD")
    await cp.control.pay(invoice.invoice_id)
    with pytest.raises(CryptoPayControlError):
        await cp.control.pay(invoice.invoice_id)
    with pytest.raises(CryptoPayControlError):
        await cp.control.expire(invoice.invoice_id)


async def test_parse_update_reads_what_the_counterpart_sends(cp: CryptoPaySandbox) -> None:
    bodies: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response()

    async with receiver(hook) as url:
        await cp.control.set_webhook(url)
        async with CryptoPayClient(cp.base_url, TOKEN) as c:
            invoice = await c.create_invoice(amount=Decimal("3"), fiat="USD")
        await cp.control.pay(invoice.invoice_id, asset="TON")
        await wait_until(lambda: bodies, what="the webhook")
        statuses = await cp.control.resend_webhook(invoice.invoice_id, times=2)
    assert statuses == [200, 200]
    assert bodies[0] == bodies[1] == bodies[2]
    update = parse_update(json.loads(bodies[0]))
    assert update.payload is not None
    assert update.payload.invoice_id == invoice.invoice_id
    assert update.payload.paid_asset == "TON"
    assert update.payload.amount == Decimal(3)
