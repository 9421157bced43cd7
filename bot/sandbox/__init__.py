"""A faithful local DaisySim: the API on aiohttp.web, a control API, and an in-process runner.

Tests and benchmarks use it in place of the real upstream, and the bot uses it when no API key
is configured::

    async with Sandbox(time_scale=60) as sb:
        # point a DaisySim client at sb.base_url with any key (each key opens an account)
        await sb.control.deliver_code("32886", "123456")

The API lives under `/api/v1/server7` exactly as the reference describes it. The control API
(`/_control`, no auth, money in integer units of 1/10 000 USD) is wrapped by `SandboxControl`:

    POST /_control/reset                    everything back to a fresh start
    POST /_control/accounts                 {key, balance_units?, status?} create or update
    GET  /_control/accounts?key=K           balance, debits, refunds and orders of K
    GET  /_control/stock                    pools per service
    POST /_control/stock                    {app, provider_id|null, count?, price_units?}
    POST /_control/codes                    {activation_id, code?} an SMS code arrives now
    GET|POST|DELETE /_control/faults        list / arm {endpoint, kind, times, key?, ...} / clear
    GET  /_control/log?after=SEQ            the request log
    GET  /_control/stats                    requests and 429s per endpoint, the clock
    GET|POST /_control/clock                read / {advance: upstream seconds}
"""

from bot.sandbox.control import SandboxControl, SandboxControlError
from bot.sandbox.server import API_PREFIX, Sandbox, serve

__all__ = ["API_PREFIX", "Sandbox", "SandboxControl", "SandboxControlError", "serve"]
