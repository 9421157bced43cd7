"""The main menu's text and the help text, shown by /start, the menu and the catch-alls."""

from __future__ import annotations

import html

from bot.config import Settings
from bot.telegram.i18n import Translator
from bot.telegram.texts import format_duration
from storage.models import Wallet


def menu_text(t: Translator, settings: Settings, wallet: Wallet) -> str:
    text = t("menu-text", balance=t.usd(wallet.balance))
    if settings.sandbox_mode:
        text = f"{text}\n\n{t('sandbox-badge')}"
    return text


def support_contact(t: Translator, settings: Settings) -> str:
    """Who to write to: SUPPORT_CONTACT as a link, or "an admin of this bot" without it."""
    contact = settings.support_contact
    if contact is None:
        return t.plain("support-fallback")
    if contact.startswith("@"):
        return contact  # Telegram links a @username by itself
    return f'<a href="{html.escape(contact, quote=True)}">{html.escape(contact)}</a>'


def help_text(t: Translator, settings: Settings, *, admin: bool = False) -> str:
    text = t(
        "help-text",
        lock=format_duration(settings.cancel_lock_seconds),
        timeout=format_duration(settings.auto_cancel_after_seconds),
        contact=support_contact(t, settings),
    )
    if admin:
        text += "\n\n" + t("help-admin")
    return text


def topup_howto(t: Translator, settings: Settings) -> str:
    """The line under a balance: how to get more, never a dead end."""
    if settings.sandbox_mode:
        return t("balance-topup-sandbox")
    return t("balance-topup-admin", contact=support_contact(t, settings))
