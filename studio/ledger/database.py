"""Engines, write transactions and migrations for the ledger database (SQLite or PostgreSQL).

Appends must never fork the chain, so every write transaction takes one database-wide lock
before it reads the head: ``BEGIN IMMEDIATE`` on SQLite (one writer at a time, others wait in
SQLite's busy handler) and ``pg_advisory_xact_lock`` on PostgreSQL (waiting bounded by
``lock_timeout``). Both waits are bounded by ``busy_timeout``; when it runs out the transaction
is rolled back and ``LedgerBusy`` is raised, so nothing is half-written. The primary key on
``events.seq`` is the last line of defence: a second row for a seq can never be stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url

from studio.ledger.errors import LedgerBusy, LedgerNotMigrated, LedgerUnavailable

_MIGRATIONS = Path(__file__).parent / "migrations"
_APPEND_LOCK_KEY = 0x61765F6C65646772  # "av_ledgr": the advisory lock that serialises appends
_MIGRATE_LOCK_KEY = 0x61765F6D69677261  # "av_migra"
_WRITE = "ledger_write"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code: the scripts ship inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def create_ledger_engine(url: str, *, busy_timeout: float) -> Engine:
    """An engine whose ``write()`` transactions take the append lock (see module docstring)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            raise LedgerUnavailable("the ledger's folder does not exist")
        engine = create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False})
        _configure_sqlite(engine, busy_timeout)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        _configure_postgres(engine, busy_timeout)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _configure_postgres(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        key = connection.get_execution_options().get(_WRITE)
        if key:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(busy_timeout * 1000)}ms'")
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors a user can cause (lock held, server down, bad file) into ledger errors."""
    try:
        yield
    except exc.OperationalError as error:
        raise _classify(error) from None
    except exc.DatabaseError as error:
        if "not a database" in str(error.orig) or "malformed" in str(error.orig):
            raise LedgerUnavailable("the ledger file is not a readable SQLite database") from None
        if _is_missing_table(error):
            raise LedgerNotMigrated("the ledger database has no tables yet.") from None
        raise


def _classify(error: exc.OperationalError) -> Exception:
    orig = error.orig
    message = str(orig).lower()
    sqlstate = getattr(orig, "sqlstate", None)
    if "database is locked" in message or "database is busy" in message or sqlstate == "55P03":
        return LedgerBusy("the ledger is locked by another writer; nothing was written, try again")
    if "no such table" in message:
        return LedgerNotMigrated("the ledger database has no tables yet.")
    if "not a database" in message or "unable to open" in message:
        return LedgerUnavailable("the ledger file cannot be opened as a SQLite database")
    return LedgerUnavailable("cannot connect to the ledger database")


def _is_missing_table(error: exc.DatabaseError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "42P01" or "no such table" in str(error.orig)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the append lock; commits on success, rolls back on any error."""
    key = _APPEND_LOCK_KEY if engine.dialect.name == "postgresql" else True
    with translate_errors(), engine.connect() as connection:
        connection.execution_options(**{_WRITE: key})
        with connection.begin():
            yield connection


def current_revision(engine: Engine) -> str | None:
    with translate_errors(), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_migrated(engine: Engine) -> None:
    """Raise ``LedgerNotMigrated`` unless the schema is at this version's head."""
    current = current_revision(engine)
    if current is None:
        raise LedgerNotMigrated("the ledger database has no tables yet.")
    if current != head_revision():
        raise LedgerNotMigrated(f"the ledger schema is at revision {current}, this studio needs {head_revision()}.")


def upgrade(engine: Engine) -> bool:
    """Bring the schema to head under the write lock; returns True when anything was applied."""
    if current_revision(engine) == head_revision():
        return False
    key = _MIGRATE_LOCK_KEY if engine.dialect.name == "postgresql" else True
    with translate_errors(), engine.connect() as connection:
        connection.execution_options(**{_WRITE: key})
        with connection.begin():
            if MigrationContext.configure(connection).get_current_revision() == head_revision():
                return False  # another process migrated while we waited for the lock
            command.upgrade(alembic_config(connection), "head")
    return True
