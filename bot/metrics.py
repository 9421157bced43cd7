"""Every Prometheus metric the bot exports, on one registry per app.

The registry is the app's own, not prometheus_client's global default: the e2e tests build
many apps in one process, and each must count only its own updates. Services, the client and
the Telegram edge take a `Metrics` and call the prometheus_client objects on it directly: the
library is plain Python with no I/O, no Telegram and no framework, so a protocol in front of
it would only restate each metric's `inc`/`observe`. A part built without one (a unit test)
gets a private `Metrics()` nobody scrapes.

Gauges of state the database holds (queue length, outbox depth and age, reconcile backlog) and
the refunds by reason are not updated where the state changes: `/metrics` reads them from the
repositories at scrape time and hands them over as a `StateSnapshot`, so every path that
changes them, another process included, is counted without a hook in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "daisybot"

# Handling one update: most take a few database round trips; a purchase waits for upstream.
UPDATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# From the poller's look that found a code to Telegram accepting its message.
CODE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
# A place in the purchase queue: 10 purchases a minute, so waits run to minutes.
QUEUE_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """What the database holds right now, read by `/metrics` before it renders."""

    queue_length: int = 0
    outbox_pending: int = 0
    outbox_due: int = 0
    outbox_oldest_due_age: float = 0.0
    reconcile_backlog: int = 0
    refunds: Mapping[str, int] = field(default_factory=dict)
    poller_cycle_seconds: float = 0.0
    poller_last_tick_age: float | None = None


class _StateCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = StateSnapshot()

    def collect(self) -> Iterable[Metric]:
        s = self.snapshot
        gauges: list[tuple[str, str, float]] = [
            ("queue_length", "Purchases waiting in the purchase queue", s.queue_length),
            ("outbox_pending", "Messages in the outbox not yet sent", s.outbox_pending),
            ("outbox_due", "Outbox messages due now (not waiting for a retry)", s.outbox_due),
            (
                "outbox_oldest_due_age_seconds",
                "Age of the oldest outbox message that is due",
                s.outbox_oldest_due_age,
            ),
            (
                "reconcile_backlog",
                "Purchases sent upstream whose outcome is not known yet",
                s.reconcile_backlog,
            ),
            (
                "poller_cycle_seconds",
                "Seconds for the poller to look once at every waiting number at its pace",
                s.poller_cycle_seconds,
            ),
        ]
        if s.poller_last_tick_age is not None:
            gauges.append(
                (
                    "poller_last_tick_age_seconds",
                    "Seconds since the poller's last scheduling step",
                    s.poller_last_tick_age,
                )
            )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        refunds = CounterMetricFamily(
            f"{PREFIX}_refunds",
            "Activations refunded, by reason (from the ledger)",
            labels=["reason"],
        )
        for reason, count in sorted(s.refunds.items()):
            refunds.add_metric([reason], count)
        yield refunds


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            f"{PREFIX}_updates", "Telegram updates handled", ["type", "outcome"], registry=r
        )
        self.updates_duplicate = Counter(
            f"{PREFIX}_updates_duplicate",
            "Telegram updates delivered again (same update_id) and skipped",
            registry=r,
        )
        self.update_seconds = Histogram(
            f"{PREFIX}_update_seconds",
            "Time to handle one Telegram update",
            ["type"],
            buckets=UPDATE_BUCKETS,
            registry=r,
        )
        self.purchases = Counter(
            f"{PREFIX}_purchases",
            "Purchase calls to the upstream by outcome (bought, rejected, unknown, deferred)",
            ["outcome"],
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a purchase waited in the queue before its call was sent",
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.codes_delivered = Counter(
            f"{PREFIX}_codes_delivered", "SMS codes Telegram accepted for the user", registry=r
        )
        self.code_delivery_seconds = Histogram(
            f"{PREFIX}_code_delivery_seconds",
            "From the poller storing a code to Telegram accepting its message",
            buckets=CODE_BUCKETS,
            registry=r,
        )
        self.telegram_errors = Counter(
            f"{PREFIX}_telegram_errors",
            "Bot API requests that failed, by method and error",
            ["method", "error"],
            registry=r,
        )
        self.telegram_rate_limited = Counter(
            f"{PREFIX}_telegram_rate_limited",
            "Bot API requests refused with 429 (flood control)",
            ["method"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            f"{PREFIX}_upstream_request_seconds",
            "DaisySim requests (each attempt) by endpoint",
            ["endpoint"],
            buckets=UPSTREAM_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            f"{PREFIX}_upstream_errors",
            "DaisySim attempts that failed, by endpoint and error class",
            ["endpoint", "error"],
            registry=r,
        )
        self.upstream_rate_limited = Counter(
            f"{PREFIX}_upstream_rate_limited",
            "DaisySim requests refused with 429 (RATE_LIMITED)",
            ["endpoint"],
            registry=r,
        )
        self.upstream_balance = Gauge(
            f"{PREFIX}_upstream_balance_usd",
            "The DaisySim account's balance at its last reading",
            registry=r,
        )
        self.poller_batch_seconds = Histogram(
            f"{PREFIX}_poller_batch_seconds",
            "One check-all batch: the call and settling what it answered",
            buckets=UPSTREAM_BUCKETS,
            registry=r,
        )
        self._state = _StateCollector()
        r.register(self._state)

    def set_state(self, snapshot: StateSnapshot) -> None:
        """The database's side, read just before a scrape renders."""
        self._state.snapshot = snapshot
