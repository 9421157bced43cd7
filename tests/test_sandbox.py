"""The DaisySim sandbox speaks the reference's wire format and semantics, over real loopback HTTP.

Long upstream durations (the 180 s cancel lock, the 1200 s lifetime, 60 s rate windows) are
crossed by advancing the sandbox clock through its control API, or by a high time scale, so
the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.sandbox import Sandbox, SandboxControlError
from tests.fixtures.waiting import wait_until

KEY = "key-one"
OTHER = "key-two"


@functools.cache
def tls() -> ssl.SSLContext:
    # One CA bundle load for the file instead of ~50 ms per client (all traffic is plain HTTP).
    return httpx.create_ssl_context()


def client(sb: Sandbox, key: str | None = KEY, timeout: float = 5.0) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.AsyncClient(base_url=sb.base_url, headers=headers, timeout=timeout, verify=tls())


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    # Time scale 1: the clock only moves when a test advances it (plus real milliseconds).
    async with Sandbox(time_scale=1, seed=7) as sandbox:
        yield sandbox


@pytest.fixture
async def api(sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with client(sb) as c:
        yield c


async def buy(api: httpx.AsyncClient, app: str = "Signal", **extra: Any) -> dict[str, Any]:
    r = await api.post("/purchase", json={"country": "USA", "app": app, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["message"] == "Number purchased successfully."
    data: dict[str, Any] = body["data"]
    return data


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    return body


TOO_EARLY = "Cancellation not yet allowed. Please wait {n} more second(s)."
PURCHASE_LIMITED = "Too many purchase attempts. Please wait {n}s."
CHECK_LIMITED = "Too many check attempts. Please wait {n}s."
CANCEL_LIMITED = "Too many cancel attempts. Please wait {n}s."


def assert_wait(message: str, template: str, left: float, scale: float, since: float) -> None:
    """`message` is `template` with the real seconds a client must wait for `left` upstream
    seconds measured from the moment `since` (time.monotonic() taken before that moment).

    Exact when the test runs quickly; on a loaded machine the real time that passed since
    `since` lowers the number, and only that much is tolerated.
    """
    elapsed = time.monotonic() - since
    prefix, suffix = template.split("{n}")
    match = re.fullmatch(re.escape(prefix) + r"(\d+)" + re.escape(suffix), message)
    assert match, message
    highest = max(1, math.ceil(left / scale))
    lowest = max(1, math.ceil((left - elapsed * scale) / scale))
    assert lowest <= int(match.group(1)) <= highest, (message, lowest, highest)


# ------------------------------------------------------------------------ simple endpoints


async def test_balance_and_countries(api: httpx.AsyncClient) -> None:
    r = await api.get("/balance")
    assert r.status_code == 200
    assert '"balance":50.0000' in r.text  # 4 decimals on the wire, like the reference
    body = r.json()
    assert body == {
        "success": True,
        "message": "OK",
        "data": {"balance": 50.0, "currency": "USD", "email": body["data"]["email"]},
    }
    assert re.fullmatch(r"[\w.-]+@sandbox\.local", body["data"]["email"])
    assert KEY not in body["data"]["email"]

    r = await api.get("/countries")
    assert r.json()["data"] == {"countries": [{"id": "USA", "name": "USA"}]}


async def test_apps_is_the_reference_catalogue(api: httpx.AsyncClient) -> None:
    r = await api.get("/apps/USA")
    assert r.status_code == 200
    assert '"price":1.0830' in r.text
    apps = r.json()["data"]
    assert [(a["code"], a["name"], a["price"]) for a in apps] == [
        ("WhatsApp", "WhatsApp", 1.85),
        ("whatsapp-(us)5", "WhatsApp 2", 0.74),
        ("Signal", "Signal", 0.6),
        ("Telegram", "Telegram", 1.4),
        ("sb_wa", "WhatsApp 3", 1.083),
        ("sb_tg", "Telegram 2", 0.45),
        ("sb_fb", "Facebook", 0.5),
    ]
    by_code = {a["code"]: a for a in apps}
    for code in ("WhatsApp", "whatsapp-(us)5", "Signal", "Telegram"):
        assert by_code[code]["providers"] == []
    assert by_code["sb_wa"]["providers"] == [
        {"provider_id": "3109", "price": 1.083, "count": 4000},
        {"provider_id": "2266", "price": 1.092, "count": 4296},
        {"provider_id": "3170", "price": 1.381, "count": 1000},
        {"provider_id": "2617", "price": 3.6, "count": 344},
    ]
    assert [p["provider_id"] for p in by_code["sb_tg"]["providers"]] == ["2266", "3109"]
    assert [p["provider_id"] for p in by_code["sb_fb"]["providers"]] == ["3109", "2266"]


async def test_invalid_country(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/apps/UK"), 422, "INVALID_COUNTRY")
    r = await api.post("/purchase", json={"country": "Canada", "app": "Signal"})
    assert_error(r, 422, "INVALID_COUNTRY")


async def test_unknown_path_and_method(api: httpx.AsyncClient, sb: Sandbox) -> None:
    assert_error(await api.get("/nothing-here"), 404, "NOT_FOUND")
    async with httpx.AsyncClient(verify=tls()) as raw:
        assert_error(await raw.get(f"{sb.root_url}/elsewhere"), 404, "NOT_FOUND")
    r = await api.delete("/balance")
    assert r.status_code == 405
    assert r.json()["success"] is False


# ----------------------------------------------------------------------------------- auth


async def test_auth_missing_or_malformed_header(sb: Sandbox) -> None:
    async with client(sb, key=None) as anonymous:
        assert_error(await anonymous.get("/balance"), 401, "UNAUTHENTICATED")
        r = await anonymous.get("/balance", headers={"Authorization": f"Basic {KEY}"})
        assert_error(r, 401, "UNAUTHENTICATED")
        r = await anonymous.get("/balance", headers={"Authorization": "Bearer"})
        assert_error(r, 401, "UNAUTHENTICATED")


async def test_any_key_opens_an_account_lazily(sb: Sandbox) -> None:
    with pytest.raises(SandboxControlError) as missing:
        await sb.control.account("fresh")
    assert missing.value.http_status == 404
    async with client(sb, key="fresh") as c:
        assert (await c.get("/balance")).json()["data"]["balance"] == 50.0
    assert (await sb.control.account("fresh")).balance_units == 500_000


async def test_restricted_keys() -> None:
    async with (
        Sandbox(keys=["alpha"], start_balance_units=12_345) as sb,
        client(sb, key="alpha") as alpha,
        client(sb, key="beta") as beta,
    ):
        assert '"balance":1.2345' in (await alpha.get("/balance")).text
        assert_error(await beta.get("/balance"), 401, "UNAUTHENTICATED")
        # An account created through the control API is accepted even so.
        await sb.control.set_account("beta", balance_units=7)
        assert (await beta.get("/balance")).json()["data"]["balance"] == 0.0007


async def test_suspended_and_locked_accounts(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.set_account(KEY, status="suspended")
    assert_error(await api.get("/balance"), 403, "ACCOUNT_SUSPENDED")
    assert_error(
        await api.post("/purchase", json={"country": "USA", "app": "Signal"}),
        403,
        "ACCOUNT_SUSPENDED",
    )
    await sb.control.set_account(KEY, status="locked")
    assert_error(await api.get("/apps/USA"), 403, "ACCOUNT_LOCKED")
    await sb.control.set_account(KEY, status="active")
    assert (await api.get("/balance")).status_code == 200


# ------------------------------------------------------------------------------- purchase


async def test_purchase_debits_and_numbers_orders(sb: Sandbox, api: httpx.AsyncClient) -> None:
    first = await buy(api, "sb_wa")
    assert first["activation_id"] == "32886"
    assert first["service"] == "WhatsApp 3"
    assert first["country"] == "USA"
    assert first["amount_charged"] == 1.083
    assert first["balance_after"] == 48.917
    assert re.fullmatch(r"\+1940\d{7}", first["phone_number"])

    second = await buy(api, "WhatsApp")
    assert second["activation_id"] == "32887"
    assert second["amount_charged"] == 1.85
    assert second["phone_number"] != first["phone_number"]

    account = await sb.control.account(KEY)
    assert account.balance_units == 500_000 - 10_830 - 18_500
    assert account.debits_units == 10_830 + 18_500
    assert [o.activation_id for o in account.orders] == ["32886", "32887"]
    assert account.orders[0].provider_id == "3109"


async def test_concurrent_purchases_are_consistent(sb: Sandbox, api: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(buy(api, "sb_fb") for _ in range(10)))
    assert len({r["activation_id"] for r in results}) == 10
    assert len({r["phone_number"] for r in results}) == 10
    assert (await sb.control.account(KEY)).balance_units == 500_000 - 10 * 5_000
    assert (await sb.control.stock())["sb_fb"][0].count == 2100 - 10


async def test_app_name_and_country_name_round_trip(api: httpx.AsyncClient) -> None:
    tag = "WhatsApp 3 · bot#ab12-Cd34 ✓ «тест» 💬"
    data = await buy(api, "sb_wa", app_name=tag, country_name="United States")
    assert data["service"] == tag
    assert data["country"] == "United States"
    order = (await api.get("/history")).json()["data"]["orders"][0]
    assert order["service"] == tag
    assert order["country"] == "United States"
    # An empty label counts as absent, as on the upstream.
    assert (await buy(api, "Signal", app_name=""))["service"] == "Signal"


async def test_purchase_business_errors(sb: Sandbox, api: httpx.AsyncClient) -> None:
    r = await api.post("/purchase", json={"country": "USA", "app": "NoSuchApp"})
    assert_error(r, 422, "PRICE_VERIFICATION_FAILED")
    r = await api.post("/purchase", json={"country": "USA", "app": "sb_wa", "provider_id": "9999"})
    assert_error(r, 422, "PRICE_VERIFICATION_FAILED")

    # provider_id means nothing to a single-pool service.
    data = await buy(api, "WhatsApp", provider_id="9999")
    assert data["amount_charged"] == 1.85

    await sb.control.set_account(KEY, balance_units=18_499)
    r = await api.post("/purchase", json={"country": "USA", "app": "WhatsApp"})
    assert_error(r, 400, "INSUFFICIENT_BALANCE")
    account = await sb.control.account(KEY)
    assert account.balance_units == 18_499
    assert len(account.orders) == 1
    # Exactly the price is enough.
    await sb.control.set_account(KEY, balance_units=18_500)
    assert (await buy(api, "WhatsApp"))["balance_after"] == 0.0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"USA"',
        b'{"app": "Signal"}',
        b'{"country": "USA"}',
        b'{"country": "USA", "app": 5}',
        b'{"country": "USA", "app": "sb_wa", "provider_id": 3109}',
        b'{"country": "USA", "app": "Signal", "app_name": ["x"]}',
        b"\xff\xfe garbage",
    ],
)
async def test_malformed_purchase_bodies_are_422(api: httpx.AsyncClient, body: bytes) -> None:
    r = await api.post("/purchase", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "VALIDATION_ERROR")


async def test_stock_pinned_pool_and_cheapest(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.set_stock("sb_wa", "3109", 1)
    pinned = await buy(api, "sb_wa", provider_id="3109")
    assert pinned["amount_charged"] == 1.083

    apps = {a["code"]: a for a in (await api.get("/apps/USA")).json()["data"]}
    wa = apps["sb_wa"]
    # An empty pool is still listed; the service price moves to the cheapest pool with stock.
    assert wa["providers"][0] == {"provider_id": "3109", "price": 1.083, "count": 0}
    assert wa["price"] == 1.092

    r = await api.post("/purchase", json={"country": "USA", "app": "sb_wa", "provider_id": "3109"})
    assert_error(r, 503, "OUT_OF_STOCK")
    cheapest = await buy(api, "sb_wa")
    assert cheapest["amount_charged"] == 1.092
    account = await sb.control.account(KEY)
    assert account.orders[-1].provider_id == "2266"
    assert account.balance_units == 500_000 - 10_830 - 10_920

    # A cancelled number goes back into its pool.
    await sb.control.advance_clock(180)
    r = await api.post(f"/cancel/{pinned['activation_id']}")
    assert r.status_code == 200
    assert (await sb.control.stock())["sb_wa"][0].count == 1


async def test_out_of_stock_everywhere(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.set_stock("sb_tg", "2266", 0)
    await sb.control.set_stock("sb_tg", "3109", 0)
    await sb.control.set_stock("Telegram", None, 0)
    apps = {a["code"]: a for a in (await api.get("/apps/USA")).json()["data"]}
    assert apps["sb_tg"]["price"] == 0.45  # nothing in stock: the cheapest overall
    assert apps["Telegram"]["price"] == 1.4
    for app in ("sb_tg", "Telegram"):
        r = await api.post("/purchase", json={"country": "USA", "app": app})
        assert_error(r, 503, "OUT_OF_STOCK")
    assert (await sb.control.account(KEY)).balance_units == 500_000


async def test_single_pool_stock_goes_down(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await buy(api, "Signal")
    await buy(api, "Signal")
    assert (await sb.control.stock())["Signal"][0].count == 998


# ---------------------------------------------------------------------------------- check


async def test_check_waiting_then_code(sb: Sandbox, api: httpx.AsyncClient) -> None:
    order = await buy(api, "sb_wa")
    aid = order["activation_id"]
    r = await api.get(f"/check/{aid}")
    assert r.json() == {
        "success": True,
        "message": "OK",
        "data": {
            "activation_id": aid,
            "status": "Waiting",
            "code": None,
            "phone_number": order["phone_number"],
        },
    }
    assert await sb.control.deliver_code(aid, "847261") == "847261"
    # Within the 15 s cache, but a code bypasses it.
    data = (await api.get(f"/check/{aid}")).json()["data"]
    assert data == {
        "activation_id": aid,
        "status": "Completed",
        "code": "847261",
        "phone_number": order["phone_number"],
    }
    history = (await api.get("/history")).json()["data"]["orders"][0]
    assert history["status"] == "Completed"
    assert history["code"] == "847261"
    assert history["completed_at"].endswith("+00:00")


async def test_check_not_found(sb: Sandbox, api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/check/99999"), 404, "NOT_FOUND")
    assert_error(await api.get("/check/abc"), 404, "NOT_FOUND")
    theirs = await buy(api)
    async with client(sb, key=OTHER) as other:
        assert_error(await other.get(f"/check/{theirs['activation_id']}"), 404, "NOT_FOUND")


async def test_check_cache_holds_waiting_for_15_seconds() -> None:
    async with Sandbox(time_scale=1, activation_lifetime=100) as short, client(short) as api:
        aid = (await buy(api))["activation_id"]
        await short.control.advance_clock(90)
        assert (await api.get(f"/check/{aid}")).json()["data"]["status"] == "Waiting"
        await short.control.advance_clock(11)  # expired now, but the Waiting answer is cached
        assert (await short.control.account(KEY)).orders[0].status == "Expired"
        assert (await api.get(f"/check/{aid}")).json()["data"]["status"] == "Waiting"
        items = (await api.post("/check-all", json={"ids": [aid]})).json()["data"]
        assert items[0]["status"] == "Waiting"
        await short.control.advance_clock(5)  # 16 s after the cached answer
        data = (await api.get(f"/check/{aid}")).json()["data"]
        assert data["status"] == "Expired"
        assert data["code"] is None
        items = (await api.post("/check-all", json={"ids": [aid]})).json()["data"]
        assert items == [{"activation_id": aid, "status": "Invalid", "code": None}]


async def test_check_all(sb: Sandbox, api: httpx.AsyncClient) -> None:
    waiting = await buy(api)
    done = await buy(api)
    cancelled = await buy(api)
    await sb.control.deliver_code(done["activation_id"], "123456")
    await sb.control.advance_clock(180)
    assert (await api.post(f"/cancel/{cancelled['activation_id']}")).status_code == 200
    async with client(sb, key=OTHER) as other:
        foreign = await buy(other)

    ids = [
        "99999",
        done["activation_id"],
        "not-a-number",
        waiting["activation_id"],
        cancelled["activation_id"],
        foreign["activation_id"],
        waiting["activation_id"],
    ]
    r = await api.post("/check-all", json={"ids": ids})
    assert r.status_code == 200
    assert r.json()["data"] == [
        {"activation_id": "99999", "status": "Not Found", "code": None},
        {
            "activation_id": done["activation_id"],
            "status": "Completed",
            "code": "123456",
            "phone_number": done["phone_number"],
        },
        {"activation_id": "not-a-number", "status": "Invalid", "code": None},
        {
            "activation_id": waiting["activation_id"],
            "status": "Waiting",
            "code": None,
            "phone_number": waiting["phone_number"],
        },
        {"activation_id": cancelled["activation_id"], "status": "Invalid", "code": None},
        {"activation_id": foreign["activation_id"], "status": "Not Found", "code": None},
        {
            "activation_id": waiting["activation_id"],
            "status": "Waiting",
            "code": None,
            "phone_number": waiting["phone_number"],
        },
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": "32886"},
        {"ids": [32886]},
        {"ids": ["1", None]},
        {"ids": [str(i) for i in range(21)]},
    ],
)
async def test_check_all_validation(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_error(await api.post("/check-all", json=body), 422, "VALIDATION_ERROR")


async def test_check_all_takes_twenty(api: httpx.AsyncClient) -> None:
    r = await api.post("/check-all", json={"ids": [str(40000 + i) for i in range(20)]})
    assert r.status_code == 200
    assert len(r.json()["data"]) == 20


# --------------------------------------------------------------------------------- cancel


async def test_cancel_lock_then_full_refund(sb: Sandbox, api: httpx.AsyncClient) -> None:
    before = (await api.get("/balance")).json()["data"]["balance"]
    bought = time.monotonic()
    order = await buy(api, "sb_wa", provider_id="2617")
    aid = order["activation_id"]

    body = assert_error(await api.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
    assert_wait(body["error"], TOO_EARLY, 180, 1, bought)  # "... wait 180 more second(s)."
    await sb.control.advance_clock(100)
    body = assert_error(await api.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
    assert_wait(body["error"], TOO_EARLY, 80, 1, bought)
    await sb.control.advance_clock(80)

    r = await api.post(f"/cancel/{aid}")
    assert r.status_code == 200
    assert '"refund":3.6000' in r.text
    assert r.json() == {
        "success": True,
        "message": "Activation cancelled and refunded.",
        "data": {"activation_id": aid, "refund": 3.6, "balance_after": before},
    }
    assert (await api.get("/balance")).json()["data"]["balance"] == before

    # A second cancel answers the refund that was made and refunds nothing more.
    again = await api.post(f"/cancel/{aid}")
    assert again.json()["data"] == {"activation_id": aid, "refund": 3.6, "balance_after": before}
    account = await sb.control.account(KEY)
    assert account.balance_units == 500_000
    assert account.refunds_units == 36_000
    assert account.orders[0].status == "Cancelled"
    data = (await api.get(f"/check/{aid}")).json()["data"]
    assert (data["status"], data["code"]) == ("Cancelled", None)


async def test_cancel_lock_seconds_are_real_seconds_under_a_time_scale() -> None:
    async with Sandbox(time_scale=60) as sb, client(sb) as api:
        bought = time.monotonic()
        aid = (await buy(api))["activation_id"]
        body = assert_error(await api.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
        assert_wait(body["error"], TOO_EARLY, 180, 60, bought)  # "... wait 3 more second(s)."
        await sb.control.advance_clock(90)  # 90 upstream seconds left: 1.5 real seconds
        body = assert_error(await api.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
        assert_wait(body["error"], TOO_EARLY, 90, 60, bought)  # "... wait 2 more second(s)."


async def test_cancel_lock_passes_in_real_time_under_a_time_scale() -> None:
    # 180 upstream seconds are 0.3 real seconds at this scale; nothing is advanced by hand.
    async with (
        Sandbox(time_scale=600, rate_limits={"cancel": (1000, 60)}) as sb,
        client(sb) as api,
    ):
        aid = (await buy(api))["activation_id"]

        async def cancelled() -> bool:
            r = await api.post(f"/cancel/{aid}")
            if r.status_code == 422:
                assert r.json()["code"] == "TOO_EARLY"
                return False
            assert r.status_code == 200
            return True

        await wait_until(cancelled, timeout=5.0, interval=0.02)
        assert (await sb.control.account(KEY)).balance_units == 500_000


async def test_cancel_code_received(sb: Sandbox, api: httpx.AsyncClient) -> None:
    order = await buy(api, "sb_wa")
    aid = order["activation_id"]
    await sb.control.deliver_code(aid, "555000")
    body = assert_error(await api.post(f"/cancel/{aid}"), 422, "CODE_RECEIVED")
    assert body["data"] == {
        "activation_id": aid,
        "phone_number": order["phone_number"],
        "service": "WhatsApp 3",
        "status": "Completed",
        "code": "555000",
    }
    await sb.control.advance_clock(5000)  # a completed order never expires or refunds
    account = await sb.control.account(KEY)
    assert account.refunds_units == 0
    assert account.orders[0].status == "Completed"


async def test_cancel_not_found(sb: Sandbox, api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/cancel/99999"), 404, "NOT_FOUND")
    async with client(sb, key=OTHER) as other:
        theirs = await buy(other)
    await sb.control.advance_clock(200)
    assert_error(await api.post(f"/cancel/{theirs['activation_id']}"), 404, "NOT_FOUND")
    assert (await sb.control.account(OTHER)).orders[0].status == "Waiting"


# --------------------------------------------------------------------------------- expiry


async def test_expiry_refunds_once(sb: Sandbox, api: httpx.AsyncClient) -> None:
    order = await buy(api, "sb_tg")
    aid = order["activation_id"]
    await sb.control.advance_clock(1190)
    assert (await sb.control.account(KEY)).orders[0].status == "Waiting"
    await sb.control.advance_clock(10)
    account = await sb.control.account(KEY)
    assert account.orders[0].status == "Expired"
    assert account.balance_units == 500_000
    assert account.refunds_units == 4_500
    assert (await sb.control.stock())["sb_tg"][0].count == 1820

    # Cancelling an expired number reports the refund already made, and makes no new one.
    r = await api.post(f"/cancel/{aid}")
    assert r.json()["data"] == {"activation_id": aid, "refund": 0.45, "balance_after": 50.0}
    assert (await sb.control.account(KEY)).refunds_units == 4_500
    assert_error(await sb_deliver(sb, aid), 409, "NOT_WAITING")
    history = (await api.get("/history", params={"status": "Expired"})).json()["data"]
    assert [o["activation_id"] for o in history["orders"]] == [aid]


async def sb_deliver(sb: Sandbox, activation_id: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=tls()) as raw:
        return await raw.post(
            f"{sb.root_url}/_control/codes", json={"activation_id": activation_id}
        )


async def test_expiry_in_real_time_under_a_time_scale() -> None:
    # A 1200 s lifetime is 0.3 real seconds at scale 4000.
    async with Sandbox(time_scale=4000) as sb, client(sb) as api:
        await buy(api, "WhatsApp")

        async def expired() -> bool:
            return (await sb.control.account(KEY)).orders[0].status == "Expired"

        await wait_until(expired)
        assert (await api.get("/balance")).json()["data"]["balance"] == 50.0


# ------------------------------------------------------------------------------ auto codes


async def test_auto_codes_arrive_by_themselves() -> None:
    async with Sandbox(time_scale=1, auto_code_after=(0.05, 0.15), seed=3) as sb, client(sb) as api:
        aid = (await buy(api))["activation_id"]
        seen: dict[str, Any] = {}

        async def completed() -> bool:
            r = await api.post("/check-all", json={"ids": [aid]})
            seen.update(r.json()["data"][0])
            return bool(seen["status"] == "Completed")

        await wait_until(completed)
        assert re.fullmatch(r"\d{6}", seen["code"])
        body = assert_error(await api.post(f"/cancel/{aid}"), 422, "CODE_RECEIVED")
        assert body["data"]["code"] == seen["code"]


async def test_auto_code_probability_zero_never_delivers() -> None:
    async with (
        Sandbox(auto_code_after=(0.0, 0.0), auto_code_probability=0.0) as sb,
        client(sb) as api,
    ):
        await buy(api)
        await sb.control.advance_clock(600)
        assert (await sb.control.account(KEY)).orders[0].status == "Waiting"


async def test_cancel_before_auto_code_prevents_it() -> None:
    async with Sandbox(auto_code_after=(300.0, 300.0)) as sb, client(sb) as api:
        aid = (await buy(api))["activation_id"]
        await sb.control.advance_clock(200)
        assert (await api.post(f"/cancel/{aid}")).status_code == 200
        await sb.control.advance_clock(200)
        order = (await sb.control.account(KEY)).orders[0]
        assert (order.status, order.code) == ("Cancelled", None)


# -------------------------------------------------------------------------------- history


async def test_history_paging_and_filter() -> None:
    async with Sandbox(rate_limits={"purchase": (1000, 60.0)}) as sb, client(sb) as api:
        empty = (await api.get("/history")).json()["data"]
        assert empty == {
            "orders": [],
            "pagination": {"current_page": 1, "per_page": 20, "total": 0, "last_page": 1},
        }
        ids = [(await buy(api))["activation_id"] for _ in range(25)]
        await sb.control.deliver_code(ids[3], "111111")
        await sb.control.deliver_code(ids[7], "222222")
        await sb.control.advance_clock(180)
        assert (await api.post(f"/cancel/{ids[5]}")).status_code == 200

        page1 = (await api.get("/history")).json()["data"]
        assert page1["pagination"] == {
            "current_page": 1,
            "per_page": 20,
            "total": 25,
            "last_page": 2,
        }
        assert [o["activation_id"] for o in page1["orders"]] == ids[::-1][:20]
        page2 = (await api.get("/history", params={"page": 2})).json()["data"]
        assert [o["activation_id"] for o in page2["orders"]] == ids[::-1][20:]
        page3 = (await api.get("/history", params={"page": 3})).json()["data"]
        assert page3["orders"] == []

        small = (await api.get("/history", params={"per_page": 10, "page": 3})).json()["data"]
        assert [o["activation_id"] for o in small["orders"]] == ids[::-1][20:]
        assert small["pagination"]["last_page"] == 3

        done = (await api.get("/history", params={"status": "Completed"})).json()["data"]
        assert [o["activation_id"] for o in done["orders"]] == [ids[7], ids[3]]
        assert done["pagination"]["total"] == 2
        cancelled = (await api.get("/history", params={"status": "Cancelled"})).json()["data"]
        assert [o["status"] for o in cancelled["orders"]] == ["Cancelled"]
        waiting = (await api.get("/history", params={"status": "Waiting"})).json()["data"]
        assert waiting["pagination"]["total"] == 22

        order = page1["orders"][0]
        assert set(order) == {
            "activation_id",
            "phone_number",
            "service",
            "country",
            "status",
            "code",
            "amount_charged",
            "created_at",
            "completed_at",
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", order["created_at"])
        assert order["completed_at"] is None
        assert order["amount_charged"] == 0.6

        big = (await api.get("/history", params={"per_page": 500})).json()["data"]
        assert big["pagination"]["per_page"] == 100

        async with client(sb, key=OTHER) as other:
            assert (await other.get("/history")).json()["data"]["pagination"]["total"] == 0


@pytest.mark.parametrize(
    "params", [{"page": "x"}, {"page": "0"}, {"per_page": "-1"}, {"status": "Lost"}]
)
async def test_history_validation(api: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert_error(await api.get("/history", params=params), 422, "VALIDATION_ERROR")


# ---------------------------------------------------------------------------- rate limits


async def test_purchase_rate_limit_seconds_and_sliding_window() -> None:
    async with Sandbox(time_scale=10) as sb, client(sb) as api:
        first = time.monotonic()
        for _ in range(10):
            await buy(api)
        r = await api.post("/purchase", json={"country": "USA", "app": "Signal"})
        body = assert_error(r, 429, "RATE_LIMITED")
        # 60 upstream seconds at scale 10: the first slot frees in 6 real seconds.
        assert_wait(body["error"], PURCHASE_LIMITED, 60, 10, first)

        await sb.control.advance_clock(30)
        for _ in range(3):  # refused requests do not take slots
            body = assert_error(
                await api.post("/purchase", json={"country": "USA", "app": "Signal"}),
                429,
                "RATE_LIMITED",
            )
            assert_wait(body["error"], PURCHASE_LIMITED, 30, 10, first)  # "... wait 3s."
        await sb.control.advance_clock(31)
        for _ in range(10):
            await buy(api)
        assert_error(
            await api.post("/purchase", json={"country": "USA", "app": "Signal"}),
            429,
            "RATE_LIMITED",
        )
        # The limit is per account.
        async with client(sb, key=OTHER) as other:
            await buy(other)

        stats = await sb.control.stats()
        assert stats.rate_limited["purchase"] == 5
        assert stats.rate_limited_total == 5
        assert stats.requests["purchase"] == 26
        assert len((await sb.control.account(KEY)).orders) == 20


async def test_rate_limit_window_slides_in_real_time() -> None:
    # 60 upstream seconds are 0.1 real seconds here.
    async with Sandbox(time_scale=600) as sb, client(sb) as api:
        for _ in range(10):
            await buy(api)

        async def allowed() -> bool:
            r = await api.post("/purchase", json={"country": "USA", "app": "Signal"})
            if r.status_code == 429:
                assert r.json()["error"] == "Too many purchase attempts. Please wait 1s."
                return False
            assert r.status_code == 200
            return True

        await wait_until(allowed)
        assert len((await sb.control.account(KEY)).orders) == 11


async def test_check_rate_limit_counts_check_and_check_all(sb: Sandbox) -> None:
    async with client(sb) as api:
        aid = (await buy(api))["activation_id"]
        first = time.monotonic()
        for i in range(60):
            if i % 2:
                r = await api.get(f"/check/{aid}")
            else:
                r = await api.post("/check-all", json={"ids": [aid]})
            assert r.status_code == 200
        body = assert_error(await api.get(f"/check/{aid}"), 429, "RATE_LIMITED")
        assert_wait(body["error"], CHECK_LIMITED, 60, 1, first)
        body = assert_error(await api.post("/check-all", json={"ids": [aid]}), 429, "RATE_LIMITED")
        assert_wait(body["error"], CHECK_LIMITED, 60, 1, first)
        # Other endpoints are not limited.
        for _ in range(70):
            assert (await api.get("/balance")).status_code == 200
        stats = await sb.control.stats()
        assert stats.rate_limited == {
            "balance": 0,
            "countries": 0,
            "apps": 0,
            "purchase": 0,
            "check": 1,
            "check-all": 1,
            "cancel": 0,
            "history": 0,
        }


async def test_cancel_rate_limit(sb: Sandbox, api: httpx.AsyncClient) -> None:
    first = time.monotonic()
    for _ in range(10):
        assert_error(await api.post("/cancel/99999"), 404, "NOT_FOUND")
    body = assert_error(await api.post("/cancel/99999"), 429, "RATE_LIMITED")
    assert_wait(body["error"], CANCEL_LIMITED, 60, 1, first)
