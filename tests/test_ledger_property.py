"""Ledger property test: any sequence of credits, debits, transfers, purchases (some failing or
losing their answer), codes, cancels, reconciliations, promo code redemptions and referral
rewards keeps the books right.

Driven through the production money functions (`bot.services.money`) and the production buy
path (the purchase queue every tap joins) against the sandbox over loopback HTTP, with a fresh
SQLite file and a fresh sandbox account per example. After every operation:

- every wallet's balance is >= 0 and equals its ledger sum (check_ledger finds nothing);
- per wallet, balance = credits - debits + transfers in - transfers out - the price of every
  activation that kept (or still holds) its charge, the "outside" flows coming from a model
  kept in this test, the activation states from the database;
- the users' charges minus refunds equal what the activations that kept their charge cost.

At the end every open activation is settled (reconcile, then the automatic expiry) and our
books are compared with the sandbox's: what it still charges is exactly what our completed
activations cost it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.cryptopay import CryptoPayClient
from bot.cryptopay_sandbox import CryptoPaySandbox
from bot.daisysim import DaisySimClient
from bot.ledger_check import check_ledger
from bot.sandbox import Sandbox, SandboxControlError
from bot.services import activation as activations
from bot.services import money, promo, referrals, wallet
from bot.services.cryptopay import CryptoTopups
from bot.services.errors import (
    ActivationNotActive,
    CancelTooEarly,
    InsufficientFunds,
    PromoRefused,
    PurchasePending,
    PurchaseRejected,
)
from bot.services.purchase_queue import PurchaseQueue
from bot.services.reconcile import reconcile_unknown
from storage.db import Database
from storage.models import REFUNDED_STATES
from storage.repo import Repo
from tests.fixtures.money import PRICE, buy, buy_request, make_client, new_user, purchase_queue

pytestmark = pytest.mark.asyncio(loop_scope="module")

USERS = (1, 2, 3)
GROUP_CHAT = -500
SERVICES = ("Signal", "Telegram", "WhatsApp")
# None: a normal purchase; the rest are sandbox faults on that purchase.
FAULTS = (None, None, None, "drop_after", "drop_before", "OUT_OF_STOCK", "INSUFFICIENT_BALANCE")
_accounts = itertools.count()
# USERS[1] was invited by USERS[0], who earns this share of USERS[1]'s completed purchases
# up to the cap (small, so that examples reach it).
REFERRAL_PERCENT = Decimal(15)
REFERRAL_CAP = 1_000
# (code, units, uses, repeat, expired): one use, two uses, three repeatable, one expired.
PROMOS = (
    ("ONE", 5_000, 1, False, False),
    ("TWO", 3_000, 2, False, False),
    ("MANY", 1_000, 3, True, False),
    ("OLD", 2_000, 5, False, True),
)

amounts = st.integers(min_value=1, max_value=40_000)
user_index = st.integers(min_value=0, max_value=len(USERS) - 1)
wallet_index = st.integers(min_value=0, max_value=len(USERS))  # the last one is the group's
buys = st.tuples(
    st.just("buy"),
    user_index,
    st.booleans(),  # from the group wallet
    st.sampled_from(SERVICES),
    st.integers(min_value=0, max_value=3000),  # markup in units
    st.sampled_from(FAULTS),
)
operations = st.one_of(
    buys,
    buys,  # purchases are what can go wrong: draw them more often
    buys,
    st.tuples(st.just("credit"), wallet_index, amounts),
    st.tuples(st.just("debit"), wallet_index, amounts),
    st.tuples(st.just("transfer"), wallet_index, wallet_index, amounts),
    st.tuples(st.just("code"), st.integers(min_value=0, max_value=20)),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
    st.tuples(st.just("reconcile")),
    # A Crypto Pay invoice of $1-$40 on a wallet, paid (or left to expire), then reported
    # 1-3 times by the webhook's path and the poll at once.
    st.tuples(
        st.just("crypto"),
        wallet_index,
        st.integers(min_value=1, max_value=40).map(lambda usd: usd * 10_000),
        st.booleans(),  # paid; False: it expires
        st.integers(min_value=1, max_value=3),
    ),
    st.tuples(st.just("promo"), user_index, st.integers(min_value=0, max_value=len(PROMOS) - 1)),
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(time_scale=60.0, seed=3) as sb:
        yield sb


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cryptopay() -> AsyncIterator[CryptoPaySandbox]:
    async with CryptoPaySandbox(time_scale=60.0) as cp:
        yield cp


@dataclass
class Model:
    """The money that entered or left wallets from outside the activations."""

    wallets: list[int]
    flows: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    activation_ids: list[int] = field(default_factory=list)
    referral_earned: int = 0
    # (code, user) -> redemptions, code -> uses: what the codes allow, kept apart from the db
    redeemed: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    uses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    crypto: CryptoSide | None = None
    crypto_paid: int = 0  # what paid Crypto Pay invoices must have credited, in all


@dataclass
class CryptoSide:
    sandbox: CryptoPaySandbox
    client: CryptoPayClient


async def _check_invariants(db: Database, model: Model) -> None:
    repo = Repo(db)
    assert await check_ledger(Repo(db), unsettled_limit_seconds=1e9) == []
    kept_by_wallet: dict[int, int] = defaultdict(int)
    kept_total = 0
    for activation_id in model.activation_ids:
        act = await repo.activations.get(activation_id)
        assert act is not None
        assert isinstance(act.user_price, int)
        if act.state not in REFUNDED_STATES:
            kept_by_wallet[act.wallet_id] += act.user_price
            kept_total += act.user_price
    for wallet_id in model.wallets:
        w = await repo.wallets.get(wallet_id)
        assert w is not None
        assert isinstance(w.balance, int)
        assert w.balance >= 0
        assert w.balance == model.flows[wallet_id] - kept_by_wallet[wallet_id]
    totals = await repo.ledger.totals_by_kind()
    charged = -totals.get("purchase", 0)
    refunded = totals.get("refund", 0)
    assert charged - refunded == kept_total
    assert totals.get("crypto", 0) == model.crypto_paid


async def _apply(
    op: tuple[Any, ...],
    db: Database,
    client: DaisySimClient,
    queue: PurchaseQueue,
    sb: Sandbox,
    key: str,
    model: Model,
) -> None:
    repo = Repo(db)
    kind = op[0]
    if kind == "credit":
        target = model.wallets[op[1]]
        await money.credit(repo, target, op[2], actor_id=0)
        model.flows[target] += op[2]
    elif kind == "debit":
        target = model.wallets[op[1]]
        try:
            await money.debit(repo, target, op[2], actor_id=0)
            model.flows[target] -= op[2]
        except InsufficientFunds:
            pass
    elif kind == "transfer":
        source, target = model.wallets[op[1]], model.wallets[op[2]]
        if source == target:
            return
        try:
            await money.transfer(repo, source, target, op[3], actor_id=0)
            model.flows[source] -= op[3]
            model.flows[target] += op[3]
        except InsufficientFunds:
            pass
    elif kind == "buy":
        _, who, from_group, service, markup, fault = op
        user_id = USERS[who]
        payer = model.wallets[-1] if from_group else model.wallets[who]
        if fault in ("drop_after", "drop_before"):
            await sb.control.add_fault("purchase", fault, key=key)
        elif fault is not None:
            await sb.control.add_fault("purchase", "error", key=key, code=fault)
        request = buy_request(
            user_id,
            payer,
            f"tap-{len(model.activation_ids)}-{kind}-{markup}-{fault}",
            service=service,
            price=PRICE[service] + markup,
        )
        try:
            act = await buy(queue, request)
        except InsufficientFunds:
            await sb.control.clear_faults()
            return
        except (PurchasePending, PurchaseRejected) as exc:
            act = exc.activation
        model.activation_ids.append(act.id)
    elif kind == "code":
        if not model.activation_ids:
            return
        picked = await repo.activations.get(model.activation_ids[op[1] % len(model.activation_ids)])
        assert picked is not None
        if picked.state != "waiting" or picked.upstream_id is None:
            return
        try:
            code = await sb.control.deliver_code(picked.upstream_id)
        except SandboxControlError:
            return  # the order already ended upstream
        completed = await activations.complete(repo, picked.id, code)
        if completed and picked.user_id == USERS[1]:
            reward = money.referral_reward(
                picked.user_price,
                REFERRAL_PERCENT,
                earned=model.referral_earned,
                cap_units=REFERRAL_CAP,
            )
            model.referral_earned += reward
            model.flows[model.wallets[0]] += reward
    elif kind == "promo":
        user_id, target = USERS[op[1]], model.wallets[op[1]]
        name, units, uses, repeat, expired = PROMOS[op[2]]
        allowed = (
            not expired
            and model.uses[name] < uses
            and (repeat or model.redeemed[(name, user_id)] == 0)
        )
        try:
            await money.redeem_promo(repo, code=name.lower(), user_id=user_id, wallet_id=target)
        except PromoRefused:
            assert not allowed, (name, user_id)
            return
        assert allowed, (name, user_id)
        model.uses[name] += 1
        model.redeemed[(name, user_id)] += 1
        model.flows[target] += units
    elif kind == "cancel":
        if not model.activation_ids:
            return
        target_act = await repo.activations.get(
            model.activation_ids[op[1] % len(model.activation_ids)]
        )
        assert target_act is not None
        await sb.control.advance_clock(181)
        with contextlib.suppress(ActivationNotActive, CancelTooEarly):
            await activations.cancel(repo, client, target_act.id, actor_id=target_act.user_id)
    elif kind == "reconcile":
        await reconcile_unknown(Repo(db), client, grace_seconds=0)
    elif kind == "crypto":
        _, target_index, units, paid, reports = op
        target = model.wallets[target_index]
        assert model.crypto is not None
        topups = CryptoTopups(repo, model.crypto.client, network="sandbox", assets=("USDT",))
        invoice = await topups.create_invoice(
            wallet_id=target, user_id=USERS[0], chat_id=USERS[0], units=units, description="p"
        )
        if paid:
            await model.crypto.sandbox.control.pay(invoice.invoice_id)
            model.flows[target] += units
            model.crypto_paid += units
        else:
            await model.crypto.sandbox.control.expire(invoice.invoice_id)
        [remote] = await model.crypto.client.get_invoices(invoice_ids=[invoice.invoice_id])
        event(f"crypto invoice {'paid' if paid else 'expired'}, reported {reports + 1} times")
        # The poll and as many webhook reports at the same moment: one credit at most.
        await asyncio.gather(
            topups.poll(),
            *(topups.settle(remote, source="webhook") for _ in range(reports)),
        )


async def _settle_everything(db: Database, client: DaisySimClient) -> None:
    repo = Repo(db)
    report = await reconcile_unknown(Repo(db), client, grace_seconds=0)
    assert report.error is None
    assert await repo.activations.list_unsettled() == []
    for act in await repo.activations.list_waiting():
        retry = await activations.expire(repo, client, act.id)
        assert retry is None, f"activation {act.id} not expired: retry in {retry}"


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=st.lists(
        st.integers(min_value=0, max_value=60_000) | st.just(40_000), min_size=4, max_size=4
    ),
    ops=st.lists(operations, min_size=3, max_size=14),
)
async def test_any_sequence_keeps_the_books_right(
    sandbox: Sandbox,
    cryptopay: CryptoPaySandbox,
    start: list[int],
    ops: list[tuple[Any, ...]],
) -> None:
    key = f"prop-{next(_accounts)}"
    await sandbox.control.set_account(key, balance_units=1_000_000)
    await sandbox.control.clear_faults()
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "prop.sqlite3")
        try:
            async with (
                make_client(sandbox, key) as client,
                purchase_queue(db, client) as queue,
                CryptoPayClient(cryptopay.base_url, cryptopay.token) as crypto_client,
            ):
                repo = Repo(db)
                wallets = [(await new_user(db, user_id)).id for user_id in USERS]
                group = await wallet.get_or_create_group_wallet(repo, GROUP_CHAT)
                model = Model(
                    wallets=[*wallets, group.id],
                    crypto=CryptoSide(cryptopay, crypto_client),
                )
                await referrals.store_terms(
                    repo, referrals.ReferralTerms(REFERRAL_PERCENT, REFERRAL_CAP)
                )
                tied = await referrals.tie(
                    repo, referee_id=USERS[1], payload=f"ref_{USERS[0]}", new_user=True
                )
                assert tied == "tied"
                for name, units, uses, repeat, expired in PROMOS:
                    spec = promo.PromoSpec(name, units, uses, 1, repeat)
                    made = time.time() - (3 * 86_400 if expired else 0)
                    await promo.create_code(repo, spec, admin_id=0, now=made)
                for wallet_id, amount in zip(model.wallets, start, strict=True):
                    if amount:
                        await money.credit(repo, wallet_id, amount, actor_id=0)
                        model.flows[wallet_id] += amount
                for op in ops:
                    await _apply(op, db, client, queue, sandbox, key, model)
                    await _check_invariants(db, model)
                await sandbox.control.clear_faults()
                await sandbox.control.advance_clock(181)
                await _settle_everything(db, client)
                await _check_invariants(db, model)

                # Our books against the upstream's: it still charges exactly the numbers that
                # got a code, at the amounts it told us.
                repo = Repo(db)
                final = [await repo.activations.get(i) for i in model.activation_ids]
                completed = [a for a in final if a is not None and a.state == "completed"]
                for a in final:
                    assert a is not None
                    event(f"ended {a.state} ({a.error_code or 'ok'})")
                account = await sandbox.control.account(key)
                assert account.debits_units - account.refunds_units == sum(
                    a.upstream_amount or 0 for a in completed
                )
                assert account.balance_units == 1_000_000 - (
                    account.debits_units - account.refunds_units
                )
                assert await repo.activations.list_waiting() == []
                earned = model.referral_earned
                event(f"referral earned {'the cap' if earned == REFERRAL_CAP else bool(earned)}")
        finally:
            await db.close()
