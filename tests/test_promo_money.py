"""The promo and referral money primitives against a real SQLite file: the last use of a code
raced by two users (on one connection, and from two connections as two processes would) is
taken once; one user redeeming a once-per-user code twice at once is credited once; every
refusal changes nothing; a referral reward is credited once per purchase, only for a completed
one, and never past the cap."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot.ledger_check import check_ledger
from bot.services import money, promo, referrals
from bot.services.errors import PromoRefused
from storage.db import Database
from storage.repo import Repo
from tests.fixtures.money import buy_request, new_user


async def _code(repo: Repo, name: str, units: int, **kwargs: object) -> None:
    spec = promo.PromoSpec(name, units, **kwargs)  # type: ignore[arg-type]
    await promo.create_code(repo, spec, admin_id=0)


async def _promo_entries(repo: Repo) -> list[tuple[int, int]]:
    entries = await repo.ledger.entries_page(limit=1000)
    return [(e.wallet_id, e.amount) for e in entries if e.kind == "promo"]


async def test_the_last_use_raced_by_two_users_is_taken_once(db: Database) -> None:
    repo = Repo(db)
    first, second = await new_user(db, 1), await new_user(db, 2)
    await _code(repo, "LAST", 20_000, uses=1)
    results = await asyncio.gather(
        money.redeem_promo(repo, code="LAST", user_id=1, wallet_id=first.id),
        money.redeem_promo(repo, code="last", user_id=2, wallet_id=second.id),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, PromoRefused)]
    assert len(refused) == 1
    assert refused[0].reason == "used_up"
    assert len(await _promo_entries(repo)) == 1
    code = await repo.promo.find("LAST")
    assert code is not None
    assert code.uses == code.max_uses == 1
    assert await check_ledger(repo) == []


async def test_two_connections_race_for_the_last_use(tmp_path: Path) -> None:
    """Two processes on one file: each `Database` is its own connection, so the race is
    settled by SQLite's write lock and the conditional UPDATE, not by our asyncio lock."""
    path = tmp_path / "race.sqlite3"
    one = await Database.open(path)
    two = await Database.open(path)
    try:
        repo_one, repo_two = Repo(one), Repo(two)
        wallets = [await new_user(one, user_id) for user_id in range(1, 9)]
        await _code(repo_one, "RACE", 10_000, uses=3)
        results = await asyncio.gather(
            *(
                money.redeem_promo(
                    repo_one if i % 2 else repo_two,
                    code="RACE",
                    user_id=i + 1,
                    wallet_id=wallet.id,
                )
                for i, wallet in enumerate(wallets)
            ),
            return_exceptions=True,
        )
        credited = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, PromoRefused)]
        assert len(credited) == 3
        assert len(refused) == 5
        assert {r.reason for r in refused} == {"used_up"}
        assert len(await _promo_entries(repo_one)) == 3
        assert await check_ledger(repo_one) == []
    finally:
        await one.close()
        await two.close()


async def test_one_user_redeeming_twice_at_once_is_credited_once(db: Database) -> None:
    repo = Repo(db)
    wallet = await new_user(db, 1)
    await _code(repo, "TWICE", 10_000, uses=5)
    results = await asyncio.gather(
        *(money.redeem_promo(repo, code="TWICE", user_id=1, wallet_id=wallet.id) for _ in range(2)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, PromoRefused)]
    assert [r.reason for r in refused] == ["already_used"]
    assert await _promo_entries(repo) == [(wallet.id, 10_000)]
    current = await repo.wallets.get(wallet.id)
    assert current is not None
    assert current.balance == 10_000
    assert await check_ledger(repo) == []


async def test_a_repeatable_code_is_once_per_key(db: Database) -> None:
    repo = Repo(db)
    wallet = await new_user(db, 1)
    await _code(repo, "AGAIN", 1_000, uses=3, repeat=True)
    for key in ("msg:1", "msg:1", "msg:2"):
        await money.redeem_promo(repo, code="AGAIN", user_id=1, wallet_id=wallet.id, key=key)
    assert await _promo_entries(repo) == [(wallet.id, 1_000)] * 2
    await money.redeem_promo(repo, code="AGAIN", user_id=1, wallet_id=wallet.id, key="msg:3")
    with pytest.raises(PromoRefused) as refused:
        await money.redeem_promo(repo, code="AGAIN", user_id=1, wallet_id=wallet.id, key="msg:4")
    assert refused.value.reason == "used_up"
    assert await check_ledger(repo) == []


