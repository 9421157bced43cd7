"""The Telegram side of maintenance mode: the notice users get when a purchase or a top-up is
paused, and the edge check the top-up handlers make before any invoice or transfer."""

from __future__ import annotations

from bot.services.maintenance import Maintenance
from bot.telegram.i18n import Translator


def paused_notice(t: Translator, minutes_left: int | None) -> str:
    back = (
        t("maintenance-back-soon")
        if minutes_left is None
        else t("maintenance-back-in", minutes=minutes_left)
    )
    return f"{t('maintenance-paused')}\n{back}"


def precheckout_refusal(t: Translator, minutes_left: int | None) -> str:
    """Plain text: Telegram shows pre-checkout errors as they are."""
    if minutes_left is None:
        return t.plain("maintenance-precheckout-soon")
    return t.plain("maintenance-precheckout-in", minutes=minutes_left)


async def topups_paused(maintenance: Maintenance, t: Translator) -> str | None:
    """The notice to show instead of a top-up (a Stars invoice, a group funding) while
    maintenance is on; None when top-ups are open."""
    status = await maintenance.paused()
    return None if status is None else paused_notice(t, status.minutes_left)


__all__ = ["paused_notice", "precheckout_refusal", "topups_paused"]
