"""Storage: the SQLite connection, migrations and repositories (the only place SQL lives)."""

from storage.db import Database, Transaction
from storage.migrator import MigrationError
from storage.repo import Repo

__all__ = ["Database", "MigrationError", "Repo", "Transaction"]
