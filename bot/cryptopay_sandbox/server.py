"""The counterpart over HTTP (aiohttp.web): the Crypto Pay API, the control API, the pay page
and webhook delivery.

API: `GET|POST /api/{method}`, parameters in the query string, a JSON body or a form, the token
in `Crypto-Pay-API-Token` (a missing or other token: 401 UNAUTHORIZED). An unknown method is
405 METHOD_NOT_FOUND. Webhooks: when the app has a webhook URL, paying an invoice POSTs
`{"update_id", "update_type": "invoice_paid", "request_date", "payload": <invoice>}` to it with
the `crypto-pay-api-signature` header; an answer other than 200 (or none) is retried after each
of `webhook_retry_delays` (real seconds), the same update each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Self

import httpx
from aiohttp import web

from bot.cryptopay.signature import SIGNATURE_HEADER, sign_body
from bot.cryptopay_sandbox.control import CryptoPayControl
from bot.cryptopay_sandbox.state import (
    CryptoPayFault,
    CryptoPayState,
    SandboxInvoice,
    WebhookAttempt,
    iso,
)

logger = logging.getLogger(__name__)

TOKEN_HEADER: Final = "Crypto-Pay-API-Token"
DEFAULT_TOKEN: Final = "4242:AAsandboxCryptoPayToken"
# Real seconds between webhook attempts: quick, so a test sees the retry in a moment.
DEFAULT_RETRY_DELAYS: Final[tuple[float, ...]] = (0.2, 0.5, 1.0, 2.0, 5.0)
_WEBHOOK_TIMEOUT: Final = 5.0


def _envelope(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _fault(fault: CryptoPayFault) -> web.Response:
    return web.json_response(
        {"ok": False, "error": {"code": fault.code, "name": fault.name}}, status=fault.code
    )


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise CryptoPayFault(400, "JSON_INVALID") from None
            if not isinstance(body, dict):
                raise CryptoPayFault(400, "JSON_INVALID")
            params.update(body)
    else:
        params.update(dict(await request.post()))
    return params


class CryptoPaySandbox:
    """A local Crypto Pay. `async with CryptoPaySandbox(time_scale=60) as cp:` then point a
    client at `cp.base_url` with `cp.token`; `cp.control` pays and expires invoices."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        first_invoice_id: int = 1,
        public_url: str | None = None,
    ) -> None:
        """`public_url`: where payers reach the pay page, if not where it listens (a tunnel
        in front of it); invoices' `bot_invoice_url` starts with it."""
        self.state = CryptoPayState(
            token=token, time_scale=time_scale, first_invoice_id=first_invoice_id
        )
        self.host = host
        self._requested_port = port
        self.port = 0
        self.retry_delays = tuple(webhook_retry_delays)
        self._public_url = public_url
        self._runner: web.AppRunner | None = None
        self._control: CryptoPayControl | None = None
        self._http: httpx.AsyncClient | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        # Per invoice, the one update its payment produced: a retry and a re-send are the
        # same update (same update_id, same bytes).
        self._updates: dict[int, bytes] = {}

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def base_url(self) -> str:
        """Where a client points (the mainnet's https://pay.crypt.bot in production)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def control(self) -> CryptoPayControl:
        if self._control is None:
            raise RuntimeError("the Crypto Pay sandbox is not started")
        return self._control

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        self._add_control(app)
        app.router.add_get("/pay/{hash}", self._pay_page)
        app.router.add_post("/pay/{hash}", self._pay_form)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.state.public_url = (self._public_url or self.base_url).rstrip("/")
        self._http = httpx.AsyncClient(timeout=_WEBHOOK_TIMEOUT)
        self._control = CryptoPayControl(self.base_url)
        logger.info("Crypto Pay sandbox listening on %s", self.base_url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._deliveries):
            task.cancel()
        for task in list(self._deliveries):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._control is not None:
            await self._control.aclose()
            self._control = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the API --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        try:
            if request.headers.get(TOKEN_HEADER) != self.state.token:
                raise CryptoPayFault(401, "UNAUTHORIZED")
            method = request.match_info["method"]
            params = await _params(request)
            state = self.state
            if method == "getMe":
                return _envelope(
                    {
                        "app_id": state.app_id,
                        "name": state.app_name,
                        "payment_processing_bot_username": "CryptoBot",
                    }
                )
            if method == "createInvoice":
                return _envelope(state.invoice_json(state.create_invoice(params)))
            if method == "getInvoices":
                found = state.get_invoices(params)
                return _envelope({"items": [state.invoice_json(i) for i in found]})
            raise CryptoPayFault(405, "METHOD_NOT_FOUND")
        except CryptoPayFault as fault:
            return _fault(fault)

    # --- paying and webhooks --------------------------------------------------------------

    def pay(self, invoice_id: int, asset: str | None = None) -> SandboxInvoice:
        invoice = self.state.pay(invoice_id, asset)
        body = json.dumps(
            {
                "update_id": self.state.next_update_id(),
                "update_type": "invoice_paid",
                "request_date": iso(time.time()),
                "payload": self.state.invoice_json(invoice),
            },
            separators=(",", ":"),
        ).encode("utf-8")
        self._updates[invoice_id] = body
        if self.state.webhook_url is not None:
            self._spawn(invoice_id, body, retries=True)
        return invoice

    def _spawn(self, invoice_id: int, body: bytes, *, retries: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(invoice_id, body, retries))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _attempt(self, invoice_id: int, body: bytes, attempt: int) -> bool:
        url = self.state.webhook_url
        if url is None or self._http is None:
            return True  # the webhook was switched off meanwhile: nothing more to deliver
        update_id = json.loads(body)["update_id"]
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign_body(self.state.token, body),
                },
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self.state.webhook_log.append(
            WebhookAttempt(update_id, invoice_id, attempt, status, error, time.time())
        )
        return status == 200

    async def _deliver(self, invoice_id: int, body: bytes, retries: bool) -> None:
        if await self._attempt(invoice_id, body, 1) or not retries:
            return
        for number, delay in enumerate(self.retry_delays, start=2):
            await asyncio.sleep(delay)
            if await self._attempt(invoice_id, body, number):
                return
        logger.info("webhook for invoice %d: no 200 after all attempts", invoice_id)

    async def resend(self, invoice_id: int, times: int = 1) -> list[int | None]:
        """The invoice's update again, `times` times one after another, without retries."""
        body = self._updates.get(invoice_id)
        if body is None:
            raise CryptoPayFault(400, "INVOICE_NOT_PAID")
        statuses: list[int | None] = []
        for _ in range(times):
            await self._attempt(invoice_id, body, 0)
            statuses.append(self.state.webhook_log[-1].status)
        return statuses

    # --- the control API ------------------------------------------------------------------

    def _add_control(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/_control/reset", self._c_reset)
        r.add_get("/_control/webhook", self._c_webhook_get)
        r.add_post("/_control/webhook", self._c_webhook_set)
        r.add_get("/_control/invoices", self._c_invoices)
        r.add_get("/_control/invoices/{id}", self._c_invoice)
        r.add_post("/_control/invoices/{id}/pay", self._c_pay)
        r.add_post("/_control/invoices/{id}/expire", self._c_expire)
        r.add_post("/_control/invoices/{id}/webhook", self._c_resend)
        r.add_get("/_control/webhooks", self._c_webhook_log)
        r.add_post("/_control/clock", self._c_clock)

    @staticmethod
    def _id(request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise CryptoPayFault(400, "INVOICE_NOT_FOUND") from None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    async def _control_call(self, request: web.Request, action: str) -> web.Response:
        try:
            state = self.state
            if action == "reset":
                state.reset()
                self._updates.clear()
                return _envelope(True)
            if action == "webhook_get":
                return _envelope({"url": state.webhook_url})
            if action == "webhook_set":
                url = (await self._body(request)).get("url")
                state.webhook_url = url if isinstance(url, str) and url else None
                return _envelope({"url": state.webhook_url})
            if action == "invoices":
                items = sorted(state.invoices.values(), key=lambda i: i.invoice_id)
                return _envelope([state.invoice_json(i) for i in items])
            if action == "invoice":
                return _envelope(state.invoice_json(state.get(self._id(request))))
            if action == "pay":
                asset = (await self._body(request)).get("asset")
                paid = self.pay(self._id(request), asset if isinstance(asset, str) else None)
                return _envelope(state.invoice_json(paid))
            if action == "expire":
                return _envelope(state.invoice_json(state.expire(self._id(request))))
            if action == "resend":
                times = (await self._body(request)).get("times", 1)
                count = times if isinstance(times, int) and 1 <= times <= 100 else 1
                return _envelope({"statuses": await self.resend(self._id(request), count)})
            if action == "webhook_log":
                return _envelope(
                    [
                        {
                            "update_id": a.update_id,
                            "invoice_id": a.invoice_id,
                            "attempt": a.attempt,
                            "status": a.status,
                            "error": a.error,
                        }
                        for a in state.webhook_log
                    ]
                )
            if action == "clock":
                advance = (await self._body(request)).get("advance", 0)
                if isinstance(advance, int | float) and advance > 0:
                    state.clock.advance(float(advance))
                return _envelope({"now": state.clock.now()})
        except CryptoPayFault as fault:
            return _fault(fault)
        except ValueError:
            return _fault(CryptoPayFault(400, "JSON_INVALID"))
        return _fault(CryptoPayFault(404, "NOT_FOUND"))

    async def _c_reset(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "reset")

    async def _c_webhook_get(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "webhook_get")

    async def _c_webhook_set(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "webhook_set")

    async def _c_invoices(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "invoices")

    async def _c_invoice(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "invoice")

    async def _c_pay(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "pay")

    async def _c_expire(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "expire")

    async def _c_resend(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "resend")

    async def _c_webhook_log(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "webhook_log")

    async def _c_clock(self, request: web.Request) -> web.Response:
        return await self._control_call(request, "clock")

    # --- the pay page (plays @CryptoBot's invoice screen for the demo) --------------------

    def _by_hash(self, request: web.Request) -> SandboxInvoice | None:
        wanted = request.match_info["hash"]
        for invoice in self.state.invoices.values():
            if invoice.hash == wanted:
                return self.state.refresh(invoice)
        return None

    async def _pay_page(self, request: web.Request) -> web.Response:
        invoice = self._by_hash(request)
        if invoice is None:
            return web.Response(status=404, text="No such invoice.")
        return web.Response(text=_page(invoice), content_type="text/html", charset="utf-8")

    async def _pay_form(self, request: web.Request) -> web.Response:
        invoice = self._by_hash(request)
        if invoice is None:
            return web.Response(status=404, text="No such invoice.")
        form = await request.post()
        asset = form.get("asset")
        with contextlib.suppress(CryptoPayFault):
            self.pay(invoice.invoice_id, asset if isinstance(asset, str) else None)
        return web.Response(text=_page(invoice), content_type="text/html", charset="utf-8")


def _page(invoice: SandboxInvoice) -> str:
    price = f"{invoice.amount} {invoice.fiat or invoice.asset}"
    title = html.escape(invoice.description or "Invoice")
    if invoice.status == "active":
        assets = invoice.accepted_assets if invoice.fiat else (invoice.asset or "USDT",)
        buttons = "".join(
            f'<button name="asset" value="{html.escape(a)}">Pay with {html.escape(a)}</button>'
            for a in assets
        )
        body = f'<form method="post">{buttons}</form>'
    elif invoice.status == "paid":
        body = f"<p>✅ Paid with {html.escape(invoice.paid_asset or '')}. You can close this.</p>"
    else:
        body = "<p>⌛ This invoice has expired.</p>"
    return (
        "<!doctype html><meta charset=utf-8><title>Crypto Pay (sandbox)</title>"
        f"<h1>{title}</h1><p>{html.escape(price)} — play money, nothing is charged.</p>{body}"
    )
