"""Schema migrations with Alembic, run from code: no ``alembic.ini`` is needed.

The revisions ship inside the package (``frontdesk/store/migrations``). :func:`upgrade`
brings a database to the newest revision and :func:`current` says which one it is at.

A database made before migrations existed (by ``create_all``) has frontdesk's tables but no
``alembic_version``: it is adopted, stamped with the newest revision whose tables it already
has, then upgraded from there. Concurrent upgrades (several processes starting at once)
are serialised: a PostgreSQL advisory lock, or SQLite's write lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from frontdesk.store.db import Database, model_metadata

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The Alembic script directory (env.py, script.py.mako, versions/)."""

INITIAL_REVISION = "0001"
"""The first revision: contacts, calls, turns, tool_calls, appointments."""

INITIAL_TABLES = frozenset({"contacts", "calls", "turns", "tool_calls", "appointments"})
"""The tables revision :data:`INITIAL_REVISION` creates."""

MIGRATION_LOCK_KEY = 0x66_64_6D_69_67  # "fdmig"
"""PostgreSQL advisory lock key held while migrating (distinct from the write lock)."""


class MigrationError(RuntimeError):
    """The database cannot be migrated safely; the message says why."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An in-code Alembic configuration; ``connection`` is the one migrations run on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of frontdesk."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"no migration revisions found in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database on ``connection`` is at (``None``: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Migrate the database on ``connection`` to ``revision``, inside its open transaction.

    The caller commits. On SQLite the transaction should hold the write lock
    (``BEGIN IMMEDIATE``) so that two processes cannot migrate at once.
    """
    if connection.dialect.name == "postgresql":
        # Held until the caller's transaction ends; a second process waits, then finds
        # the schema already at head (READ COMMITTED sees the first one's commit).
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    config = alembic_config(connection)
    _adopt_unversioned(connection, config)
    command.upgrade(config, revision)


def _adopt_unversioned(connection: Connection, config: Config) -> None:
    """Stamp a database created by ``create_all`` with the revision its tables match."""
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables:
        return
    ours = tables & set(model_metadata().tables)
    if not ours:
        return  # an empty database (or only other applications' tables): migrate from zero
    if not INITIAL_TABLES.issubset(ours):
        raise MigrationError(
            "the database has some of frontdesk's tables but no migration history "
            f"(found {', '.join(sorted(ours))}; missing "
            f"{', '.join(sorted(INITIAL_TABLES - ours))}): refusing to guess its schema"
        )
    everything = ours.issuperset(model_metadata().tables)
    command.stamp(config, "head" if everything else INITIAL_REVISION)


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema revision."""
    database = Database(url)
    try:
        database.upgrade()
    finally:
        database.dispose()


def current(url: str) -> str | None:
    """The schema revision of the database at ``url``, or ``None`` if it was never migrated."""
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            return current_revision(connection)
    finally:
        database.dispose()
