"""What can be bought and at which user price: the cached upstream catalogue plus markup,
ordered for one user (favourites, recent purchases, popular services, the rest).

The upstream caches /apps per account for 5 minutes, so asking more often gains nothing; the
cache is dropped early when a purchase says PRICE_VERIFICATION_FAILED or a pinned pool ran out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bot.config import Settings
from bot.daisysim import App, Country, DaisySimClient
from bot.money import apply_markup
from storage.repo import Repo

logger = logging.getLogger(__name__)

# A service code travels in callback data as-is when it is short and cannot clash with the
# separator; anything else is referred to by a short digest that the catalogue resolves back.
_MAX_RAW_REF = 24
_REF_DIGEST_MARK = "~"


def service_ref(code: str) -> str:
    """How a service code travels in callback data (and so in every button that names it)."""
    if len(code) <= _MAX_RAW_REF and ":" not in code and not code.startswith(_REF_DIGEST_MARK):
        return code
    digest = hashlib.sha256(code.encode()).hexdigest()[:12]
    return f"{_REF_DIGEST_MARK}{digest}"


CACHE_SECONDS = 300.0
PAGE_SIZE = 8
RECENT_LIMIT = 3
# How many of the user's last purchases to look through for RECENT_LIMIT distinct services.
RECENT_SCAN = 20
SEARCH_LIMIT = 8
DEFAULT_COUNTRY = "USA"

# Settings-table keys an admin writes to override the markup from the environment.
MARKUP_PERCENT_KEY = "markup_percent"
MARKUP_FIXED_UNITS_KEY = "markup_fixed_units"

# Services people buy most, matched on the start of the service name, most popular first.
POPULAR_NAMES: tuple[str, ...] = (
    "whatsapp",
    "telegram",
    "signal",
    "facebook",
    "instagram",
    "google",
    "tiktok",
    "discord",
    "twitter",
    "uber",
    "amazon",
    "microsoft",
    "apple",
)


@dataclass(frozen=True, slots=True)
class Pool:
    provider_id: str
    price_units: int  # what the user pays
    upstream_units: int
    count: int


@dataclass(frozen=True, slots=True)
class Service:
    """One service as the user sees it, prices already marked up."""

    code: str
    name: str
    price_units: int  # single-pool: the price; multi-pool: the cheapest pool that has stock
    upstream_units: int
    pools: tuple[Pool, ...]
    multi_pool: bool

    @property
    def ref(self) -> str:
        return service_ref(self.code)

    @property
    def available(self) -> bool:
        """False only when every pool of a multi-pool service is known to be empty."""
        return not self.multi_pool or not self.pools or any(p.count > 0 for p in self.pools)

    def pool(self, provider_id: str) -> Pool | None:
        return next((p for p in self.pools if p.provider_id == provider_id), None)

    def pools_in_stock(self, *, excluding: str | None = None) -> list[Pool]:
        return [p for p in self.pools if p.count > 0 and p.provider_id != excluding]


@dataclass(frozen=True, slots=True)
class Quote:
    """The price a purchase of `service` (from `provider_id`, or the cheapest pool) costs now."""

    service: Service
    provider_id: str | None
    price_units: int
    upstream_units: int


@dataclass(frozen=True, slots=True)
class Markup:
    percent: Decimal
    fixed_units: int
    # PRICE_STEP_USD in units: the user price is rounded up to it (an environment setting,
    # not part of what the admin stores).
    step_units: int = 1

    def apply(self, upstream_units: int) -> int:
        return apply_markup(upstream_units, self.percent, self.fixed_units, self.step_units)


@dataclass(slots=True)
class _Entry:
    fetched_at: float
    apps: list[App]


class Catalogue:
    """The catalogue service; one per process, shared through the dispatcher's workflow data."""

    def __init__(
        self,
        client: DaisySimClient,
        repo: Repo,
        settings: Settings,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._repo = repo
        self._settings = settings
        self._ttl = ttl
        self._clock = clock
        self._apps: dict[str, _Entry] = {}
        self._countries: tuple[float, list[Country]] | None = None
        # One fetch per country at a time: a burst of users opening the picker after the cache
        # expired should cost one upstream request, not one each.
        self._locks: dict[str, asyncio.Lock] = {}

    # --- upstream, cached ---------------------------------------------------------------

    async def countries(self) -> list[Country]:
        now = self._clock()
        if self._countries is not None and now - self._countries[0] < self._ttl:
            return self._countries[1]
        async with self._lock("/countries"):
            if self._countries is not None and self._clock() - self._countries[0] < self._ttl:
                return self._countries[1]
            countries = await self._client.countries()
            self._countries = (self._clock(), countries)
            return countries

    async def default_country(self) -> str:
        countries = await self.countries()
        return countries[0].id if countries else DEFAULT_COUNTRY

    def invalidate(self, country: str | None = None) -> None:
        """Forget cached prices (all countries when None): the next read fetches them again."""
        if country is None:
            self._apps.clear()
        else:
            self._apps.pop(country, None)

    async def _raw_apps(self, country: str) -> list[App]:
        entry = self._apps.get(country)
        if entry is not None and self._clock() - entry.fetched_at < self._ttl:
            return entry.apps
        async with self._lock(country):
            entry = self._apps.get(country)
            if entry is not None and self._clock() - entry.fetched_at < self._ttl:
                return entry.apps
            apps = await self._client.apps(country)
            self._apps[country] = _Entry(self._clock(), apps)
            logger.debug("catalogue for %s fetched: %d services", country, len(apps))
            return apps

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # --- prices -------------------------------------------------------------------------

    async def markup(self) -> Markup:
        """The admin's stored markup where there is one, else the environment's."""
        percent = self._settings.markup_percent
        fixed = self._settings.markup_fixed_units
        stored_percent = await self._repo.settings.get(MARKUP_PERCENT_KEY)
        if stored_percent is not None:
            try:
                value = Decimal(stored_percent)
            except InvalidOperation:
                value = Decimal(-1)
            if value.is_finite() and value >= 0:
                percent = value
            else:
                logger.warning("ignoring bad stored %s=%r", MARKUP_PERCENT_KEY, stored_percent)
        stored_fixed = await self._repo.settings.get(MARKUP_FIXED_UNITS_KEY)
        if stored_fixed is not None:
            if stored_fixed.strip().isdigit():
                fixed = int(stored_fixed)
            else:
                logger.warning("ignoring bad stored %s=%r", MARKUP_FIXED_UNITS_KEY, stored_fixed)
        return Markup(percent, fixed, self._settings.price_step_units)

    async def services(self, country: str) -> list[Service]:
        """Every service with user prices, popular ones first, then by name."""
        apps = await self._raw_apps(country)
        markup = await self.markup()
        services = [_priced(app, markup) for app in apps]
        services.sort(key=_default_order)
        return services

    async def find(self, country: str, ref: str) -> Service | None:
        return next((s for s in await self.services(country) if s.ref == ref), None)

    async def find_code(self, country: str, code: str) -> Service | None:
        return next((s for s in await self.services(country) if s.code == code), None)

    async def quote(self, country: str, ref: str, provider_id: str | None) -> Quote | None:
        """The current price of a purchase, or None when that service or pool is gone."""
        service = await self.find(country, ref)
        if service is None:
            return None
        if provider_id is None or not service.multi_pool:
            return Quote(service, None, service.price_units, service.upstream_units)
        pool = service.pool(provider_id)
        if pool is None:
            return None
        return Quote(service, pool.provider_id, pool.price_units, pool.upstream_units)

    # --- per user -----------------------------------------------------------------------

    async def for_user(self, user_id: int, country: str) -> list[Service]:
        """Favourites, then recent purchases, then popular services, then the rest."""
        services = await self.services(country)
        by_code = {s.code: s for s in services}
        ordered: list[Service] = []
        seen: set[str] = set()
        favourites = await self.favourites(user_id)
        for service in services:
            if service.code in favourites:
                ordered.append(service)
                seen.add(service.code)
        for code in await self.recent(user_id):
            recent = by_code.get(code)
            if recent is not None and code not in seen:
                ordered.append(recent)
                seen.add(code)
        ordered.extend(s for s in services if s.code not in seen)
        return ordered

    async def search(self, country: str, text: str) -> list[Service]:
        """Services whose name or code contains the text, best matches (prefix) first."""
        needle = " ".join(text.lower().split())
        if not needle:
            return []
        hits = [
            s
            for s in await self.services(country)
            if needle in s.name.lower() or needle in s.code.lower()
        ]
        hits.sort(key=lambda s: (not s.name.lower().startswith(needle), _default_order(s)))
        return hits[:SEARCH_LIMIT]

    async def favourites(self, user_id: int) -> set[str]:
        return await self._repo.favourites.codes(user_id)

    async def toggle_favourite(self, user_id: int, code: str) -> bool:
        """Star or unstar a service; returns whether it is a favourite now."""
        return await self._repo.favourites.toggle(user_id, code)

    async def recent(self, user_id: int, limit: int = RECENT_LIMIT) -> list[str]:
        """Codes of the services this user bought most recently, newest first."""
        codes: list[str] = []
        for activation in await self._repo.activations.last_for_user(user_id, RECENT_SCAN):
            if activation.service_code not in codes:
                codes.append(activation.service_code)
                if len(codes) == limit:
                    break
        return codes


def _priced(app: App, markup: Markup) -> Service:
    pools = tuple(
        Pool(p.provider_id, markup.apply(p.price_units), p.price_units, p.count)
        for p in sorted(app.providers, key=lambda p: (p.price_units, p.provider_id))
    )
    upstream = app.price_units
    stocked = [p for p in pools if p.count > 0]
    if stocked:
        # What "cheapest available" will really be charged: the cheapest pool with stock.
        upstream = stocked[0].upstream_units
    return Service(
        code=app.code,
        name=app.name,
        price_units=markup.apply(upstream),
        upstream_units=upstream,
        pools=pools,
        multi_pool=app.is_multi_pool,
    )


def _popularity(name: str) -> int:
    lowered = name.lower()
    for rank, popular in enumerate(POPULAR_NAMES):
        if lowered.startswith(popular):
            return rank
    return len(POPULAR_NAMES)


def _default_order(service: Service) -> tuple[int, str, str]:
    return (_popularity(service.name), service.name.lower(), service.code)


def page_of(
    items: Sequence[Service], page: int, size: int = PAGE_SIZE
) -> tuple[list[Service], int, int]:
    """The items of one page, the page number actually used (clamped) and the page count."""
    pages = max(1, -(-len(items) // size))
    page = min(max(page, 0), pages - 1)
    return list(items[page * size : (page + 1) * size]), page, pages
