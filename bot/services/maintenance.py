"""Maintenance mode: new purchases and top-ups paused, everything else working.

An admin turns it on from the panel for a while ("back in about 30 min") or until they turn
it off; MAINTENANCE=1 forces it on whatever is stored. The switch is one settings row,
`maintenance_until`: a UTC timestamp (the estimate; past it, maintenance is over by itself)
or `manual` (until turned off). Stored, so a restart does not reopen the shop.

What is paused is decided at the edges that take money in or send it upstream (Buying, the
top-up handlers); codes, refunds, cancels, the balance and the history never ask.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from storage.repo import Repo

MAINTENANCE_KEY: Final = "maintenance_until"
_MANUAL: Final = "manual"
# What the admin panel offers, in minutes; None is "until I turn it off".
DURATIONS_MINUTES: Final = (30, 60, 120, 240)


@dataclass(frozen=True, slots=True)
class MaintenanceStatus:
    on: bool
    forced: bool  # MAINTENANCE=1: the panel cannot turn it off
    until: float | None  # the estimate (UTC timestamp); None: no estimate
    now: float

    @property
    def minutes_left(self) -> int | None:
        """Whole minutes to the estimate, rounded up (a notice never says "0 min")."""
        if self.until is None:
            return None
        return max(1, math.ceil((self.until - self.now) / 60))


class Maintenance:
    """Built once by the composition root; reads the switch on every question, so an admin's
    change (or a second process's) takes effect at once."""

    def __init__(
        self, repo: Repo, *, forced: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._repo = repo
        self.forced = forced
        self._clock = clock

    async def status(self) -> MaintenanceStatus:
        now = self._clock()
        raw = await self._repo.settings.get(MAINTENANCE_KEY)
        until: float | None = None
        stored = False
        if raw == _MANUAL:
            stored = True
        elif raw is not None:
            try:
                until = float(raw)
            except ValueError:
                until = None  # unreadable: treated as off rather than closing the shop
            stored = until is not None and until > now
            if not stored:
                until = None
        return MaintenanceStatus(on=self.forced or stored, forced=self.forced, until=until, now=now)

    async def paused(self) -> MaintenanceStatus | None:
        """The status while sales are paused, else None."""
        status = await self.status()
        return status if status.on else None

    async def turn_on(self, minutes: float | None) -> MaintenanceStatus:
        """On for `minutes` (the estimate shown to users), or until `turn_off` when None."""
        if minutes is not None and minutes <= 0:
            raise ValueError("minutes must be positive")
        value = _MANUAL if minutes is None else repr(self._clock() + minutes * 60)
        await self._repo.settings.set(MAINTENANCE_KEY, value)
        return await self.status()

    async def turn_off(self) -> MaintenanceStatus:
        """Off, unless MAINTENANCE=1 forces it on (then only the stored switch is cleared)."""
        await self._repo.settings.delete(MAINTENANCE_KEY)
        return await self.status()


__all__ = ["DURATIONS_MINUTES", "MAINTENANCE_KEY", "Maintenance", "MaintenanceStatus"]
