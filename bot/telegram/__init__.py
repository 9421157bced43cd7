"""The Telegram edge: everything that speaks the Bot API.

Callback data, keyboards, cards and texts, filters, middlewares, the outbox sender and
Telegram's limits, and the notifier that turns what services report into messages. Handlers
call into here and into `bot.services`; services never import this package.
"""
