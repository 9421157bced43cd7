"""`daisybot demo`: the real bot between a sandbox DaisySim and a Bot API emulator, shown in a
Telegram-like web chat on 127.0.0.1. See `runner.Demo` and `server.DemoWeb`."""

from bot.demo.runner import Demo, DemoConfig, DemoError

__all__ = ["Demo", "DemoConfig", "DemoError"]
