"""Wallet services and `daisybot ledger-check` on a real temporary SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot import ledger_check
from bot.ledger_check import check_ledger
from bot.services import money, wallet
from bot.services.errors import InsufficientFunds, InvalidAmount, WalletNotFound
from bot.services.money import PurchaseRequest
from storage.db import Database, Transaction
from storage.models import Activation
from storage.repo import Repo
from tests.fixtures.money import new_user

ROOT = Path(__file__).resolve().parent.parent


async def test_credit_debit_transfer(db: Database) -> None:
    repo = Repo(db)
    alice = await new_user(db, 1)
    group = await wallet.get_or_create_group_wallet(repo, -100)
    assert await wallet.get_or_create_group_wallet(repo, -100) == group

    after = await money.credit(repo, alice.id, 25_000, actor_id=42, note="admin")
    assert after.wallet.balance == 25_000
    after = await money.debit(repo, alice.id, 5_000, actor_id=42, note="fix")
    assert after.wallet.balance == 20_000
    moved = await money.transfer(repo, alice.id, group.id, 15_000, actor_id=1)
    assert moved.counterparty is not None
    assert (moved.wallet.balance, moved.counterparty.balance) == (5_000, 15_000)

    entries = await repo.ledger.last_entries(alice.id, 10)
    assert [(e.kind, e.amount) for e in entries] == [
        ("transfer_out", -15_000),
        ("adjustment", -5_000),
        ("topup", 25_000),
    ]
    assert entries[0].counterparty_wallet_id == group.id
    assert entries[2].actor_id == 42
    assert entries[2].note == "admin"
    assert await check_ledger(Repo(db)) == []


async def test_refused_movements_change_nothing(db: Database) -> None:
    repo = Repo(db)
    alice = await new_user(db, 1, 10_000)
    bob = await new_user(db, 2)
    with pytest.raises(InsufficientFunds) as info:
        await money.debit(repo, alice.id, 10_001, actor_id=42)
    assert (info.value.needed, info.value.balance, info.value.shortfall) == (10_001, 10_000, 1)
    with pytest.raises(InsufficientFunds):
        await money.transfer(repo, alice.id, bob.id, 20_000, actor_id=1)
    for bad in (0, -5, 1.5, True, Decimal(5), "5", None):
        with pytest.raises(InvalidAmount):
            await money.credit(repo, alice.id, bad, actor_id=1)  # type: ignore[arg-type]
        with pytest.raises(InvalidAmount):
            await money.debit(repo, alice.id, bad, actor_id=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        await money.transfer(repo, alice.id, alice.id, 5, actor_id=1)
    with pytest.raises(WalletNotFound):
        await money.credit(repo, 999, 5, actor_id=1)
    with pytest.raises(WalletNotFound):
        await money.transfer(repo, alice.id, 999, 5, actor_id=1)
    assert await repo.ledger.count() == 1
    assert (await repo.wallets.get(alice.id)).balance == 10_000  # type: ignore[union-attr]
    assert (await repo.wallets.get(bob.id)).balance == 0  # type: ignore[union-attr]


async def test_concurrent_debits_never_overdraw(db: Database) -> None:
    alice = await new_user(db, 1, 10_000)
    repo = Repo(db)
    results = await asyncio.gather(
        *(money.debit(repo, alice.id, 3_000, actor_id=1) for _ in range(10)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(ok), len(refused)) == (3, 7)
    assert (await Repo(db).wallets.get(alice.id)).balance == 1_000  # type: ignore[union-attr]
    assert await check_ledger(Repo(db)) == []


async def test_the_sandbox_bonus_is_given_once(db: Database) -> None:
    repo = Repo(db)
    await repo.users.upsert(5, username=None, first_name="E")
    wallets = await asyncio.gather(
        *(wallet.get_or_create_user_wallet(repo, 5, sandbox_bonus_units=100_000) for _ in range(5))
    )
    assert len({w.id for w in wallets}) == 1
    assert (await repo.wallets.get(wallets[0].id)).balance == 100_000  # type: ignore[union-attr]
    assert await repo.ledger.totals_by_kind() == {"sandbox_bonus": 100_000}


async def test_a_stars_payment_is_credited_once(db: Database) -> None:
    repo = Repo(db)
    alice = await new_user(db, 1)

    async def pay() -> money.StarsCredit:
        return await money.credit_stars(
            repo,
            wallet_id=alice.id,
            payer_id=1,
            charge_id="stxABC",
            stars=80,
            amount_units=10_000,
            payload="topup",
        )

    results = await asyncio.gather(*(pay() for _ in range(4)))
    assert sorted(r.credited for r in results) == [False, False, False, True]
    assert {r.payment.id for r in results} == {results[0].payment.id}
    assert (await repo.wallets.get(alice.id)).balance == 10_000  # type: ignore[union-attr]
    assert await check_ledger(Repo(db)) == []


# --- ledger-check ---------------------------------------------------------------------------


async def _held_purchase(
    repo: Repo, tx: Transaction, user_id: int, wallet_id: int, key: str, *, now: float | None = None
) -> Activation:
    """A Signal purchase of $0.60 with its money held (`money.hold_purchase`), as a tap leaves
    it before the upstream call (`purchasing`)."""
    request = PurchaseRequest(
        user_id=user_id,
        wallet_id=wallet_id,
        service_code="Signal",
        service_name="Signal",
        user_price=6_000,
        upstream_price=6_000,
        idempotency_key=key,
        chat_id=user_id,
    )
    return await money.hold_purchase(repo, tx, request, now=time.time() if now is None else now)


async def _busy_database(db: Database) -> dict[str, int]:
    """A little of everything, healthy; returns ids the corruption tests poke at."""
    repo = Repo(db)
    alice = await new_user(db, 1, 50_000)
    bob = await new_user(db, 2, 20_000)
    group = await wallet.get_or_create_group_wallet(repo, -100)
    await money.transfer(repo, alice.id, group.id, 10_000, actor_id=1)
    paid = await money.credit_stars(
        repo,
        wallet_id=bob.id,
        payer_id=2,
        charge_id="ch",
        stars=80,
        amount_units=10_000,
        payload="p",
    )
    async with db.transaction() as tx:
        waiting = await _held_purchase(repo, tx, 1, alice.id, "w")
        await repo.activations.mark_waiting(
            tx,
            waiting.id,
            upstream_id="500",
            phone_number="+19400000000",
            upstream_amount=6_000,
            purchased_at=1.0,
            cancel_after=181.0,
        )
        stale = await _held_purchase(repo, tx, 2, bob.id, "s", now=1_000.0)  # long ago
    return {
        "alice": alice.id,
        "bob": bob.id,
        "group": group.id,
        "waiting": waiting.id,
        "stale": stale.id,
        "payment": paid.payment.id,
    }


async def test_a_long_purchase_queue_is_not_taken_for_stuck_holds(db: Database) -> None:
    """The k-th in the purchase queue waits about k/10 minutes for its turn; only a hold that
    has waited longer than the limit plus its turns is reported."""
    repo = Repo(db)
    carol = await new_user(db, 3, 10_000_000)
    now = 100_000.0
    held = []
    async with db.transaction() as tx:
        for i in range(700):
            # All joined 100 minutes ago: the last of 700 has 70 minutes of turns ahead.
            activation = await _held_purchase(repo, tx, 3, carol.id, f"q{i}", now=now - 6_000.0)
            await repo.queue.add(tx, activation.id, carol.id, now=now - 6_000.0)
            held.append(activation.id)
    found = await check_ledger(Repo(db), unsettled_limit_seconds=3_600.0, now=now)
    # Places 1..399 have waited more than an hour plus their turns (6 s each): stuck.
    assert len(found) == 399
    assert all("unsettled" in line for line in found)
    assert f"activation {held[398]} (purchasing)" in found[-1]
    assert await check_ledger(Repo(db), unsettled_limit_seconds=3_600.0, now=now - 2_400.0) == []


async def test_check_ledger_names_every_discrepancy(db: Database) -> None:
    ids = await _busy_database(db)
    # The stale purchase is the only finding of a healthy database with an old purchasing row.
    found = await check_ledger(Repo(db))
    assert len(found) == 1
    assert f"activation {ids['stale']} (purchasing)" in found[0]
    assert "unsettled" in found[0]
    assert await check_ledger(Repo(db), unsettled_limit_seconds=1e12) == []

    # Each corruption by hand shows up, named.
    await db.execute("UPDATE wallets SET balance = balance + 7 WHERE id = ?", (ids["alice"],))
    await db.execute(
        "UPDATE activations SET state = 'cancelled' WHERE id = ?", (ids["waiting"],)
    )  # ended without a refund
    await db.execute(
        "INSERT INTO ledger (wallet_id, amount, kind, counterparty_wallet_id, created_at)"
        " VALUES (?, 1, 'transfer_in', ?, 0)",
        (ids["group"], ids["alice"]),
    )  # money from nowhere
    found = await check_ledger(Repo(db), unsettled_limit_seconds=1e12)
    text = "\n".join(found)
    assert f"wallet {ids['alice']} (user 1): cached balance" in text
    assert f"wallet {ids['group']} (group -100): cached balance" not in text  # trigger moved it
    assert (
        f"activation {ids['waiting']} (cancelled): ended without a code but was not refunded"
        in text
    )
    assert f"transfers between wallets {ids['alice']} and {ids['group']}" in text
    assert len(found) == 3


async def test_check_ledger_catches_refunds_of_kept_numbers(db: Database) -> None:
    ids = await _busy_database(db)
    repo = Repo(db)
    async with db.transaction() as tx:
        await repo.ledger.append(
            tx, ids["alice"], 6_000, "refund", activation_id=ids["waiting"]
        )  # refunded, yet the user still holds the number
    found = await check_ledger(Repo(db), unsettled_limit_seconds=1e12)
    assert found == [f"activation {ids['waiting']} (waiting): refunded although it is waiting"]


def _run_cli(db_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_PATH"}
    return subprocess.run(
        [sys.executable, "-m", "bot.ledger_check", "--db", str(db_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_ledger_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.sqlite3"
    db = await Database.open(path)
    try:
        ids = await _busy_database(db)
        await db.execute("UPDATE activations SET created_at = ? WHERE id = ?", (1e10, ids["stale"]))
        wallets = await Repo(db).wallets.count()
        entries = await Repo(db).ledger.count()
    finally:
        await db.close()

    assert await asyncio.to_thread(ledger_check.main, ["--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"ledger OK: {wallets} wallets, {entries} entries"
    healthy = await asyncio.to_thread(_run_cli, path)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.strip() == f"ledger OK: {wallets} wallets, {entries} entries"

    db = await Database.open(path)
    try:
        await db.execute("UPDATE wallets SET balance = 1 WHERE id = ?", (ids["bob"],))
    finally:
        await db.close()
    assert await asyncio.to_thread(ledger_check.main, ["--db", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"wallet {ids['bob']} (user 2): cached balance 1 != ledger sum" in out
    broken = await asyncio.to_thread(_run_cli, path)
    assert broken.returncode == 1
    assert f"wallet {ids['bob']} (user 2): cached balance 1 != ledger sum" in broken.stdout
    assert "1 discrepancies" in broken.stderr

    missing = await asyncio.to_thread(ledger_check.main, ["--db", str(tmp_path / "nope.sqlite3")])
    assert missing == 2
    assert not (tmp_path / "nope.sqlite3").exists()