@pytest.mark.parametrize(
    ("name", "reason"), [("NOPE", "unknown"), ("OLD", "expired"), ("GONE", "used_up")]
)
async def test_refusals_change_nothing(db: Database, name: str, reason: str) -> None:
    repo = Repo(db)
    wallet = await new_user(db, 1)
    other = await new_user(db, 2)
    old = promo.PromoSpec("OLD", 1_000, uses=5, days=1)
    await promo.create_code(repo, old, admin_id=0, now=time.time() - 2 * 86_400)
    await _code(repo, "GONE", 1_000, uses=1)
    await money.redeem_promo(repo, code="GONE", user_id=2, wallet_id=other.id)
    before = await repo.ledger.count(), await repo.promo.audit()
    with pytest.raises(PromoRefused) as refused:
        await money.redeem_promo(repo, code=name, user_id=1, wallet_id=wallet.id)
    assert refused.value.reason == reason
    assert (await repo.ledger.count(), await repo.promo.audit()) == before
    assert await check_ledger(repo) == []


async def test_the_database_refuses_a_promo_entry_without_its_redemption(db: Database) -> None:
    wallet = await new_user(db, 1)
    repo = Repo(db)
    with pytest.raises(Exception, match="CHECK constraint failed"):
        async with db.transaction() as tx:
            await repo.ledger.append(tx, wallet.id, 100, "promo")


async def test_a_referral_is_credited_once_only_for_a_completed_purchase(db: Database) -> None:
    repo = Repo(db)
    referrer = await new_user(db, 1)
    buyer = await new_user(db, 2, balance=100_000)
    assert await referrals.tie(repo, referee_id=2, payload="ref_1", new_user=True) == "tied"
    assert await referrals.tie(repo, referee_id=2, payload="ref_1", new_user=True) == "already"
    assert await referrals.tie(repo, referee_id=1, payload="ref_1", new_user=True) == "self"
    assert await referrals.tie(repo, referee_id=1, payload="ref_2", new_user=False) == "not_new"
    assert await referrals.tie(repo, referee_id=2, payload="ref_x", new_user=True) == "invalid"
    # A referral entry for a purchase that never completed is refused by the database.
    async with db.transaction() as tx:
        held = await money.hold_purchase(
            repo, tx, buy_request(2, buyer.id, "tap-1", price=6_000), now=time.time()
        )
    activation = await repo.activations.get(held.id)
    assert activation is not None
    with pytest.raises(Exception, match="completed purchase of a referee"):
        async with db.transaction() as tx:
            await repo.ledger.append(tx, referrer.id, 100, "referral", activation_id=activation.id)
    async with db.transaction() as tx:
        await repo.activations.mark_completed(
            tx, activation.id, code="1234", completed_at=1.0, from_states=("purchasing",)
        )
    done = await repo.activations.get(activation.id)
    assert done is not None
    for _ in range(2):
        async with db.transaction() as tx:
            await money.credit_referral(repo, tx, done, percent=Decimal(50), cap_units=2_000)
    entries = [e for e in await repo.ledger.entries_page(limit=100) if e.kind == "referral"]
    assert [(e.wallet_id, e.amount, e.activation_id) for e in entries] == [
        (referrer.id, 2_000, activation.id)
    ]
    summary = await repo.referrals.summary(1)
    assert (summary.friends, summary.earned_units) == (1, 2_000)
    assert await check_ledger(repo, unsettled_limit_seconds=1e9) == []


def test_the_reward_is_a_share_rounded_down_and_capped() -> None:
    assert money.referral_reward(6_001, Decimal(10), earned=0, cap_units=10_000) == 600
    assert money.referral_reward(6_000, Decimal(10), earned=9_800, cap_units=10_000) == 200
    assert money.referral_reward(6_000, Decimal(10), earned=10_000, cap_units=10_000) == 0
    assert money.referral_reward(6_000, Decimal(0), earned=0, cap_units=10_000) == 0


async def test_ledger_check_finds_promo_and_referral_books_that_disagree(db: Database) -> None:
    repo = Repo(db)
    wallet = await new_user(db, 1)
    await new_user(db, 2)
    await _code(repo, "COUNTED", 1_000, uses=3)
    await money.redeem_promo(repo, code="COUNTED", user_id=1, wallet_id=wallet.id)
    assert await referrals.tie(repo, referee_id=2, payload="ref_1", new_user=True) == "tied"
    assert await check_ledger(repo) == []
    # What a bug (or a hand in the database) could do outside the money functions.
    await db.execute("UPDATE promo_codes SET uses = 2 WHERE code = 'COUNTED'")
    await db.execute("UPDATE referrals SET earned_units = 500 WHERE referee_id = 2")
    problems = await check_ledger(repo)
    assert problems == [
        "promo code 1 (COUNTED): 2 uses counted, 1 redemptions",
        "referral of user 2 by 1: records 500 units earned, the ledger 0",
    ]
