"""DaisySimClient against httpx.MockTransport: parsing, errors, retries and rate limits.

MockTransport stands in for the network only; every line of the client under test is real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.daisysim import (
    COMPLETED,
    NOT_FOUND,
    WAITING,
    AccountLocked,
    AccountSuspended,
    APIError,
    CodeReceived,
    ConcurrentError,
    DaisySimClient,
    InsufficientBalance,
    InvalidCountry,
    MalformedResponse,
    NotFound,
    OutOfStock,
    PriceVerificationFailed,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    RateLimits,
    ServerError,
    TooEarly,
    TransportError,
    Unauthenticated,
    UnknownAPIError,
)

BASE = "https://daisysim.test/api/v1/server7"
KEY = "sk-test-SECRET-4242"

# The reference's JSON examples, verbatim except for its // comments (not JSON).
BALANCE = """{"success": true, "message": "OK", "data": {"balance": 14.2500, "currency": "USD",
"email": "[email protected]"}}"""
COUNTRIES = """{"success": true, "message": "OK", "data": {"countries": [
{ "id": "USA", "name": "USA" }]}}"""
APPS = """{"success": true, "message": "OK", "data": [
{"code": "WhatsApp", "name": "WhatsApp", "price": 1.8500, "providers": []},
{"code": "whatsapp-(us)5", "name": "WhatsApp 2", "price": 0.7400, "providers": []},
{"code": "Signal", "name": "Signal", "price": 0.6000, "providers": []},
{"code": "Telegram", "name": "Telegram", "price": 1.4000, "providers": []},
{"code": "sb_wa", "name": "WhatsApp 3", "price": 1.0830, "providers": [
  { "provider_id": "3109", "price": 1.0830, "count": 4000 },
  { "provider_id": "2266", "price": 1.0920, "count": 4296 },
  { "provider_id": "3170", "price": 1.3810, "count": 1000 },
  { "provider_id": "2617", "price": 3.6000, "count": 344 }]},
{"code": "sb_tg", "name": "Telegram 2", "price": 0.4500, "providers": [
  { "provider_id": "2266", "price": 0.4500, "count": 1820 },
  { "provider_id": "3109", "price": 0.6000, "count": 980 }]},
{"code": "sb_fb", "name": "Facebook", "price": 0.5000, "providers": [
  { "provider_id": "3109", "price": 0.5000, "count": 2100 },
  { "provider_id": "2266", "price": 0.6500, "count": 890 }]}]}"""
PURCHASE = """{"success": true, "message": "Number purchased successfully.", "data": {
"activation_id": "32886", "phone_number": "+19401234567", "service": "WhatsApp 3",
"country": "USA", "amount_charged": 1.0830, "balance_after": 12.4000}}"""
CHECK_WAITING = """{"success": true, "message": "OK", "data": {"activation_id": "32886",
"status": "Waiting", "code": null, "phone_number": "+19401234567"}}"""
CHECK_COMPLETED = """{"success": true, "message": "OK", "data": {"activation_id": "32886",
"status": "Completed", "code": "847261", "phone_number": "+19401234567"}}"""
CHECK_ALL = """{"success": true, "message": "OK", "data": [
{"activation_id": "32886", "status": "Completed", "code": "847261",
 "phone_number": "+19401234567"},
{"activation_id": "32887", "status": "Waiting", "code": null, "phone_number": "+19402345678"},
{"activation_id": "99999", "status": "Not Found", "code": null}]}"""
CANCEL = """{"success": true, "message": "Activation cancelled and refunded.", "data": {
"activation_id": "32886", "refund": 1.0830, "balance_after": 14.2500}}"""
HISTORY = """{"success": true, "message": "OK", "data": {"orders": [
{"activation_id": "32886", "phone_number": "+19401234567", "service": "WhatsApp 3",
 "country": "USA", "status": "Completed", "code": "847261", "amount_charged": 1.0830,
 "created_at": "2025-03-31T02:20:00+00:00", "completed_at": "2025-03-31T02:21:44+00:00"},
{"activation_id": "32880", "phone_number": "+19403456789", "service": "Signal",
 "country": "USA", "status": "Cancelled", "code": null, "amount_charged": 0.6000,
 "created_at": "2025-03-31T01:10:00+00:00", "completed_at": null}],
"pagination": {"current_page": 1, "per_page": 20, "total": 335, "last_page": 17}}}"""
TOO_EARLY = """{"success": false, "error": "Cancellation not yet allowed. Please wait 94 more
 second(s).", "code": "TOO_EARLY"}""".replace("\n", "")
CODE_RECEIVED = """{"success": false, "error": "Code already received. Cannot cancel.",
"code": "CODE_RECEIVED", "data": {"activation_id": "32886", "phone_number": "+19401234567",
"service": "WhatsApp 3", "status": "Completed", "code": "847261"}}"""

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Upstream:
    """A scripted server: answers (or failures) in order, and every request it saw."""

    def __init__(self, *answers: str | httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.arrivals: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.arrivals.append(time.monotonic())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, str):
            return reply(200, answer)
        return await answer(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def reply(status: int, body: str) -> httpx.Response:
    return httpx.Response(
        status, content=body.encode(), headers={"Content-Type": "application/json"}
    )


def error(status: int, code: str, message: str = "boom", data: Any = None) -> httpx.Response:
    envelope: dict[str, Any] = {"success": False, "error": message, "code": code}
    if data is not None:
        envelope["data"] = data
    return reply(status, json.dumps(envelope))


def client_for(upstream: Upstream, **kwargs: Any) -> DaisySimClient:
    kwargs.setdefault("retry_base_delay", 0.0)
    return DaisySimClient(BASE, KEY, transport=httpx.MockTransport(upstream), **kwargs)


# --- parsing every model from the reference's examples -------------------------------------


async def test_balance_parses_and_sends_auth_headers() -> None:
    upstream = Upstream(BALANCE)
    async with client_for(upstream) as client:
        balance = await client.balance()
    assert balance.balance_units == 142_500
    assert (balance.currency, balance.email) == ("USD", "[email protected]")
    request = upstream.requests[0]
    assert str(request.url) == f"{BASE}/balance"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Accept"] == "application/json"


async def test_countries() -> None:
    upstream = Upstream(COUNTRIES)
    async with client_for(upstream) as client:
        countries = await client.countries()
    assert [(c.id, c.name) for c in countries] == [("USA", "USA")]
    assert upstream.paths() == ["GET /api/v1/server7/countries"]


async def test_apps_single_and_multi_pool() -> None:
    upstream = Upstream(APPS)
    async with client_for(upstream) as client:
        apps = await client.apps("USA")
    assert upstream.paths() == ["GET /api/v1/server7/apps/USA"]
    by_code = {a.code: a for a in apps}
    assert len(apps) == 7
    whatsapp = by_code["WhatsApp"]
    assert (whatsapp.name, whatsapp.price_units, whatsapp.providers) == ("WhatsApp", 18_500, [])
    assert not whatsapp.is_multi_pool
    sb_wa = by_code["sb_wa"]
    assert sb_wa.is_multi_pool
    assert sb_wa.price_units == 10_830
    assert [(p.provider_id, p.price_units, p.count) for p in sb_wa.providers] == [
        ("3109", 10_830, 4000),
        ("2266", 10_920, 4296),
        ("3170", 13_810, 1000),
        ("2617", 36_000, 344),
    ]
    provider = sb_wa.provider("2266")
    assert provider is not None
    assert provider.price_units == 10_920
    assert by_code["whatsapp-(us)5"].price_units == 7_400


async def test_purchase_body_and_answer() -> None:
    upstream = Upstream(PURCHASE)
    async with client_for(upstream) as client:
        bought = await client.purchase("USA", "sb_wa", "3109", app_name="WhatsApp 3")
        await client.purchase("USA", "WhatsApp")
    assert bought.activation_id == "32886"
    assert bought.phone_number == "+19401234567"
    assert (bought.service, bought.country) == ("WhatsApp 3", "USA")
    assert bought.amount_charged_units == 10_830
    assert bought.balance_after_units == 124_000
    pinned, auto = (json.loads(r.content) for r in upstream.requests)
    assert pinned == {
        "country": "USA",
        "app": "sb_wa",
        "provider_id": "3109",
        "app_name": "WhatsApp 3",
    }
    # No provider_id key at all means "cheapest pool"; null might not.
    assert auto == {"country": "USA", "app": "WhatsApp"}
    assert upstream.paths() == ["POST /api/v1/server7/purchase"] * 2


async def test_check_waiting_and_completed() -> None:
    upstream = Upstream(CHECK_WAITING, CHECK_COMPLETED)
    async with client_for(upstream) as client:
        waiting = await client.check("32886")
        done = await client.check("32886")
    assert (waiting.status, waiting.code, waiting.phone_number) == (WAITING, None, "+19401234567")
    assert waiting.is_waiting
    assert not waiting.is_final
    assert (done.status, done.code) == (COMPLETED, "847261")
    assert done.is_completed
    assert done.is_final
    assert upstream.paths() == ["GET /api/v1/server7/check/32886"] * 2


async def test_check_all_including_not_found_without_phone() -> None:
    upstream = Upstream(CHECK_ALL)
    async with client_for(upstream) as client:
        results = await client.check_all(["32886", "32887", "99999"])
    assert json.loads(upstream.requests[0].content) == {"ids": ["32886", "32887", "99999"]}
    assert [(r.activation_id, r.status, r.code, r.phone_number) for r in results] == [
        ("32886", COMPLETED, "847261", "+19401234567"),
        ("32887", WAITING, None, "+19402345678"),
        ("99999", NOT_FOUND, None, None),
    ]
    assert results[2].is_final


@pytest.mark.parametrize("ids", [[], [str(i) for i in range(21)], "32886"])
async def test_check_all_rejects_bad_id_counts_without_a_request(ids: Any) -> None:
    upstream = Upstream(CHECK_ALL)
    async with client_for(upstream) as client:
        with pytest.raises(ValueError, match="check_all"):
            await client.check_all(ids)
    assert upstream.requests == []


async def test_cancel() -> None:
    upstream = Upstream(CANCEL)
    async with client_for(upstream) as client:
        result = await client.cancel("32886")
    assert (result.activation_id, result.refund_units, result.balance_after_units) == (
        "32886",
        10_830,
        142_500,
    )
    assert upstream.paths() == ["POST /api/v1/server7/cancel/32886"]


async def test_history_and_its_query() -> None:
    upstream = Upstream(HISTORY)
    async with client_for(upstream) as client:
        page = await client.history(status="Completed", page=2, per_page=20)
    assert dict(upstream.requests[0].url.params) == {
        "status": "Completed",
        "page": "2",
        "per_page": "20",
    }
    assert (page.current_page, page.per_page, page.total, page.last_page) == (1, 20, 335, 17)
    first, second = page.orders
    assert first.activation_id == "32886"
    assert (first.status, first.code, first.amount_charged_units) == ("Completed", "847261", 10_830)
    assert first.created_at == datetime(2025, 3, 31, 2, 20, tzinfo=UTC)
    assert first.completed_at == datetime(2025, 3, 31, 2, 21, 44, tzinfo=UTC)
    assert (second.code, second.completed_at, second.amount_charged_units) == (None, None, 6_000)


def history_page(page: int, last_page: int, ids: list[str]) -> str:
    orders = [
        {
            "activation_id": i,
            "phone_number": "+1940000" + i,
            "service": "Signal",
            "country": "USA",
            "status": "Waiting",
            "code": None,
            "amount_charged": 0.6,
            "created_at": "2025-03-31T01:10:00Z",
            "completed_at": None,
        }
        for i in ids
    ]
    pagination = {"current_page": page, "per_page": 2, "total": 99, "last_page": last_page}
    return json.dumps({"success": True, "data": {"orders": orders, "pagination": pagination}})


async def test_iter_history_walks_pages_and_yields_each_order_once() -> None:
    # A purchase between page reads pushes "2" from page 1 onto page 2.
    upstream = Upstream(
        history_page(1, 3, ["1", "2"]), history_page(2, 3, ["2", "3"]), history_page(3, 3, ["4"])
    )
    async with client_for(upstream) as client:
        ids = [order.activation_id async for order in client.iter_history(per_page=2)]
    assert ids == ["1", "2", "3", "4"]
    assert [r.url.params["page"] for r in upstream.requests] == ["1", "2", "3"]


async def test_iter_history_stops_at_max_pages() -> None:
    upstream = Upstream(history_page(1, 9, ["1"]), history_page(2, 9, ["2"]))
    async with client_for(upstream) as client:
        ids = [o.activation_id async for o in client.iter_history(status="Waiting", max_pages=2)]
    assert ids == ["1", "2"]
    assert len(upstream.requests) == 2
    assert upstream.requests[0].url.params["status"] == "Waiting"


async def test_ids_cannot_escape_their_path_segment() -> None:
    upstream = Upstream(CHECK_WAITING)
    async with client_for(upstream) as client:
        await client.check("../balance?x=1")
        with pytest.raises(ValueError, match="empty"):
            await client.cancel("")
    assert upstream.requests[0].url.raw_path == b"/api/v1/server7/check/..%2Fbalance%3Fx%3D1"


# --- money exactness ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "units"),
    [
        ("1.083", 10_830),
        ("1.0830", 10_830),
        ("0.0001", 1),
        ("14.2500", 142_500),
        ("3", 30_000),
        ("0.1", 1_000),
        ("1234567.8901", 12_345_678_901),
        ("0", 0),
    ],
)
async def test_money_is_exact(wire: str, units: int) -> None:
    body = f'{{"success": true, "data": {{"balance": {wire}, "currency": "USD", "email": "x"}}}}'
    async with client_for(Upstream(body)) as client:
        assert (await client.balance()).balance_units == units


# --- error envelopes ----------------------------------------------------------------------

ERROR_TABLE = [
    (401, "UNAUTHENTICATED", Unauthenticated),
    (403, "ACCOUNT_SUSPENDED", AccountSuspended),
    (403, "ACCOUNT_LOCKED", AccountLocked),
    (404, "NOT_FOUND", NotFound),
    (409, "CONCURRENT_ERROR", ConcurrentError),
    (422, "PRICE_VERIFICATION_FAILED", PriceVerificationFailed),
    (422, "CODE_RECEIVED", CodeReceived),
    (422, "TOO_EARLY", TooEarly),
    (422, "INVALID_COUNTRY", InvalidCountry),
    (400, "INSUFFICIENT_BALANCE", InsufficientBalance),
    (429, "RATE_LIMITED", RateLimited),
    (503, "OUT_OF_STOCK", OutOfStock),
    (502, "PROVIDER_ERROR", ProviderError),
    (500, "SERVER_ERROR", ServerError),
    (418, "SOMETHING_NEW", UnknownAPIError),
]


@pytest.mark.parametrize(("status", "code", "cls"), ERROR_TABLE)
async def test_each_error_code_raises_its_class(
    status: int, code: str, cls: type[APIError]
) -> None:
    upstream = Upstream(error(status, code, f"message for {code}", data={"extra": 1}))
    async with client_for(upstream, max_retries=0) as client:
        with pytest.raises(cls) as caught:
            await client.cancel("32886")
    assert type(caught.value) is cls
    assert caught.value.http_status == status
    assert caught.value.code == code
    assert caught.value.message == f"message for {code}"
    assert caught.value.data == {"extra": 1}


async def test_too_early_seconds_left() -> None:
    async with client_for(Upstream(reply(422, TOO_EARLY))) as client:
        with pytest.raises(TooEarly) as caught:
            await client.cancel("32886")
    assert caught.value.seconds_left == 94


async def test_code_received_carries_the_code() -> None:
    async with client_for(Upstream(reply(422, CODE_RECEIVED))) as client:
        with pytest.raises(CodeReceived) as caught:
            await client.cancel("32886")
    assert caught.value.sms_code == "847261"
    assert caught.value.data["activation_id"] == "32886"


async def test_rate_limited_retry_after_and_no_retry() -> None:
    upstream = Upstream(error(429, "RATE_LIMITED", "Too many purchase attempts. Please wait 43s."))
    async with client_for(upstream) as client:
        with pytest.raises(RateLimited) as caught:
            await client.purchase("USA", "WhatsApp")
        assert caught.value.retry_after == 43.0
        assert len(upstream.requests) == 1
        assert client.limiter.purchase.paused_for() > 42
        # Only the purchase group is paused.
        assert client.limiter.check.paused_for() == 0
        assert client.limiter.cancel.remaining() == 10


# --- malformed answers ----------------------------------------------------------------------

MALFORMED = [
    pytest.param(reply(200, "<html>oops</html>"), id="html"),
    pytest.param(reply(200, '{"success": true, "data": {"balance": 1.2'), id="truncated"),
    pytest.param(reply(200, ""), id="empty"),
    pytest.param(reply(200, "[1, 2]"), id="array"),
    pytest.param(reply(200, '{"data": {}}'), id="no-success"),
    pytest.param(reply(200, '{"success": "yes", "data": {}}'), id="success-not-bool"),
    pytest.param(reply(200, '{"success": true}'), id="no-data"),
    pytest.param(reply(200, '{"success": true, "data": []}'), id="data-wrong-type"),
    pytest.param(
        reply(200, '{"success": true, "data": {"currency": "USD", "email": "x"}}'),
        id="missing-field",
    ),
    pytest.param(
        reply(
            200, '{"success": true, "data": {"balance": "1.5", "currency": "USD", "email": "x"}}'
        ),
        id="money-as-string",
    ),
    pytest.param(
        reply(200, '{"success": true, "data": {"balance": true, "currency": "USD", "email": "x"}}'),
        id="money-as-bool",
    ),
    pytest.param(
        reply(
            200, '{"success": true, "data": {"balance": 1.23456, "currency": "USD", "email": "x"}}'
        ),
        id="five-decimals",
    ),
    pytest.param(
        reply(200, '{"success": true, "data": {"balance": NaN, "currency": "USD", "email": "x"}}'),
        id="nan",
    ),
    pytest.param(
        reply(200, '{"success": true, "data": {"balance": 1, "currency": 5, "email": "x"}}'),
        id="text-as-number",
    ),
    pytest.param(
        reply(404, '{"success": true, "data": {"balance": 1, "currency": "USD", "email": "x"}}'),
        id="success-on-404",
    ),
    pytest.param(httpx.Response(200, content=b"\xff\xfe\x00\xd8"), id="not-utf8"),
]


@pytest.mark.parametrize("answer", MALFORMED)
async def test_malformed_answers_raise_malformed_response(answer: httpx.Response) -> None:
    upstream = Upstream(answer)
    async with client_for(upstream) as client:
        with pytest.raises(MalformedResponse) as caught:
            await client.balance()
    assert caught.value.http_status == answer.status_code
    # A malformed 2xx/4xx is not a glitch a retry fixes.
    assert len(upstream.requests) == 1


async def test_malformed_nested_fields_name_their_path() -> None:
    bad = APPS.replace('"count": 344', '"count": "many"')
    async with client_for(Upstream(bad)) as client:
        with pytest.raises(MalformedResponse, match=r"data\[4\]\.providers\[3\]\.count"):
            await client.apps("USA")


async def test_malformed_check_all_item() -> None:
    body = '{"success": true, "data": [{"status": "Waiting", "code": null}]}'
    async with client_for(Upstream(body)) as client:
        with pytest.raises(MalformedResponse, match="activation_id"):
            await client.check_all(["1"])


async def test_error_envelope_without_code_is_unknown_api_error() -> None:
    async with client_for(Upstream(reply(400, '{"success": false}'))) as client:
        with pytest.raises(UnknownAPIError) as caught:
            await client.balance()
    assert caught.value.http_status == 400


# --- retry policy: reads --------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(httpx.ConnectError("refused"), id="connect"),
        pytest.param(httpx.RemoteProtocolError("dropped"), id="dropped"),
        pytest.param(error(502, "PROVIDER_ERROR"), id="provider"),
        pytest.param(error(500, "SERVER_ERROR"), id="server"),
        pytest.param(error(409, "CONCURRENT_ERROR"), id="concurrent"),
        pytest.param(reply(504, "<html>gateway timeout</html>"), id="gateway-page"),
    ],
)
async def test_reads_retry_transient_failures(failure: Exception | httpx.Response) -> None:
    upstream = Upstream(failure, failure, BALANCE)
    async with client_for(upstream) as client:
        balance = await client.balance()
    assert balance.balance_units == 142_500
    assert len(upstream.requests) == 3


