"""Operations end to end: /metrics, /healthz and /readyz on METRICS_LISTEN, and JSON logs, on
the full app polling the emulator and calling the sandbox over loopback HTTP."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App, configure_logging
from bot.config import Settings
from bot.emulator import BotAPIEmulator
from bot.sandbox import Sandbox
from tests.conftest import BOT_TOKEN, DAISYSIM_KEY, TIME_SCALE, AppFactory
from tests.e2e.helpers import (
    assert_books_balanced,
    buy_from,
    is_code_message,
    open_services,
    start,
    with_card,
)
from tests.fixtures.waiting import wait_until

SIGNAL = "Signal — $0.60"
CODE = "864213"
# One look a real second at the tests' scale: the code is found within a test-sized wait.
POLL_EVERY_UPSTREAM = TIME_SCALE * 1.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(app: App) -> Samples:
    assert app.ops_server is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(app.ops_server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Summed over every label not given."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def get(app: App, path: str) -> httpx.Response:
    assert app.ops_server is not None
    async with httpx.AsyncClient() as http:
        return await http.get(app.ops_server.url + path)


async def buy_and_get_code(app: App, emulator: BotAPIEmulator, sandbox: Sandbox) -> None:
    alice, menu = await start(emulator, app, 1001)
    card = await buy_from(alice, await open_services(alice, menu), SIGNAL)
    activation = await with_card(app, 1001, card)
    assert activation.upstream_id is not None
    await sandbox.control.deliver_code(activation.upstream_id, CODE)
    message = await alice.wait_for(is_code_message, after=card, timeout=10)
    assert CODE in message.entity_texts("code")


async def test_metrics_move_with_a_purchase_and_a_delivered_code(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory(
        metrics_listen="127.0.0.1:0", poll_min_interval_seconds=POLL_EVERY_UPSTREAM
    ) as app:
        await wait_until(lambda: app.poller.started, what="the poller started")
        before = await scrape(app)
        assert value(before, "daisybot_codes_delivered_total") == 0
        assert value(before, "daisybot_purchases_total", outcome="bought") == 0

        await buy_and_get_code(app, emulator, sandbox)
        # The sender marks a message sent right after Telegram accepted it.
        assert await app.outbox.wait_idle(5)
        after = await scrape(app)

        assert value(after, "daisybot_purchases_total", outcome="bought") == 1
        assert value(after, "daisybot_codes_delivered_total") == 1
        # The code-to-user latency: one observation, shorter than the whole test.
        assert value(after, "daisybot_code_delivery_seconds_count") == 1
        assert 0 < value(after, "daisybot_code_delivery_seconds_sum") < 10
        assert value(after, "daisybot_code_delivery_seconds_bucket", le="+Inf") == 1
        # /start, the Buy tap and the service tap, each timed by type.
        assert total(after, "daisybot_updates_total", type="message", outcome="ok") >= 1
        assert total(after, "daisybot_updates_total", type="callback_query", outcome="ok") >= 2
        assert value(after, "daisybot_update_seconds_count", type="callback_query") >= 2
        assert value(after, "daisybot_upstream_request_seconds_count", endpoint="purchase") == 1
        assert value(after, "daisybot_upstream_request_seconds_count", endpoint="check-all") >= 1
        assert value(after, "daisybot_poller_batch_seconds_count") >= 1
        # State read at scrape time: nothing queued, waiting or unsettled any more.
        assert value(after, "daisybot_queue_length") == 0
        assert value(after, "daisybot_outbox_due") == 0
        assert value(after, "daisybot_reconcile_backlog") == 0
        assert ("daisybot_poller_last_tick_age_seconds", ()) in after
        await assert_books_balanced(app)


async def test_refunds_and_upstream_errors_are_counted(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory(metrics_listen="127.0.0.1:0") as app:
        await sandbox.control.add_fault("purchase", "error", code="OUT_OF_STOCK")
        alice, menu = await start(emulator, app, 1002)
        services = await open_services(alice, menu)
        await alice.press(services, SIGNAL)

        async def refunded() -> Samples | None:
            samples = await scrape(app)
            return (
                samples
                if value(samples, "daisybot_refunds_total", reason="purchase_failed")
                else None
            )

        samples = await wait_until(refunded, what="the rejected purchase refunded")
        assert samples is not None
        assert value(samples, "daisybot_purchases_total", outcome="rejected") == 1
        assert (
            value(
                samples, "daisybot_upstream_errors_total", endpoint="purchase", error="OutOfStock"
            )
            == 1
        )
        await assert_books_balanced(app)


async def test_readyz_follows_the_upstream_and_healthz_the_database(
    app_factory: AppFactory, sandbox: Sandbox
) -> None:
    async with app_factory(metrics_listen="127.0.0.1:0") as app:
        await wait_until(lambda: app.poller.started, what="the poller started")

        async def ready() -> bool:
            return (await get(app, "/readyz")).status_code == 200

        await wait_until(ready, what="ready")
        health = await get(app, "/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}

        # The upstream goes away: every request's connection is dropped unanswered.
        for endpoint in ("balance", "check-all", "history", "cancel"):
            await sandbox.control.add_fault(endpoint, "drop_before", times=100_000)

        async def unready() -> dict[str, Any] | None:
            response = await get(app, "/readyz")
            return response.json() if response.status_code == 503 else None

        body = await wait_until(unready, what="unready", timeout=10)
        assert body is not None
        assert body["upstream"] == "unreachable"
        assert body["status"] == "fail"
        # Alive all the same: the orchestrator must not restart it for the upstream's sake.
        assert (await get(app, "/healthz")).status_code == 200

        await sandbox.control.clear_faults()
        await wait_until(ready, what="ready again", timeout=10)
        body = (await get(app, "/readyz")).json()
        assert body == {"status": "ok", "upstream": "ok", "poller": "ok", "outbox": "ok"}
        # Nothing a user or an operator's secret is made of.
        for path in ("/readyz", "/healthz", "/metrics"):
            text = (await get(app, path)).text
            assert BOT_TOKEN not in text
            assert DAISYSIM_KEY not in text


@contextmanager
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    """Everything logged, configured and formatted as `daisybot run` does with `settings`."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    configure_logging(settings, stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, was in noisy.items():
            logging.getLogger(name).setLevel(was)


async def test_json_logs_carry_ids_and_never_a_secret_or_a_code(
    app_factory: AppFactory, emulator: BotAPIEmulator, sandbox: Sandbox
) -> None:
    async with app_factory(log_format="json", poll_min_interval_seconds=POLL_EVERY_UPSTREAM) as app:
        with captured_logs(app.settings) as stream:
            await buy_and_get_code(app, emulator, sandbox)
            # A library that logs a secret: the formatter still hides it.
            logging.getLogger("tests.leaky").warning("token %s key %s", BOT_TOKEN, DAISYSIM_KEY)
        lines = stream.getvalue().splitlines()

    assert lines
    entries = [json.loads(line) for line in lines]
    for line, entry in zip(lines, entries, strict=True):
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        assert BOT_TOKEN not in line
        assert DAISYSIM_KEY not in line
        assert CODE not in line
    leaky = [e for e in entries if e["logger"] == "tests.leaky"]
    assert leaky == [{**leaky[0], "message": "token *** key ***"}], leaky
    # Lines written while handling Alice's updates name the update and Alice.
    assert any(e.get("user_id") == 1001 and "update_id" in e for e in entries)
    # The purchase's and the code's lines name the activation.
    activation_lines = [e for e in entries if "activation_id" in e]
    assert any("bought upstream" in e["message"] for e in activation_lines)
    assert any("completed with a code" in e["message"] for e in activation_lines)
