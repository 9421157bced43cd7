"""The services the sandbox sells: exactly the reference's example answer of `GET /apps/USA`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Pool:
    """One source of numbers. Single-pool services have exactly one, with no provider id."""

    provider_id: str | None
    price_units: int
    count: int


@dataclass(slots=True, eq=False)
class Service:
    code: str
    name: str
    pools: list[Pool] = field(default_factory=list)

    @property
    def multi_pool(self) -> bool:
        # The upstream honours provider_id only for sb_* services; the prefix is the contract.
        return self.code.startswith("sb_")

    def pool(self, provider_id: str | None) -> Pool | None:
        if not self.multi_pool:
            return self.pools[0] if self.pools else None
        return next((p for p in self.pools if p.provider_id == provider_id), None)

    def sorted_pools(self) -> list[Pool]:
        # sorted() is stable, so equal prices keep catalogue order and the answer is deterministic.
        return sorted(self.pools, key=lambda p: p.price_units)

    def cheapest_in_stock(self) -> Pool | None:
        return next((p for p in self.sorted_pools() if p.count > 0), None)

    def listed_price_units(self) -> int:
        """`price` in `/apps`: the cheapest pool with stock, else the cheapest overall."""
        in_stock = self.cheapest_in_stock()
        if in_stock is not None:
            return in_stock.price_units
        pools = self.sorted_pools()
        return pools[0].price_units if pools else 0


def _single(code: str, name: str, price_units: int, stock: int) -> Service:
    return Service(code, name, [Pool(None, price_units, stock)])


def _multi(code: str, name: str, pools: list[tuple[str, int, int]]) -> Service:
    return Service(code, name, [Pool(pid, price, count) for pid, price, count in pools])


def default_catalogue(single_pool_stock: int = 1000) -> dict[str, Service]:
    """A fresh catalogue (each call builds new objects, because stock is mutated by purchases)."""
    services = [
        _single("WhatsApp", "WhatsApp", 18_500, single_pool_stock),
        _single("whatsapp-(us)5", "WhatsApp 2", 7_400, single_pool_stock),
        _single("Signal", "Signal", 6_000, single_pool_stock),
        _single("Telegram", "Telegram", 14_000, single_pool_stock),
        _multi(
            "sb_wa",
            "WhatsApp 3",
            [
                ("3109", 10_830, 4000),
                ("2266", 10_920, 4296),
                ("3170", 13_810, 1000),
                ("2617", 36_000, 344),
            ],
        ),
        _multi("sb_tg", "Telegram 2", [("2266", 4_500, 1820), ("3109", 6_000, 980)]),
        _multi("sb_fb", "Facebook", [("3109", 5_000, 2100), ("2266", 6_500, 890)]),
    ]
    return {service.code: service for service in services}