async def test_reads_that_run_out_of_retries_raise_transport_error() -> None:
    upstream = Upstream(httpx.ReadTimeout("slow"))
    async with client_for(upstream, max_retries=2) as client:
        with pytest.raises(TransportError) as caught:
            await client.countries()
    assert len(upstream.requests) == 3
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_reads_that_run_out_of_retries_raise_the_last_api_error() -> None:
    upstream = Upstream(error(502, "PROVIDER_ERROR", "upstream down"))
    async with client_for(upstream, max_retries=3) as client:
        with pytest.raises(ProviderError, match="upstream down"):
            await client.check("1")
    assert len(upstream.requests) == 4


@pytest.mark.parametrize(
    "status_code", [(404, "NOT_FOUND"), (401, "UNAUTHENTICATED"), (422, "INVALID_COUNTRY")]
)
async def test_reads_do_not_retry_definite_errors(status_code: tuple[int, str]) -> None:
    upstream = Upstream(error(*status_code))
    async with client_for(upstream) as client:
        with pytest.raises(APIError):
            await client.apps("USA")
    assert len(upstream.requests) == 1


async def test_backoff_grows_between_read_retries() -> None:
    upstream = Upstream(httpx.ReadError("reset"))
    async with client_for(upstream, max_retries=3, retry_base_delay=0.02) as client:
        with pytest.raises(TransportError):
            await client.balance()
    gaps = [b - a for a, b in zip(upstream.arrivals, upstream.arrivals[1:], strict=False)]
    # Jitter draws from [ceiling/2, ceiling] with ceilings 0.02, 0.04, 0.08.
    assert [g >= c for g, c in zip(gaps, (0.01, 0.02, 0.04), strict=True)] == [True] * 3


