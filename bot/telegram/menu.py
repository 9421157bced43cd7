"""The main menu's text and the help text, shown by /start, the menu and the catch-alls."""

from __future__ import annotations

from bot.config import Settings
from bot.telegram.i18n import Translator
from bot.telegram.texts import format_duration
from storage.models import Wallet


def menu_text(t: Translator, settings: Settings, wallet: Wallet) -> str:
    text = t("menu-text", balance=t.usd(wallet.balance))
    if settings.sandbox_mode:
        text = f"{text}\n\n{t('sandbox-badge')}"
    return text


def help_text(t: Translator, settings: Settings) -> str:
    return t(
        "help-text",
        lock=format_duration(settings.cancel_lock_seconds),
        timeout=format_duration(settings.auto_cancel_after_seconds),
    )
