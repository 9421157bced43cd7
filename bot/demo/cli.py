"""`daisybot demo`: the whole product in a browser, with no bot token and no DaisySim account."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import webbrowser
from pathlib import Path

from bot.cli_args import probability, seconds_range
from bot.demo.runner import DemoConfig, DemoError

logger = logging.getLogger(__name__)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be within 0..65535 (0 picks a free port)")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("must be within (0, 10000]")
    return value


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `daisybot demo`; the lead's main parser calls this on its subparser."""
    defaults = DemoConfig()
    parser.add_argument(
        "--port",
        type=_port,
        default=defaults.port,
        help=f"port of the web chat on 127.0.0.1, 0 for any free one (default {defaults.port})",
    )
    parser.add_argument(
        "--open", action="store_true", help="open the web chat in the default browser"
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        metavar="PATH",
        help="keep the demo's SQLite file here, e.g. data/demo.sqlite3 "
        "(default: a temporary file removed on exit)",
    )
    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=defaults.time_scale,
        help="the sandbox DaisySim's clock runs this many times faster, so the 180 s cancel "
        f"lock takes 180/SCALE real seconds (default {defaults.time_scale:g})",
    )
    parser.add_argument(
        "--code-after",
        type=seconds_range("8-25, or 'off'"),
        default=defaults.code_after,
        metavar="MIN-MAX",
        help="an SMS code arrives MIN..MAX real seconds after a purchase, or 'off' "
        "(default {}-{})".format(*(int(x) for x in defaults.code_after or (0, 0))),
    )
    parser.add_argument(
        "--code-probability",
        type=probability,
        default=defaults.code_probability,
        help="the share of numbers that ever get a code; the rest can be cancelled for a "
        f"refund (default {defaults.code_probability:g})",
    )
    parser.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help=f"logging level of the bot and the servers (default {defaults.log_level})",
    )


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    return DemoConfig(
        port=args.port,
        time_scale=args.time_scale,
        code_after=args.code_after,
        code_probability=args.code_probability,
        database_path=args.db,
        log_level=args.log_level,
        configure_logging=True,
    )


async def _serve(config: DemoConfig, open_browser: bool) -> None:
    from bot.demo.runner import Demo

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows' default loop: there Ctrl-C arrives as KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with Demo(config) as demo:
            print(demo.banner(), flush=True)
            if open_browser:
                # webbrowser blocks while it spawns the browser; keep the loop serving meanwhile.
                await asyncio.to_thread(webbrowser.open, demo.url)
            await stop.wait()
            print("\nStopping the demo…", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or SIGTERM: 0 on a clean stop, 1 if it cannot start."""
    config = config_from_args(args)
    logging.basicConfig(
        level=getattr(logging, config.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(config, bool(args.open)))
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed (during start-up): still a clean stop.
        pass
    except DemoError as exc:
        print(f"daisybot demo: {exc}", file=sys.stderr)
        return 1
    print("Demo stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.demo",
        description="Try the DaisySim bot in a local web chat: no Telegram, no DaisySim account.",
    )
    add_demo_arguments(parser)
    return run_from_args(parser.parse_args(argv))