# --- retry policy: cancel -------------------------------------------------------------------


async def test_cancel_retries_connect_errors_and_concurrent_errors() -> None:
    upstream = Upstream(httpx.ConnectError("refused"), error(409, "CONCURRENT_ERROR"), CANCEL)
    async with client_for(upstream) as client:
        assert (await client.cancel("32886")).refund_units == 10_830
    assert len(upstream.requests) == 3


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (httpx.ReadTimeout("slow"), TransportError),
        (httpx.RemoteProtocolError("dropped"), TransportError),
        (error(500, "SERVER_ERROR"), ServerError),
        (error(502, "PROVIDER_ERROR"), ProviderError),
    ],
)
async def test_cancel_does_not_retry_once_sent(
    failure: Exception | httpx.Response, raised: type[Exception]
) -> None:
    upstream = Upstream(failure, CANCEL)
    async with client_for(upstream) as client:
        with pytest.raises(raised):
            await client.cancel("32886")
    assert len(upstream.requests) == 1


# --- retry policy: purchase, never twice after an unknown outcome --------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(httpx.WriteTimeout("slow"), id="write-timeout"),
        pytest.param(httpx.RemoteProtocolError("Server disconnected"), id="dropped"),
        pytest.param(httpx.ReadError("connection reset"), id="read-error"),
        pytest.param(error(500, "SERVER_ERROR"), id="500"),
        pytest.param(error(502, "PROVIDER_ERROR"), id="502"),
        pytest.param(reply(502, "<html>Bad gateway</html>"), id="502-html"),
        pytest.param(reply(504, ""), id="504-empty"),
        pytest.param(error(503, "MAINTENANCE"), id="503-not-out-of-stock"),
        pytest.param(reply(200, '{"success": true, "data": {"activation_id": "1"'), id="200-cut"),
        pytest.param(
            reply(200, '{"success": true, "data": {"activation_id": "1"}}'), id="200-missing-fields"
        ),
        pytest.param(reply(200, "OK"), id="200-not-json"),
    ],
)
async def test_purchase_with_unknown_outcome_is_never_retried(
    failure: Exception | httpx.Response,
) -> None:
    upstream = Upstream(failure, PURCHASE)
    async with client_for(upstream, max_retries=5) as client:
        with pytest.raises(PurchaseOutcomeUnknown) as caught:
            await client.purchase("USA", "sb_wa", "3109")
    assert len(upstream.requests) == 1
    assert caught.value.cause is not None
    assert caught.value.code == "PURCHASE_OUTCOME_UNKNOWN"
    if isinstance(failure, Exception):
        assert caught.value.cause is failure


