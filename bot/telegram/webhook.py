"""Webhook mode: Telegram POSTs each update to WEBHOOK_URL; this aiohttp server takes them.

aiogram's aiohttp integration does the work (`SimpleRequestHandler`, `setup_application`):
the secret token Telegram sends in `X-Telegram-Bot-Api-Secret-Token` is compared with
WEBHOOK_SECRET in constant time, and a request without it or with a wrong one is answered 401
before its body is read, so nothing is handled. Updates are handled in the background: the
answer to Telegram is an empty 200 at once and never carries a Bot API call (replies go out as
API calls, as in polling mode, through the same middlewares and flood limits), so a slow
handler never makes Telegram time out and redeliver.

The same server serves `/metrics`, `/healthz` and `/readyz` (`add_ops_routes`).

Start: bind the port first (a busy port fails before anything else starts), run the
dispatcher's startup, listen, then `setWebhook` with the secret and the update types the
routers use. Stop: refuse new requests (the listening socket closes; a request on a connection
still open gets 503, which Telegram retries later), then the dispatcher's shutdown, which is
the same graceful `App.shut_down` as in polling mode. The webhook stays set: Telegram keeps the
updates that arrive meanwhile and delivers them after the next start.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.telegram.middlewares import InflightMiddleware
from bot.telegram.ops_web import Ops, add_ops_routes, parse_listen

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# How long the server waits, at stop, for requests being answered (they answer at once).
REQUESTS_STOP_SECONDS = 5.0
# Telegram's own default; updates of one chat are handled one after another anyway.
MAX_CONNECTIONS = 40


class WebhookHandler(SimpleRequestHandler):
    """aiogram's handler for one bot, handling in the background, with three changes:

    * each handling task is tracked by the inflight middleware from the moment it exists, so
      a shutdown that begins right after the 200 still waits for it;
    * once stopping, a request is answered 503 (Telegram redelivers it later) instead of
      starting a task the shutdown would not wait for;
    * closing does not close the bot's session: the outbox flushes through it after this.
    """

    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str, inflight: InflightMiddleware
    ) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret_token)
        self._inflight = inflight
        self.accepting = True

    async def handle(self, request: web.Request) -> web.Response:
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            logger.warning("webhook request refused: no or wrong secret token (%s)", request.remote)
            return web.Response(text="Unauthorized", status=401)
        if not self.accepting:
            return web.Response(text="Stopping", status=503)
        try:
            update = await request.json(loads=self.bot.session.json_loads)
        except ValueError:
            return web.Response(text="Bad Request", status=400)
        if not isinstance(update, dict):
            return web.Response(text="Bad Request", status=400)
        task = asyncio.get_running_loop().create_task(self._feed(update), name="webhook-update")
        self._inflight.track(task)
        self._background_feed_update_tasks.add(task)
        task.add_done_callback(self._background_feed_update_tasks.discard)
        return web.json_response({})

    async def _feed(self, update: dict[str, Any]) -> None:
        result = await self.dispatcher.feed_raw_update(self.bot, update)
        if isinstance(result, TelegramMethod):
            # No handler of ours returns a method; should one, it still goes out as a call.
            await self.dispatcher.silent_call_request(self.bot, result)

    async def close(self) -> None:
        """The app closes the bot's session itself, after the outbox has flushed."""


@dataclass(eq=False)
class WebhookServer:
    """The webhook route and the ops routes on WEBHOOK_LISTEN."""

    dispatcher: Dispatcher
    bot: Bot
    inflight: InflightMiddleware
    ops: Ops
    url: str
    path: str
    listen: str
    secret: str
    max_connections: int = MAX_CONNECTIONS
    # More routes on the same server (the Crypto Pay webhook), added at start.
    extra_routes: list[Callable[[web.Application], None]] = field(default_factory=list)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _handler: WebhookHandler | None = field(default=None, init=False)
    _port: int | None = field(default=None, init=False)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the webhook server is not running")
        return self._port

    @property
    def local_url(self) -> str:
        """Where it listens, with the port the system chose for `:0`."""
        host, _ = parse_listen(self.listen)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        host, port = parse_listen(self.listen)
        # Bound before the dispatcher starts: a port in use fails start-up before the queue,
        # the poller and the outbox run.
        sock = socket.create_server(
            (host, port),
            family=socket.AF_INET6 if ":" in host else socket.AF_INET,
            reuse_port=False,
        )
        try:
            web_app = web.Application()
            handler = WebhookHandler(
                self.dispatcher, self.bot, secret_token=self.secret, inflight=self.inflight
            )
            handler.register(web_app, path=self.path)
            add_ops_routes(web_app, self.ops)
            for add in self.extra_routes:
                add(web_app)
            # The dispatcher's startup and shutdown run with the aiohttp app's.
            setup_application(web_app, self.dispatcher, bot=self.bot)
            runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=REQUESTS_STOP_SECONDS)
        except BaseException:
            sock.close()
            raise
        self._handler = handler
        self._runner = runner
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await self.stop()
            raise
        self._port = int(sock.getsockname()[1])
        logger.info("webhook server on %s, path %s", self.local_url, self.path)
        await self.bot.set_webhook(
            self.url,
            secret_token=self.secret,
            allowed_updates=self.dispatcher.resolve_used_update_types(),
            drop_pending_updates=False,
            max_connections=self.max_connections,
        )
        logger.info("webhook set: Telegram delivers updates to %s", self.url)

    async def stop(self) -> None:
        """Stop taking updates, then the dispatcher's (graceful) shutdown."""
        runner, self._runner = self._runner, None
        if self._handler is not None:
            self._handler.accepting = False
        if runner is not None:
            # Closes the listening socket first, then runs the dispatcher's shutdown.
            await runner.cleanup()
        self._port = None
