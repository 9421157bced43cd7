"""`daisybot sandbox ...` (and `python -m bot.sandbox ...`): serve the sandbox from a shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from bot.cli_args import probability, seconds_range
from bot.money import MoneyError, to_units

logger = logging.getLogger(__name__)


def _usd_units(text: str) -> int:
    try:
        units = to_units(text)
    except MoneyError:
        raise argparse.ArgumentTypeError(
            f"not a USD amount with at most 4 decimals: {text!r}"
        ) from None
    if units < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return units


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _key_list(text: str) -> list[str] | None:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    return keys or None


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8787, help="TCP port, 0 for any free one (default 8787)"
    )
    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        help="the sandbox clock runs this many times faster than real time (default 1)",
    )
    parser.add_argument(
        "--keys",
        type=_key_list,
        default=None,
        help="comma-separated API keys to accept (default: any key opens an account)",
    )
    parser.add_argument(
        "--start-balance",
        type=_usd_units,
        default=500_000,
        metavar="USD",
        help="balance of a newly opened account in USD (default 50)",
    )
    parser.add_argument(
        "--auto-codes",
        type=seconds_range("5-20", off=("", "off", "none", "no")),
        default=None,
        metavar="MIN-MAX",
        help="every new number gets an SMS code after MIN..MAX real seconds, e.g. 5-20 "
        "(default: codes only through the control API)",
    )
    parser.add_argument(
        "--code-probability",
        type=probability,
        default=1.0,
        help="with --auto-codes, the share of numbers that ever get a code (default 1)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for numbers and codes")


async def _serve_until_stopped(args: argparse.Namespace) -> None:
    from bot.sandbox.server import serve

    serving = asyncio.ensure_future(
        serve(
            args.host,
            args.port,
            time_scale=args.time_scale,
            keys=args.keys,
            start_balance_units=args.start_balance,
            auto_code_after=args.auto_codes,
            auto_code_probability=getattr(args, "code_probability", 1.0),
            seed=getattr(args, "seed", None),
        )
    )
    # SIGTERM (docker stop, systemd) stops as cleanly as Ctrl-C does.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; 0 on a clean stop, 1 if the port cannot be opened."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve_until_stopped(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"daisybot sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print("DaisySim sandbox stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox", description="Serve the DaisySim sandbox."
    )
    add_sandbox_arguments(parser)
    return run_from_args(parser.parse_args(argv))