async def test_purchase_retries_a_connection_that_never_opened() -> None:
    upstream = Upstream(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), PURCHASE)
    async with client_for(upstream) as client:
        assert (await client.purchase("USA", "WhatsApp")).activation_id == "32886"
    assert len(upstream.requests) == 3


async def test_purchase_that_never_connects_is_a_definite_transport_error() -> None:
    upstream = Upstream(httpx.ConnectError("refused"))
    async with client_for(upstream, max_retries=2) as client:
        with pytest.raises(TransportError):
            await client.purchase("USA", "WhatsApp")
    assert len(upstream.requests) == 3


async def test_purchase_retries_concurrent_error() -> None:
    upstream = Upstream(error(409, "CONCURRENT_ERROR"), PURCHASE)
    async with client_for(upstream) as client:
        assert (await client.purchase("USA", "WhatsApp")).amount_charged_units == 10_830
    assert len(upstream.requests) == 2


async def test_purchase_concurrent_error_out_of_retries_is_raised() -> None:
    upstream = Upstream(error(409, "CONCURRENT_ERROR"))
    async with client_for(upstream, max_retries=1) as client:
        with pytest.raises(ConcurrentError):
            await client.purchase("USA", "WhatsApp")
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (503, "OUT_OF_STOCK", OutOfStock),
        (400, "INSUFFICIENT_BALANCE", InsufficientBalance),
        (422, "PRICE_VERIFICATION_FAILED", PriceVerificationFailed),
        (422, "INVALID_COUNTRY", InvalidCountry),
        (401, "UNAUTHENTICATED", Unauthenticated),
        (403, "ACCOUNT_LOCKED", AccountLocked),
    ],
)
async def test_purchase_definite_rejections_raise_as_is(
    status: int, code: str, cls: type[APIError]
) -> None:
    upstream = Upstream(error(status, code), PURCHASE)
    async with client_for(upstream) as client:
        with pytest.raises(cls):
            await client.purchase("USA", "sb_wa", "3109")
    assert len(upstream.requests) == 1


