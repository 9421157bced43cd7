"""The DaisySim Telegram bot."""

from bot import lazy_types

# Before anything imports aiogram: its Bot API types are then built on first use (see the
# module), which keeps about 110 MB of validators the bot never uses out of its memory.
lazy_types.install()
