"""How long from an SMS code arriving upstream to the user's phone: p50, p99, max.

For N concurrent activations (1, 20, 100, 300), codes are made to arrive at random moments in
the sandbox (its control API); the latency of each is measured from just before that moment
to the arrival of the bot's code message at the Bot API emulator (its `calls` timestamps, one
monotonic clock for both). Also reported: the upstream requests per upstream minute (from
the sandbox's request log) and the 429s of both sides.

Time scale. The check budget is 60 per 60 upstream seconds; a sandbox running `s` times
faster has a 60/s-second window. N ≤ 20 runs unscaled (real seconds = upstream seconds). For
N = 100 and 300 the upstream runs 2× faster, so the run stays short while Telegram (whose
limits are real time) still sees codes spread over 10-16 real seconds; their latencies are
given in real seconds and in upstream-equivalent seconds (real × scale), and the N = 300
target (p99 within one 15 s budget cycle plus 1 s) is about the upstream ones.

    python -m bench.otp_latency            # all scenarios, < 2 minutes
    python -m bench.otp_latency --only 20  # one of them

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import Rig, json_line, percentile, provision, rig, table, wait_for
from storage.models import Activation

CODE = re.compile(r"\b\d{6}\b")


@dataclass(frozen=True)
class Scenario:
    n: int
    time_scale: float
    # Codes arrive uniformly at random within this many real seconds after the start.
    spread: float
    rounds: int = 1


SCENARIOS = (
    Scenario(n=1, time_scale=1.0, spread=2.0, rounds=5),
    Scenario(n=20, time_scale=1.0, spread=8.0),
    Scenario(n=100, time_scale=2.0, spread=10.0),
    Scenario(n=300, time_scale=2.0, spread=16.0),
)


@dataclass
class Result:
    scenario: Scenario
    latencies: list[float]
    checks_per_minute: float
    requests_per_minute: float
    upstream_429: int
    telegram_429: int
    lost: int

    def stat(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def targets(self) -> dict[str, bool]:
        s = self.scenario
        up = [x * s.time_scale for x in self.latencies]
        met = {
            "zero_429": self.upstream_429 == 0 and self.telegram_429 == 0,
            "nothing_lost": self.lost == 0,
        }
        if s.n <= 20:
            met["p50<=2s"] = percentile(up, 50) <= 2.0
            met["p99<=4s"] = percentile(up, 99) <= 4.0
        if s.n >= 300:
            met["p99<=16s_upstream"] = percentile(up, 99) <= 16.0
        return met


async def run(scenario: Scenario, rng: random.Random) -> Result:
    latencies: list[float] = []
    lost = 0
    async with rig(time_scale=scenario.time_scale) as r:
        log_start = 0
        began = 0.0
        for round_no in range(scenario.rounds):
            activations = await provision(r, scenario.n, first_user_id=100_000 + round_no * 10_000)
            if round_no == 0:
                await r.start_delivery()
                log_start = max((e.seq for e in await r.sandbox.control.request_log()), default=0)
                began = time.monotonic()
            await wait_for(
                following(r, activations), timeout=10, what="the poller follows every number"
            )
            got, missing = await deliver_codes(r, activations, scenario.spread, rng)
            latencies.extend(got)
            lost += missing
        ended = time.monotonic()
        log = [e for e in await r.sandbox.control.request_log(after=log_start)]
        stats = await r.sandbox.control.stats()
        upstream_minutes = (ended - began) * scenario.time_scale / 60.0
        checks = sum(1 for e in log if e.endpoint in ("check", "check-all"))
        polled = sum(1 for e in log if e.endpoint not in ("purchase",))
        return Result(
            scenario=scenario,
            latencies=latencies,
            checks_per_minute=checks / upstream_minutes,
            requests_per_minute=polled / upstream_minutes,
            upstream_429=stats.rate_limited_total,
            telegram_429=r.emulator.flood_429_count,
            lost=lost,
        )


def following(r: Rig, activations: list[Activation]) -> Callable[[], bool]:
    ids = {a.upstream_id for a in activations}
    return lambda: ids <= set(r.delivery.poller.schedule.ids())


async def deliver_codes(
    r: Rig, activations: list[Activation], spread: float, rng: random.Random
) -> tuple[list[float], int]:
    """Make each number's code arrive at a random moment; return each code's latency."""
    start = time.monotonic()
    plan = sorted((rng.uniform(0.0, spread), a) for a in activations)
    sent_at: dict[str, float] = {}
    codes: dict[str, int] = {}
    for offset, activation in plan:
        delay = start + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        code = f"{rng.randrange(10**6):06d}"
        codes[code] = activation.user_id
        sent_at[code] = time.monotonic()
        assert activation.upstream_id is not None
        await r.sandbox.control.deliver_code(activation.upstream_id, code)

    found: dict[str, float] = {}
    seen = 0

    def arrived() -> bool:
        # Only the calls since the last look: the emulator's list grows with every request.
        nonlocal seen
        calls = r.emulator.calls
        for call in calls[seen:]:
            if call.method != "sendMessage" or not call.ok:
                continue
            text = str(call.params.get("text", ""))
            for code in CODE.findall(text):
                if codes.get(code) == call.chat_id and code not in found:
                    found[code] = call.at
        seen = len(calls)
        return len(found) == len(codes)

    budget_cycle = 16.0 / r.time_scale
    with contextlib.suppress(TimeoutError):
        await wait_for(arrived, timeout=budget_cycle + 10.0, what="every code", interval=0.05)
    return [found[c] - sent_at[c] for c in found], len(codes) - len(found)


def report(results: list[Result]) -> dict[str, object]:
    rows = []
    scenarios = []
    for res in results:
        s = res.scenario
        up = s.time_scale
        rows.append(
            [
                s.n,
                f"{s.time_scale:g}x",
                len(res.latencies),
                res.stat(50),
                res.stat(99),
                max(res.latencies),
                res.stat(50) * up,
                res.stat(99) * up,
                max(res.latencies) * up,
                res.checks_per_minute,
                res.upstream_429,
                res.telegram_429,
                "yes" if all(res.targets.values()) else "NO",
            ]
        )
        scenarios.append(
            {
                "n": s.n,
                "time_scale": s.time_scale,
                "codes": len(res.latencies),
                "lost": res.lost,
                "p50_real_s": round(res.stat(50), 3),
                "p99_real_s": round(res.stat(99), 3),
                "max_real_s": round(max(res.latencies), 3),
                "p50_upstream_s": round(res.stat(50) * up, 3),
                "p99_upstream_s": round(res.stat(99) * up, 3),
                "max_upstream_s": round(max(res.latencies) * up, 3),
                "check_requests_per_upstream_minute": round(res.checks_per_minute, 1),
                "upstream_requests_per_upstream_minute": round(res.requests_per_minute, 1),
                "upstream_429": res.upstream_429,
                "telegram_429": res.telegram_429,
                "targets": res.targets,
            }
        )
    print(
        table(
            [
                "N",
                "scale",
                "codes",
                "p50 s",
                "p99 s",
                "max s",
                "p50 up-s",
                "p99 up-s",
                "max up-s",
                "checks/up-min",
                "429 up",
                "429 tg",
                "targets",
            ],
            rows,
        )
    )
    print(
        "latency = upstream code arrival → the code message at the Telegram emulator; "
        "'up-s' = real seconds × the sandbox's time scale; checks/up-min = check-all "
        "requests per upstream minute (budget 60; the poller paces itself to 58, "
        "leaving 2 to users)"
    )
    return {
        "bench": "otp_latency",
        "ok": all(all(r.targets.values()) for r in results),
        "scenarios": scenarios,
    }


async def main_async(only: int | None, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    results = []
    for scenario in SCENARIOS:
        if only is not None and scenario.n != only:
            continue
        results.append(await run(scenario, rng))
    return report(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, help="run only the scenario with this N")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    summary = asyncio.run(main_async(args.only, args.seed))
    print(json_line(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