# --- rate limiting through the client -------------------------------------------------------


async def test_purchases_beyond_the_budget_wait_for_a_slot() -> None:
    window = 0.2
    upstream = Upstream(PURCHASE)
    limits = RateLimits(purchase=(3, window))
    async with client_for(upstream, limits=limits) as client:
        results = await asyncio.gather(*(client.purchase("USA", "WhatsApp") for _ in range(7)))
    assert len(results) == 7
    arrivals = upstream.arrivals
    # No `window`-long interval ever holds more than 3 requests.
    assert all(arrivals[i + 3] - arrivals[i] >= window for i in range(len(arrivals) - 3))


async def test_slot_is_held_until_window_after_the_response() -> None:
    window = 0.15
    finished: list[float] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        # Network latency: the answer comes back 0.1 s after the request arrived.
        await asyncio.sleep(0.1)
        finished.append(time.monotonic())
        return reply(200, CANCEL)

    upstream = Upstream(slow)
    async with client_for(upstream, limits=RateLimits(cancel=(1, window))) as client:
        await asyncio.gather(client.cancel("1"), client.cancel("2"))
    assert upstream.arrivals[1] >= finished[0] + window


async def test_check_and_check_all_share_one_budget() -> None:
    window = 0.2
    upstream = Upstream(CHECK_WAITING)

    async def check_all(request: httpx.Request) -> httpx.Response:
        return reply(200, CHECK_ALL)

    limits = RateLimits(check=(2, window))
    async with client_for(upstream, limits=limits) as client:
        upstream.answers = [CHECK_WAITING, check_all, CHECK_WAITING, check_all]
        await asyncio.gather(
            client.check("1"), client.check_all(["1"]), client.check("1"), client.check_all(["1"])
        )
        assert client.limiter.check.remaining() == 0
    arrivals = upstream.arrivals
    assert arrivals[2] - arrivals[0] >= window
    assert arrivals[3] - arrivals[1] >= window


