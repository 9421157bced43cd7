"""The sandbox's control API: injected faults of every kind, the request log, stats and reset."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.sandbox import Sandbox, SandboxControlError
from tests.fixtures.waiting import wait_until

KEY = "fault-key"
OTHER = "bystander"
PURCHASE = {"country": "USA", "app": "Signal"}


@functools.cache
def tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def client(sb: Sandbox, key: str = KEY, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sb.base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
        verify=tls(),
    )


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(time_scale=1, seed=11) as sandbox:
        yield sandbox


@pytest.fixture
async def api(sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with client(sb) as c:
        yield c


async def order_count(sb: Sandbox, key: str = KEY) -> int:
    try:
        return len((await sb.control.account(key)).orders)
    except SandboxControlError:
        return 0


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("PROVIDER_ERROR", 502),
        ("SERVER_ERROR", 500),
        ("CONCURRENT_ERROR", 409),
        ("OUT_OF_STOCK", 503),
        ("INSUFFICIENT_BALANCE", 400),
        ("PRICE_VERIFICATION_FAILED", 422),
        ("ACCOUNT_LOCKED", 403),
    ],
)
async def test_error_fault_answers_the_envelope_and_applies_nothing(
    sb: Sandbox, api: httpx.AsyncClient, code: str, status: int
) -> None:
    await sb.control.add_fault("purchase", "error", code=code)
    r = await api.post("/purchase", json=PURCHASE)
    assert r.status_code == status
    body = r.json()
    assert body["success"] is False
    assert body["code"] == code
    assert body["error"]
    assert await order_count(sb) == 0
    # One use only: the next call goes through.
    assert (await api.post("/purchase", json=PURCHASE)).status_code == 200
    assert (await sb.control.account(KEY)).balance_units == 500_000 - 6_000


async def test_rate_limited_and_too_early_faults_print_seconds(
    sb: Sandbox, api: httpx.AsyncClient
) -> None:
    await sb.control.add_fault("purchase", "error", code="RATE_LIMITED", seconds=43)
    r = await api.post("/purchase", json=PURCHASE)
    assert r.status_code == 429
    assert r.json()["error"] == "Too many purchase attempts. Please wait 43s."
    await sb.control.add_fault("check-all", "error", code="RATE_LIMITED", seconds=7)
    r = await api.post("/check-all", json={"ids": ["1"]})
    assert r.json()["error"] == "Too many check attempts. Please wait 7s."
    await sb.control.add_fault("cancel", "error", code="TOO_EARLY", seconds=94)
    r = await api.post("/cancel/1")
    assert r.status_code == 422
    assert r.json()["error"] == "Cancellation not yet allowed. Please wait 94 more second(s)."

    stats = await sb.control.stats()
    assert stats.rate_limited_total == 2
    assert stats.rate_limited["purchase"] == 1
    assert stats.rate_limited["check-all"] == 1


async def test_custom_code_message_and_status(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault(
        "balance", "error", code="MAINTENANCE", http_status=503, message="Back soon."
    )
    r = await api.get("/balance")
    assert r.status_code == 503
    assert r.json() == {"success": False, "error": "Back soon.", "code": "MAINTENANCE"}


async def test_fault_times_and_key_scope(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("balance", "error", code="SERVER_ERROR", times=2, key=KEY)
    async with client(sb, key=OTHER) as other:
        assert (await other.get("/balance")).status_code == 200  # not this account's fault
    assert (await sb.control.faults())[0]["remaining"] == 2
    assert (await api.get("/balance")).status_code == 500
    assert (await api.get("/balance")).status_code == 500
    assert (await api.get("/balance")).status_code == 200
    assert await sb.control.faults() == []


async def test_fault_for_any_account_and_clear(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("apps", "error", code="PROVIDER_ERROR", times=5)
    async with client(sb, key=OTHER) as other:
        assert (await other.get("/apps/USA")).status_code == 502
    assert (await api.get("/apps/USA")).status_code == 502
    # Other endpoints are untouched.
    assert (await api.get("/countries")).status_code == 200
    await sb.control.clear_faults()
    assert (await api.get("/apps/USA")).status_code == 200


async def test_injected_errors_do_not_take_rate_limit_slots(
    sb: Sandbox, api: httpx.AsyncClient
) -> None:
    await sb.control.add_fault("purchase", "error", code="PROVIDER_ERROR", times=5)
    for _ in range(5):
        assert (await api.post("/purchase", json=PURCHASE)).status_code == 502
    for _ in range(10):
        assert (await api.post("/purchase", json=PURCHASE)).status_code == 200


# ---------------------------------------------------------------------------------- drops


async def test_drop_before_applies_nothing(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("purchase", "drop_before")
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("/purchase", json=PURCHASE)
    # Not even the account was opened: the request never reached the API.
    with pytest.raises(SandboxControlError):
        await sb.control.account(KEY)
    entry = (await sb.control.request_log())[-1]
    assert (entry.endpoint, entry.status, entry.fault) == ("purchase", None, "drop_before")
    # The server is fine afterwards, on a fresh connection.
    assert (await api.post("/purchase", json=PURCHASE)).status_code == 200


async def test_drop_after_applies_the_purchase(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("purchase", "drop_after")
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post(
            "/purchase", json={**PURCHASE, "app_name": "Signal [tag-42]", "app": "sb_wa"}
        )
    account = await sb.control.account(KEY)
    assert account.balance_units == 500_000 - 10_830
    assert [o.service for o in account.orders] == ["Signal [tag-42]"]
    # The bot reconciles through history: the order is there, with its tag.
    history = (await api.get("/history")).json()["data"]["orders"]
    assert [o["service"] for o in history] == ["Signal [tag-42]"]


async def test_drop_after_cancel_still_refunds(sb: Sandbox, api: httpx.AsyncClient) -> None:
    aid = (await api.post("/purchase", json=PURCHASE)).json()["data"]["activation_id"]
    await sb.control.advance_clock(180)
    await sb.control.add_fault("cancel", "drop_after", key=KEY)
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post(f"/cancel/{aid}")
    assert (await sb.control.account(KEY)).balance_units == 500_000
    again = await api.post(f"/cancel/{aid}")
    assert again.json()["data"]["refund"] == 0.6


# --------------------------------------------------------------------------------- delays


async def test_delay_before_waits_then_applies(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("purchase", "delay_before", delay=1.0)
    started = time.monotonic()
    pending = asyncio.ensure_future(api.post("/purchase", json=PURCHASE))

    async def arrived() -> bool:
        return (await sb.control.stats()).requests["purchase"] == 1

    await wait_until(arrived)
    assert await order_count(sb) == 0  # not applied while it waits
    r = await pending
    assert r.status_code == 200
    assert time.monotonic() - started >= 1.0
    assert await order_count(sb) == 1


async def test_delay_after_applies_then_waits(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("purchase", "delay_after", delay=1.0)
    pending = asyncio.ensure_future(api.post("/purchase", json=PURCHASE))

    async def applied() -> bool:
        return await order_count(sb) == 1

    await wait_until(applied)
    assert not pending.done()
    r = await pending
    assert r.status_code == 200
    assert r.json()["data"]["activation_id"] == "32886"


async def test_delay_after_beyond_client_timeout_is_an_unknown_outcome(sb: Sandbox) -> None:
    await sb.control.add_fault("purchase", "delay_after", delay=1.0)
    async with client(sb, timeout=0.2) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/purchase", json=PURCHASE)
    assert await order_count(sb) == 1


async def test_stop_does_not_hang_on_an_armed_delay() -> None:
    sb = Sandbox()
    await sb.start()
    await sb.control.add_fault("balance", "delay_before", delay=60)
    async with client(sb, timeout=10.0) as api:
        pending = asyncio.ensure_future(api.get("/balance"))

        async def arrived() -> bool:
            return (await sb.control.stats()).requests["balance"] == 1

        await wait_until(arrived)
        started = time.monotonic()
        await sb.stop()
        assert time.monotonic() - started < 5
        await asyncio.wait([pending], timeout=5)
        assert pending.done()
        if pending.exception() is None:
            assert pending.result().status_code == 200


# ------------------------------------------------------------------------------ malformed


async def test_malformed_not_json(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("balance", "malformed", variant="not_json")
    r = await api.get("/balance")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


async def test_malformed_truncated_purchase_is_applied(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await sb.control.add_fault("purchase", "malformed", variant="truncated")
    r = await api.post("/purchase", json=PURCHASE)
    assert r.status_code == 200
    assert r.text.startswith('{"success":true')
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert await order_count(sb) == 1


@pytest.mark.parametrize(
    ("endpoint", "method", "path", "body"),
    [
        ("apps", "GET", "/apps/USA", None),
        ("check-all", "POST", "/check-all", {"ids": ["1"]}),
        ("history", "GET", "/history", None),
    ],
)
async def test_malformed_wrong_shape(
    sb: Sandbox,
    api: httpx.AsyncClient,
    endpoint: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await sb.control.add_fault(endpoint, "malformed", variant="wrong_shape")
    r = await api.request(method, path, json=body)
    assert r.status_code == 200
    payload = r.json()
    assert payload["success"] is True
    assert not isinstance(payload["data"], list)
    assert "orders" not in payload["data"]


# ---------------------------------------------------------------------- control validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "nowhere", "kind": "error", "code": "SERVER_ERROR"},
        {"endpoint": "balance", "kind": "explode"},
        {"endpoint": "balance", "kind": "error"},
        {"endpoint": "balance", "kind": "error", "code": "MADE_UP"},
        {"endpoint": "balance", "kind": "delay_before"},
        {"endpoint": "balance", "kind": "malformed", "variant": "xml"},
        {"endpoint": "balance", "kind": "error", "code": "SERVER_ERROR", "times": 0},
    ],
)
async def test_bad_faults_are_refused(sb: Sandbox, kwargs: dict[str, Any]) -> None:
    with pytest.raises(SandboxControlError) as refused:
        await sb.control.add_fault(**kwargs)
    assert refused.value.http_status == 422
    assert refused.value.code == "VALIDATION_ERROR"


async def test_control_errors(sb: Sandbox, api: httpx.AsyncClient) -> None:
    with pytest.raises(SandboxControlError) as missing:
        await sb.control.deliver_code("99999")
    assert missing.value.http_status == 404
    aid = (await api.post("/purchase", json=PURCHASE)).json()["data"]["activation_id"]
    code = await sb.control.deliver_code(aid)
    assert len(code) == 6
    assert code.isdigit()
    with pytest.raises(SandboxControlError) as twice:
        await sb.control.deliver_code(aid, "000000")
    assert twice.value.http_status == 409
    with pytest.raises(SandboxControlError):
        await sb.control.set_stock("sb_wa", "0000", 5)
    with pytest.raises(SandboxControlError):
        await sb.control.set_stock("NoSuchApp", None, 5)
    async with httpx.AsyncClient(base_url=sb.root_url, verify=tls()) as raw:
        r = await raw.post("/_control/accounts", json={"key": "x", "status": "frozen"})
        assert r.status_code == 422
        r = await raw.post("/_control/accounts", content=b"{oops")
        assert r.status_code == 422
        assert r.json()["code"] == "VALIDATION_ERROR"
        r = await raw.get("/_control/nothing")
        assert r.status_code == 404
        assert r.json()["success"] is False


async def test_set_stock_price_changes_what_is_charged(sb: Sandbox, api: httpx.AsyncClient) -> None:
    pool = await sb.control.set_stock("sb_wa", "3109", 10, price_units=9_999)
    assert (pool.provider_id, pool.count, pool.price_units) == ("3109", 10, 9_999)
    assert '"price":0.9999' in (await api.get("/apps/USA")).text
    r = await api.post("/purchase", json={"country": "USA", "app": "sb_wa"})
    assert r.json()["data"]["amount_charged"] == 0.9999


# ------------------------------------------------------------------------ log, stats, reset


async def test_request_log_and_stats(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await api.get("/balance")
    await api.get("/check/99999")
    await api.post("/purchase", json=PURCHASE)
    await api.get("/nowhere")
    log = await sb.control.request_log()
    assert [(e.method, e.path, e.endpoint, e.status, e.code) for e in log] == [
        ("GET", "/api/v1/server7/balance", "balance", 200, None),
        ("GET", "/api/v1/server7/check/99999", "check", 404, "NOT_FOUND"),
        ("POST", "/api/v1/server7/purchase", "purchase", 200, None),
        ("GET", "/api/v1/server7/nowhere", None, 404, "NOT_FOUND"),
    ]
    assert all(e.key == KEY for e in log)
    assert log[0].time <= log[-1].time
    assert log[0].clock <= log[-1].clock
    later = await sb.control.request_log(after=log[1].seq)
    assert [e.endpoint for e in later] == ["purchase", None]

    stats = await sb.control.stats()
    assert stats.requests["balance"] == 1
    assert stats.requests["check"] == 1
    assert stats.requests["purchase"] == 1
    assert stats.rate_limited_total == 0
    assert stats.time_scale == 1


async def test_reset_forgets_everything(sb: Sandbox, api: httpx.AsyncClient) -> None:
    await api.post("/purchase", json=PURCHASE)
    await sb.control.set_stock("sb_wa", "3109", 0)
    await sb.control.add_fault("balance", "error", code="SERVER_ERROR")
    await sb.control.advance_clock(5000)
    await sb.control.reset()

    assert await sb.control.faults() == []
    assert await sb.control.request_log() == []
    assert (await sb.control.stats()).requests["purchase"] == 0
    assert await sb.control.now() < 5000
    assert (await sb.control.stock())["sb_wa"][0].count == 4000
    assert await order_count(sb) == 0
    r = await api.post("/purchase", json=PURCHASE)
    assert r.json()["data"]["activation_id"] == "32886"
    assert r.json()["data"]["balance_after"] == 49.4
