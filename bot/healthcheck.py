"""`python -m bot.healthcheck [URL]`: exit 0 when the bot's `/healthz` answers 200, else 1.

The container's HEALTHCHECK runs it: the slim Python image has no curl or wget, and this needs
only the standard library (and the one constant of bot.config). Without a URL it asks the
servers the bot serves `/healthz` on, read from the same environment as the bot: the webhook
server (`WEBHOOK_LISTEN`) when `WEBHOOK_URL` is set, and the metrics server (`METRICS_LISTEN`).
A wildcard listen address (0.0.0.0, ::) is asked on loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

from bot.config import DEFAULT_WEBHOOK_LISTEN

HEALTH_PATH = "/healthz"
# Shorter than the HEALTHCHECK's own --timeout, so a hung server reads as one clear failure.
TIMEOUT_SECONDS = 4.0
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "[::]": "::1"}


def health_urls(env: Mapping[str, str]) -> list[str]:
    """Where `/healthz` is served under these settings, the webhook server first; empty when
    no server serves it."""
    listens: list[str] = []
    if env.get("WEBHOOK_URL", "").strip():
        listens.append(env.get("WEBHOOK_LISTEN", "").strip() or DEFAULT_WEBHOOK_LISTEN)
    if env.get("METRICS_LISTEN", "").strip():
        listens.append(env["METRICS_LISTEN"].strip())
    return [_url(listen) for listen in dict.fromkeys(listens)]


def _url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    host = _WILDCARDS.get(host, host).strip("[]")
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{HEALTH_PATH}"


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    return status == 200, f"{url}: HTTP {status}"


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    urls = args or health_urls(os.environ if env is None else env)
    if not urls:
        print("healthcheck: set METRICS_LISTEN (or WEBHOOK_URL) or pass a URL", file=sys.stderr)
        return 1
    # Healthy when a server of the bot says so: which of them serves /healthz in webhook
    # mode is the app's business, not the probe's.
    lines = []
    for url in urls:
        healthy, line = check(url)
        if healthy:
            print(line)
            return 0
        lines.append(line)
    print("unhealthy: " + "; ".join(lines), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