async def test_waiters_are_served_first_come_first_served() -> None:
    upstream = Upstream(CANCEL)
    async with client_for(upstream, limits=RateLimits(cancel=(1, 0.03))) as client:
        await asyncio.gather(*(client.cancel(str(i)) for i in range(6)))
    assert [r.url.path.rsplit("/", 1)[1] for r in upstream.requests] == [str(i) for i in range(6)]


async def test_unlimited_endpoints_do_not_wait() -> None:
    upstream = Upstream(BALANCE)
    tiny = RateLimits(purchase=(1, 60.0), check=(1, 60.0), cancel=(1, 60.0))
    async with client_for(upstream, limits=tiny) as client:
        await asyncio.wait_for(asyncio.gather(*(client.balance() for _ in range(20))), 5)
    assert len(upstream.requests) == 20


async def test_429_pauses_the_group_and_the_next_call_waits() -> None:
    upstream = Upstream(
        error(429, "RATE_LIMITED", "Too many cancel attempts. Please wait 30s."), CANCEL
    )
    async with client_for(upstream, limits=RateLimits().scaled(60)) as client:
        with pytest.raises(RateLimited):
            await client.cancel("1")
        # Seconds in a server message are real seconds, whatever the window scale.
        assert client.limiter.cancel.paused_for() == pytest.approx(30, abs=1)
        waiting = asyncio.create_task(client.cancel("1"))
        deadline = time.monotonic() + 2
        while client.limiter.cancel.queued < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0)
        assert client.limiter.cancel.queued == 1
        assert len(upstream.requests) == 1
        # Other groups are not paused.
        upstream.answers = [CHECK_WAITING]
        assert (await client.check("1")).is_waiting
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert upstream.paths() == ["POST /api/v1/server7/cancel/1", "GET /api/v1/server7/check/1"]


