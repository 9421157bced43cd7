"""The DaisySim client against the sandbox over loopback HTTP: every endpoint, every error
code, the rate limiter, the 429 pause, the never-retry rule and malformed answers."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from bot.daisysim import (
    COMPLETED,
    INVALID,
    NOT_FOUND,
    WAITING,
    AccountLocked,
    AccountSuspended,
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
)
from bot.sandbox import Sandbox
from bot.sandbox.control import LogEntry

KEY = "contract-key"
# 60 upstream seconds pass in one real second: the cancel lock (180 s) lasts 3 s, windows 1 s.
SCALE = 60.0
START_UNITS = 500_000

# One sandbox for the module, reset before each test: starting a server and its control
# client per test costs more than most tests here.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(time_scale=SCALE, start_balance_units=START_UNITS, seed=1) as sb:
        yield sb


@pytest_asyncio.fixture(loop_scope="module")
async def sandbox(shared_sandbox: Sandbox) -> Sandbox:
    await shared_sandbox.control.reset()
    return shared_sandbox


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle is most of what a new httpx client costs; verification stays on.
    return httpx.create_ssl_context()


def make_client(sb: Sandbox, key: str = KEY, **kwargs: object) -> DaisySimClient:
    kwargs.setdefault("limits", RateLimits().scaled(sb.config.time_scale))
    kwargs.setdefault("retry_base_delay", 0.01)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("transport", httpx.AsyncHTTPTransport(verify=_tls()))
    return DaisySimClient(sb.base_url, key, **kwargs)  # type: ignore[arg-type]


@pytest_asyncio.fixture(loop_scope="module")
async def client(sandbox: Sandbox) -> AsyncIterator[DaisySimClient]:
    async with make_client(sandbox) as c:
        yield c


async def calls(sb: Sandbox, endpoint: str) -> list[LogEntry]:
    return [e for e in await sb.control.request_log() if e.endpoint == endpoint]


# --- every endpoint -------------------------------------------------------------------------


async def test_balance(sandbox: Sandbox, client: DaisySimClient) -> None:
    await sandbox.control.set_account(KEY, balance_units=123_457)
    balance = await client.balance()
    assert balance.balance_units == 123_457
    assert balance.currency == "USD"
    assert balance.email == (await sandbox.control.account(KEY)).email


async def test_countries(client: DaisySimClient) -> None:
    assert [(c.id, c.name) for c in await client.countries()] == [("USA", "USA")]


async def test_apps_match_the_sandbox_stock(sandbox: Sandbox, client: DaisySimClient) -> None:
    await sandbox.control.set_stock("sb_wa", "3109", 0)
    apps = {a.code: a for a in await client.apps("USA")}
    stock = await sandbox.control.stock()
    assert set(apps) == set(stock)
    for code, app in apps.items():
        if app.is_multi_pool:
            assert [(p.provider_id, p.price_units, p.count) for p in app.providers] == [
                (p.provider_id, p.price_units, p.count) for p in stock[code]
            ]
        else:
            assert app.providers == []
            assert app.price_units == stock[code][0].price_units
    # The listed price is the cheapest pool that has stock.
    assert apps["sb_wa"].price_units == 10_920
    assert apps["WhatsApp"].price_units == 18_500


async def test_purchase_cheapest_and_pinned(sandbox: Sandbox, client: DaisySimClient) -> None:
    auto = await client.purchase("USA", "sb_tg")
    pinned = await client.purchase(
        "USA", "sb_wa", "2617", app_name="WA pinned", country_name="United States"
    )
    assert auto.amount_charged_units == 4_500
    assert pinned.amount_charged_units == 36_000
    assert (pinned.service, pinned.country) == ("WA pinned", "United States")
    account = await sandbox.control.account(KEY)
    assert pinned.balance_after_units == account.balance_units == START_UNITS - 40_500
    assert [(o.activation_id, o.provider_id) for o in account.orders] == [
        (auto.activation_id, "2266"),
        (pinned.activation_id, "2617"),
    ]
    assert pinned.phone_number == account.orders[1].phone_number


async def test_check_waiting_then_completed(sandbox: Sandbox, client: DaisySimClient) -> None:
    bought = await client.purchase("USA", "Signal")
    first = await client.check(bought.activation_id)
    assert (first.status, first.code, first.phone_number) == (WAITING, None, bought.phone_number)
    code = await sandbox.control.deliver_code(bought.activation_id, "024680")
    done = await client.check(bought.activation_id)
    assert (done.status, done.code) == (COMPLETED, code)
    assert code == "024680"


async def test_check_all_statuses(sandbox: Sandbox, client: DaisySimClient) -> None:
    waiting = await client.purchase("USA", "Signal")
    completed = await client.purchase("USA", "Telegram")
    await sandbox.control.deliver_code(completed.activation_id, "111222")
    results = await client.check_all(
        [waiting.activation_id, completed.activation_id, "99999", "not-an-id"]
    )
    assert [(r.activation_id, r.status, r.code) for r in results] == [
        (waiting.activation_id, WAITING, None),
        (completed.activation_id, COMPLETED, "111222"),
        ("99999", NOT_FOUND, None),
        ("not-an-id", INVALID, None),
    ]
    assert results[0].phone_number == waiting.phone_number
    assert results[2].phone_number is None


async def test_cancel_after_the_lock_refunds_in_full(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    bought = await client.purchase("USA", "sb_wa")
    await sandbox.control.advance_clock(180)
    cancelled = await client.cancel(bought.activation_id)
    assert cancelled.activation_id == bought.activation_id
    assert cancelled.refund_units == bought.amount_charged_units == 10_830
    assert cancelled.balance_after_units == START_UNITS


async def test_history_filter_and_pages(sandbox: Sandbox, client: DaisySimClient) -> None:
    bought = [await client.purchase("USA", "Signal") for _ in range(5)]
    await sandbox.control.deliver_code(bought[1].activation_id, "555000")
    page = await client.history(per_page=2, page=2)
    assert (page.current_page, page.per_page, page.total, page.last_page) == (2, 2, 5, 3)
    assert [o.activation_id for o in page.orders] == [
        bought[2].activation_id,
        bought[1].activation_id,
    ]
    done = page.orders[1]
    assert (done.status, done.code, done.amount_charged_units) == (COMPLETED, "555000", 6_000)
    assert done.completed_at is not None
    assert done.completed_at >= done.created_at
    everything = [o.activation_id async for o in client.iter_history(per_page=2)]
    assert everything == [b.activation_id for b in reversed(bought)]
    completed = await client.history(status=COMPLETED)
    assert [o.activation_id for o in completed.orders] == [bought[1].activation_id]


# --- every error code -------------------------------------------------------------------------


async def test_unauthenticated() -> None:
    async with Sandbox(time_scale=SCALE, keys=["the-right-key"]) as sb, make_client(sb) as client:
        with pytest.raises(Unauthenticated) as caught:
            await client.balance()
    assert (caught.value.http_status, caught.value.code) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        ("suspended", AccountSuspended, "ACCOUNT_SUSPENDED"),
        ("locked", AccountLocked, "ACCOUNT_LOCKED"),
    ],
)
async def test_blocked_accounts(
    sandbox: Sandbox, client: DaisySimClient, status: str, cls: type[Exception], code: str
) -> None:
    await sandbox.control.set_account(KEY, status=status)  # type: ignore[arg-type]
    with pytest.raises(cls) as caught:
        await client.purchase("USA", "Signal")
    assert caught.value.http_status == 403  # type: ignore[attr-defined]
    assert caught.value.code == code  # type: ignore[attr-defined]


async def test_not_found(client: DaisySimClient) -> None:
    with pytest.raises(NotFound) as caught:
        await client.check("12345")
    assert caught.value.http_status == 404
    with pytest.raises(NotFound):
        await client.cancel("12345")


async def test_concurrent_error_is_retried_for_a_purchase(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("purchase", "error", code="CONCURRENT_ERROR", times=2)
    bought = await client.purchase("USA", "Signal")
    assert len(await calls(sandbox, "purchase")) == 3
    assert [o.activation_id for o in (await sandbox.control.account(KEY)).orders] == [
        bought.activation_id
    ]


async def test_concurrent_error_beyond_the_retries_is_raised(sandbox: Sandbox) -> None:
    await sandbox.control.add_fault("cancel", "error", code="CONCURRENT_ERROR", times=5)
    async with make_client(sandbox, max_retries=2) as client:
        with pytest.raises(ConcurrentError) as caught:
            await client.cancel("32886")
    assert caught.value.http_status == 409
    assert len(await calls(sandbox, "cancel")) == 3


async def test_price_verification_failed(client: DaisySimClient) -> None:
    with pytest.raises(PriceVerificationFailed) as caught:
        await client.purchase("USA", "sb_wa", "0000")
    assert caught.value.http_status == 422
    with pytest.raises(PriceVerificationFailed):
        await client.purchase("USA", "no-such-service")


async def test_code_received_on_cancel(sandbox: Sandbox, client: DaisySimClient) -> None:
    bought = await client.purchase("USA", "Signal")
    await sandbox.control.deliver_code(bought.activation_id, "987654")
    await sandbox.control.advance_clock(180)
    with pytest.raises(CodeReceived) as caught:
        await client.cancel(bought.activation_id)
    assert caught.value.http_status == 422
    assert caught.value.sms_code == "987654"
    assert caught.value.data["activation_id"] == bought.activation_id


async def test_too_early_names_the_seconds_left(sandbox: Sandbox, client: DaisySimClient) -> None:
    bought = await client.purchase("USA", "Signal")
    await sandbox.control.advance_clock(60)  # 120 upstream seconds left: 2 real ones
    with pytest.raises(TooEarly) as caught:
        await client.cancel(bought.activation_id)
    assert caught.value.http_status == 422
    assert caught.value.seconds_left == 2


async def test_invalid_country(client: DaisySimClient) -> None:
    with pytest.raises(InvalidCountry) as caught:
        await client.apps("FR")
    assert caught.value.http_status == 422
    with pytest.raises(InvalidCountry):
        await client.purchase("FR", "Signal")


async def test_insufficient_balance_buys_nothing(sandbox: Sandbox, client: DaisySimClient) -> None:
    await sandbox.control.set_account(KEY, balance_units=5_999)
    with pytest.raises(InsufficientBalance) as caught:
        await client.purchase("USA", "Signal")
    assert caught.value.http_status == 400
    account = await sandbox.control.account(KEY)
    assert (account.balance_units, account.orders) == (5_999, [])
    assert len(await calls(sandbox, "purchase")) == 1


async def test_out_of_stock_on_a_pinned_pool(sandbox: Sandbox, client: DaisySimClient) -> None:
    await sandbox.control.set_stock("sb_wa", "3109", 0)
    with pytest.raises(OutOfStock) as caught:
        await client.purchase("USA", "sb_wa", "3109")
    assert caught.value.http_status == 503
    assert len(await calls(sandbox, "purchase")) == 1
    # Omitting provider_id takes the cheapest pool that still has numbers.
    assert (await client.purchase("USA", "sb_wa")).amount_charged_units == 10_920


async def test_provider_error_is_retried_for_reads(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("apps", "error", code="PROVIDER_ERROR", times=2)
    assert len(await client.apps("USA")) == 7
    assert len(await calls(sandbox, "apps")) == 3


async def test_provider_error_on_a_purchase_is_an_unknown_outcome(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("purchase", "error", code="PROVIDER_ERROR")
    with pytest.raises(PurchaseOutcomeUnknown) as caught:
        await client.purchase("USA", "Signal")
    assert isinstance(caught.value.cause, ProviderError)
    assert caught.value.cause.http_status == 502
    assert len(await calls(sandbox, "purchase")) == 1


async def test_server_error(sandbox: Sandbox) -> None:
    await sandbox.control.add_fault("history", "error", code="SERVER_ERROR", times=10)
    async with make_client(sandbox, max_retries=1) as client:
        with pytest.raises(ServerError) as caught:
            await client.history()
    assert caught.value.http_status == 500
    assert len(await calls(sandbox, "history")) == 2


async def test_server_error_on_cancel_is_not_retried(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("cancel", "error", code="SERVER_ERROR")
    with pytest.raises(ServerError):
        await client.cancel("32886")
    assert len(await calls(sandbox, "cancel")) == 1


# --- rate limits -----------------------------------------------------------------------------


async def test_purchases_beyond_the_budget_wait_instead_of_429() -> None:
    # 300x: a 60 s window lasts 0.2 s, so 25 purchases span three windows.
    async with Sandbox(time_scale=300, start_balance_units=START_UNITS) as sb:
        async with make_client(sb) as client:
            bought = await asyncio.gather(*(client.purchase("USA", "Signal") for _ in range(25)))
        stats = await sb.control.stats()
        account = await sb.control.account(KEY)
    assert len({b.activation_id for b in bought}) == 25
    assert len(account.orders) == 25
    assert stats.requests["purchase"] == 25
    assert stats.rate_limited_total == 0


async def test_checks_and_check_alls_share_the_budget_without_429() -> None:
    async with Sandbox(time_scale=300) as sb:
        async with make_client(sb) as client:
            bought = await client.purchase("USA", "Signal")
            ids = [bought.activation_id]
            results = await asyncio.gather(
                *(client.check(ids[0]) if i % 2 else client.check_all(ids) for i in range(80))
            )
        stats = await sb.control.stats()
    assert len(results) == 80
    assert stats.requests["check"] + stats.requests["check-all"] == 80
    assert stats.rate_limited_total == 0


async def test_without_the_limiter_the_sandbox_would_have_said_429() -> None:
    # The control experiment for the two tests above: the sandbox does enforce the budget.
    # At real speed the 60 s window cannot slide by while 15 requests go out.
    async with Sandbox(time_scale=1) as sb:
        async with make_client(sb, limits=RateLimits(cancel=(1000, 60.0))) as client:
            outcomes = await asyncio.gather(
                *(client.cancel("32886") for _ in range(15)), return_exceptions=True
            )
        stats = await sb.control.stats()
    assert sum(isinstance(o, RateLimited) for o in outcomes) == 5
    assert stats.rate_limited["cancel"] == 5


async def test_a_429_pauses_the_group_for_the_seconds_it_names(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("purchase", "error", code="RATE_LIMITED", seconds=1)
    with pytest.raises(RateLimited) as caught:
        await client.purchase("USA", "Signal")
    refused_at = time.monotonic()
    assert caught.value.retry_after == 1.0
    assert caught.value.http_status == 429
    # The next purchase waits out the pause, then goes through; other groups never waited.
    assert (await client.check_all(["32886"]))[0].status == NOT_FOUND
    await client.purchase("USA", "Signal")
    assert time.monotonic() - refused_at >= 1.0
    purchases = await calls(sandbox, "purchase")
    assert [p.status for p in purchases] == [429, 200]
    assert purchases[1].time - purchases[0].time >= 1.0 - 0.05


# --- a purchase whose outcome is unknown is never sent twice ------------------------------------


async def test_dropped_after_the_purchase_is_unknown_and_sent_once(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("purchase", "drop_after")
    with pytest.raises(PurchaseOutcomeUnknown) as caught:
        await client.purchase("USA", "sb_wa", "3109")
    assert caught.value.cause is not None
    assert len(await calls(sandbox, "purchase")) == 1
    # It did happen upstream: /history is how the caller finds out.
    orders = [o async for o in client.iter_history()]
    assert len(orders) == 1
    assert orders[0].amount_charged_units == 10_830


async def test_dropped_before_the_purchase_is_still_unknown(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    await sandbox.control.add_fault("purchase", "drop_before")
    with pytest.raises(PurchaseOutcomeUnknown):
        await client.purchase("USA", "Signal")
    assert len(await calls(sandbox, "purchase")) == 1
    assert (await client.history()).orders == []


async def test_a_purchase_that_times_out_is_unknown_and_sent_once(sandbox: Sandbox) -> None:
    await sandbox.control.add_fault("purchase", "delay_after", delay=2.0)
    async with make_client(sandbox, timeout=0.3) as client:
        with pytest.raises(PurchaseOutcomeUnknown) as caught:
            await client.purchase("USA", "Signal")
    assert type(caught.value.cause).__name__ == "ReadTimeout"
    # The log entry is written when the delayed answer goes out; the counter on arrival.
    assert (await sandbox.control.stats()).requests["purchase"] == 1
    assert len((await sandbox.control.account(KEY)).orders) == 1


@pytest.mark.parametrize("variant", ["not_json", "truncated", "wrong_shape"])
async def test_an_unreadable_purchase_answer_is_unknown(
    sandbox: Sandbox, client: DaisySimClient, variant: str
) -> None:
    await sandbox.control.add_fault("purchase", "malformed", variant=variant)  # type: ignore[arg-type]
    with pytest.raises(PurchaseOutcomeUnknown) as caught:
        await client.purchase("USA", "Signal")
    assert isinstance(caught.value.cause, MalformedResponse)
    assert len(await calls(sandbox, "purchase")) == 1


async def test_reads_retry_dropped_connections(sandbox: Sandbox, client: DaisySimClient) -> None:
    bought = await client.purchase("USA", "Signal")
    await sandbox.control.add_fault("check", "drop_before")
    await sandbox.control.add_fault("balance", "drop_after")
    assert (await client.check(bought.activation_id)).status == WAITING
    assert (await client.balance()).balance_units == START_UNITS - 6_000
    assert len(await calls(sandbox, "check")) == 2
    assert len(await calls(sandbox, "balance")) == 2


async def test_a_dropped_cancel_is_not_resent_and_refunds_once(
    sandbox: Sandbox, client: DaisySimClient
) -> None:
    bought = await client.purchase("USA", "Signal")
    await sandbox.control.advance_clock(180)
    await sandbox.control.add_fault("cancel", "drop_after")
    with pytest.raises(TransportError):
        await client.cancel(bought.activation_id)
    assert len(await calls(sandbox, "cancel")) == 1
    # Asking again is how the caller learns the refund; it is never paid twice.
    again = await client.cancel(bought.activation_id)
    assert again.refund_units == 6_000
    account = await sandbox.control.account(KEY)
    assert (account.balance_units, account.refunds_units) == (START_UNITS, 6_000)


# --- malformed upstream answers ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["not_json", "truncated", "wrong_shape"])
async def test_malformed_answers(sandbox: Sandbox, client: DaisySimClient, variant: str) -> None:
    await sandbox.control.add_fault("balance", "malformed", variant=variant)  # type: ignore[arg-type]
    with pytest.raises(MalformedResponse) as caught:
        await client.balance()
    assert caught.value.http_status == 200
    assert len(await calls(sandbox, "balance")) == 1
    # The next answer is fine again.
    assert (await client.balance()).currency == "USD"
