"""1 000 codes for 1 000 users at once: how fast does the outbox fan them out to Telegram?

1 000 users each wait for a number, and every code is already there upstream when the poller
starts (the sandbox's control API). The poller finds them all within seconds (the upstream
runs 60× faster here, so its check budget is no bottleneck: what is measured is Telegram's
side) and the outbox sender
delivers them under Telegram's flood limits, which the Bot API emulator enforces in real time
(≈30 messages a second overall, 1 a second per chat). Reported from the emulator's records:
messages a second, 429s, and whether every user got their code exactly once.

    python -m bench.fanout              # 1 000 users, codes only
    python -m bench.fanout --cards      # each user also has an activation card to redraw

Prints a table, then one JSON line. Target: ≥ 27 messages/s, zero 429s, nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter

from bench.common import json_line, provision, rig, table, wait_for

TIME_SCALE = 60.0
TARGET_RATE = 27.0


async def run(users: int, with_cards: bool) -> dict[str, object]:
    async with rig(time_scale=TIME_SCALE) as r:
        setup_began = time.monotonic()
        activations = await provision(r, users, with_cards=with_cards)
        setup = time.monotonic() - setup_began
        # Every code is there upstream before the bot looks: they all "arrive at once" for
        # the poller, which finds them as fast as its check budget allows.
        gate = asyncio.Semaphore(20)

        async def deliver(upstream_id: str) -> None:
            async with gate:
                await r.sandbox.control.deliver_code(upstream_id)

        await asyncio.gather(*(deliver(a.upstream_id) for a in activations if a.upstream_id))
        first_call = len(r.emulator.calls)
        began = time.monotonic()
        await r.start_delivery()
        poller = r.delivery.poller
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: poller.stats.codes >= users, timeout=60, what="codes stored")
        found = time.monotonic() - began
        expected = users * (2 if with_cards else 1)
        sender = r.delivery.sender

        def done() -> bool:
            return sender.stats.sent >= expected

        with contextlib.suppress(TimeoutError):
            await wait_for(done, timeout=expected / TARGET_RATE + 30, what="every message")
        await sender.wait_idle(timeout=5)

        calls = [
            c
            for c in r.emulator.calls[first_call:]
            if c.method in ("sendMessage", "editMessageText") and c.chat_id is not None
        ]
        ok = [c for c in calls if c.ok]
        codes_per_user = Counter(
            c.chat_id for c in ok if c.method == "sendMessage" and "🔑" in str(c.params.get("text"))
        )
        lost = sum(1 for a in activations if codes_per_user[a.user_id] == 0)
        twice = sum(1 for n in codes_per_user.values() if n > 1)
        span = ok[-1].at - ok[0].at if len(ok) > 1 else float("nan")
        rate = (len(ok) - 1) / span if len(ok) > 1 else 0.0
        end_to_end = ok[-1].at - began if ok else float("nan")
        busiest = max_in_window([c.at for c in ok], 1.0)
        states = await r.repo.outbox.count_by_state()
        upstream = await r.sandbox.control.stats()
        result = {
            "bench": "fanout",
            "users": users,
            "cards": with_cards,
            "time_scale": TIME_SCALE,
            "setup_s": round(setup, 1),
            "codes_stored_within_s": round(found, 2),
            "messages": len(ok),
            "code_messages": sum(codes_per_user.values()),
            "messages_per_s": round(rate, 2),
            "first_to_last_s": round(span, 2),
            "poller_start_to_last_message_s": round(end_to_end, 2),
            "busiest_second": busiest,
            "telegram_429": r.emulator.flood_429_count,
            "upstream_429": upstream.rate_limited_total,
            "lost": lost,
            "sent_twice": twice,
            "outbox": states,
        }
        result["ok"] = bool(
            rate >= TARGET_RATE
            and r.emulator.flood_429_count == 0
            and upstream.rate_limited_total == 0
            and lost == 0
            and twice == 0
        )
        return result


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--cards", action="store_true", help="also redraw each user's card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args.users, args.cards))
    print(
        table(
            [
                "users",
                "msgs",
                "code msgs",
                "msgs/s",
                "busiest 1 s",
                "429 tg",
                "429 up",
                "lost",
                "twice",
                "target",
            ],
            [
                [
                    result["users"],
                    result["messages"],
                    result["code_messages"],
                    result["messages_per_s"],
                    result["busiest_second"],
                    result["telegram_429"],
                    result["upstream_429"],
                    result["lost"],
                    result["sent_twice"],
                    "yes" if result["ok"] else "NO",
                ]
            ],
        )
    )
    print(
        f"all codes were waiting upstream when the poller started; it had stored them all "
        f"{result['codes_stored_within_s']} s later (upstream clock {TIME_SCALE:g}× real "
        f"time), and the last message reached Telegram "
        f"{result['poller_start_to_last_message_s']} s after the start; msgs/s = "
        "messages (codes" + (" and card edits" if args.cards else "") + ") per real second "
        "from the first to the last, Telegram's flood limits enforced by the emulator"
    )
    print(json_line(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
