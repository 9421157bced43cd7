"""`python -m bot` and `daisybot`: one entry point with subcommands.

Subcommand modules are imported lazily so that `daisybot sandbox` does not pay for aiogram and a
settings error is reported before anything heavy loads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daisybot",
        description="Telegram bot for virtual US numbers and SMS codes (DaisySim).",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")

    sandbox = sub.add_parser("sandbox", help="serve the local DaisySim sandbox API")
    from bot.sandbox.cli import add_sandbox_arguments

    add_sandbox_arguments(sandbox)

    demo = sub.add_parser("demo", help="try the bot in a local web chat, no Telegram token needed")
    from bot.demo.cli import add_demo_arguments

    add_demo_arguments(demo)

    sub.add_parser(
        "auto", help="run the bot when BOT_TOKEN is set, otherwise the demo (dev.py run uses it)"
    )

    check = sub.add_parser("ledger-check", help="verify every wallet and activation settles")
    check.add_argument("--db", help="SQLite file (default: DATABASE_PATH)")

    from bot.backup_cli import add_backup_arguments, add_restore_arguments

    add_backup_arguments(
        sub.add_parser("backup", help="copy the database to FILE, safely while the bot runs")
    )
    add_restore_arguments(
        sub.add_parser("restore", help="replace the (stopped) bot's database with FILE")
    )
    return parser


def cli(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    command = args.command or "run"

    if command == "sandbox":
        from bot.sandbox.cli import run_from_args

        return run_from_args(args)
    if command == "demo":
        from bot.demo.cli import run_from_args as run_demo

        return run_demo(args)
    if command == "ledger-check":
        from bot.ledger_check import main as ledger_main

        return ledger_main(args_list[1:])
    if command in ("backup", "restore"):
        from bot.backup_cli import run_backup, run_restore

        return run_backup(args) if command == "backup" else run_restore(args)

    from bot.config import SettingsError, load_settings

    try:
        settings = load_settings(require_token=command != "auto")
        if settings.bot_token is None:
            # Only reached for `auto`: a newcomer without a token gets the whole product in a
            # browser instead of an error.
            print("daisybot: no BOT_TOKEN set, so starting the demo (web chat) instead", flush=True)
            from bot.demo.cli import run_from_args as run_demo

            return run_demo(parser.parse_args(["demo"]))
    except SettingsError as exc:
        print(f"daisybot: {exc}", file=sys.stderr)
        return 2
    from bot.app import run_bot

    return run_bot(settings)


def main() -> None:
    sys.exit(cli())


if __name__ == "__main__":
    main()
