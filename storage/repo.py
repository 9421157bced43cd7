"""`Repo(db)`: one holder for every repository, built on one Database.

The repositories themselves live in `storage.repos`, one module per aggregate; this is the one
object the rest of the bot is given.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from storage.db import Database, Transaction
from storage.repos.action_keys import ActionKeysRepo
from storage.repos.activations import ActivationsRepo
from storage.repos.audit import AuditRepo
from storage.repos.broadcasts import BroadcastsRepo
from storage.repos.chats import ChatsRepo
from storage.repos.crypto import CryptoInvoicesRepo
from storage.repos.favourites import FavouritesRepo
from storage.repos.ledger import LedgerRepo
from storage.repos.outbox import OutboxRepo
from storage.repos.payments import PaymentsRepo
from storage.repos.promo import PromoRepo
from storage.repos.queue import QueueRepo
from storage.repos.referrals import ReferralsRepo
from storage.repos.settings import SettingsRepo
from storage.repos.updates import UpdatesRepo
from storage.repos.users import UsersRepo
from storage.repos.wallets import WalletsRepo


class Repo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = UsersRepo(db)
        self.chats = ChatsRepo(db)
        self.wallets = WalletsRepo(db)
        self.ledger = LedgerRepo(db)
        self.activations = ActivationsRepo(db)
        self.payments = PaymentsRepo(db)
        self.settings = SettingsRepo(db)
        self.outbox = OutboxRepo(db)
        self.audit = AuditRepo(db)
        self.queue = QueueRepo(db)
        self.action_keys = ActionKeysRepo(db)
        self.broadcasts = BroadcastsRepo(db)
        self.favourites = FavouritesRepo(db)
        self.updates = UpdatesRepo(db)
        self.crypto = CryptoInvoicesRepo(db)
        self.promo = PromoRepo(db)
        self.referrals = ReferralsRepo(db)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """`async with repo.transaction() as tx:` is `db.transaction()`, so a service that
        holds the repo needs no database besides."""
        return self.db.transaction()