# --- secrets and lifecycle -------------------------------------------------------------------


async def test_api_key_never_logged_or_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = Upstream(httpx.ReadTimeout("slow"), BALANCE, error(401, "UNAUTHENTICATED"))
    async with client_for(upstream) as client:
        await client.balance()
        with pytest.raises(Unauthenticated) as caught:
            await client.balance()
        shown = [repr(client), str(client), repr(client.limiter), repr(caught.value)]
    assert "DaisySim GET /balance -> 200" in caplog.text
    assert "retry 1/3" in caplog.text
    assert all(KEY not in text for text in [caplog.text, *shown])


async def test_rejects_an_empty_key() -> None:
    with pytest.raises(ValueError, match="api_key"):
        DaisySimClient(BASE, "")


async def test_aclose_closes_the_http_client() -> None:
    client = client_for(Upstream(BALANCE))
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.balance()


async def test_a_connection_never_made_gives_its_rate_slot_back() -> None:
    upstream = Upstream(httpx.ConnectError("refused"), httpx.ConnectError("refused"), PURCHASE)
    limits = RateLimits(purchase=(1, 60.0))
    async with client_for(upstream, limits=limits) as client:
        # With one purchase a minute, the retries would wait a minute if they kept slots.
        await asyncio.wait_for(client.purchase("USA", "WhatsApp"), 5)
        assert client.limiter.purchase.remaining() == 0
    assert len(upstream.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("dropped"), id="dropped"),
        pytest.param(reply(504, "<html>gateway timeout</html>"), id="gateway-page"),
    ],
)
async def test_a_purchase_of_unknown_outcome_holds_its_slot_a_timeout_longer(
    failure: Exception | httpx.Response,
) -> None:
    # The server may still count it after we stopped waiting: one more timeout, then a window.
    window, timeout = 60.0, 15.0
    limits = RateLimits(purchase=(1, window))
    async with client_for(Upstream(failure), limits=limits, timeout=timeout) as client:
        with pytest.raises(PurchaseOutcomeUnknown):
            await client.purchase("USA", "WhatsApp")
        assert client.limiter.purchase.next_free_in() == pytest.approx(window + timeout, abs=1)


async def test_an_answered_error_holds_its_slot_one_window() -> None:
    limits = RateLimits(purchase=(1, 60.0))
    async with client_for(Upstream(error(400, "INSUFFICIENT_BALANCE")), limits=limits) as client:
        with pytest.raises(APIError):
            await client.purchase("USA", "WhatsApp")
        assert client.limiter.purchase.next_free_in() == pytest.approx(60.0, abs=1)
