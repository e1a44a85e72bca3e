"""The database connection: engine, sessions, and the write locking a phone agent needs.

Sessions are synchronous; async callers wrap their work in :meth:`Database.run`, which runs
it on the database's own worker threads: a slow disk never stalls the call loop, and a record
write never queues behind speech-model inference in the default executor.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from frontdesk.store.models import Base

DEFAULT_DATABASE_URL = "sqlite:///var/frontdesk.db"
"""Used when ``FRONTDESK_DATABASE_URL`` is not set; relative to the working directory."""

DB_WORKER_THREADS = 4
"""Worker threads per :class:`Database` for blocking database work."""

WRITE_LOCK_TIMEOUT_MS = 10_000
"""How long a writer waits for another writer's lock before giving up with an error."""

WRITE_LOCK_KEY = 0x66_64_77_72_69_74_65  # "fdwrite"
"""The PostgreSQL advisory lock key that :meth:`Database.exclusive_session` holds."""

CONNECT_TIMEOUT_S = 10
"""How long opening a connection to a database server may take."""

SUPPORTED_BACKENDS = ("sqlite", "postgresql")

OPTIONAL_MODEL_MODULES = ("frontdesk.store.outbox",)
"""Modules that add tables to :class:`Base` when they exist (imported by :func:`model_metadata`)."""

T = TypeVar("T")


def database_url_from_env() -> str:
    """The database URL from ``FRONTDESK_DATABASE_URL``, or the SQLite default."""
    return os.environ.get("FRONTDESK_DATABASE_URL") or DEFAULT_DATABASE_URL


def normalize_database_url(url: str) -> str:
    """``url`` with a PostgreSQL URL that names no driver pointed at psycopg 3.

    ``postgres://`` (as many hosting providers write it) and ``postgresql://`` both become
    ``postgresql+psycopg://``; every other URL is returned unchanged.
    """
    scheme, separator, rest = url.partition("://")
    if separator and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url


def model_metadata() -> MetaData:
    """The metadata of every frontdesk table: the models, and the optional modules present.

    Both ``create_all`` and the migrations use it, so the two build the same schema.
    """
    for name in OPTIONAL_MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise  # the module exists but one of its own imports is missing
    return Base.metadata


class Database:
    """One database: an engine, a session factory and the schema.

    Two backends are supported, with the same guarantees:

    - SQLite: the file's directory is created, the journal is WAL (readers never block the
      writer), writers wait up to :data:`WRITE_LOCK_TIMEOUT_MS` for each other, and
      :meth:`exclusive_session` takes the write lock up front (``BEGIN IMMEDIATE``).
    - PostgreSQL (psycopg 3): transactions are READ COMMITTED, and :meth:`exclusive_session`
      first takes a transaction-scoped advisory lock (:data:`WRITE_LOCK_KEY`), waiting up
      to :data:`WRITE_LOCK_TIMEOUT_MS` for it.

    Either way a read-check-write sequence such as a booking cannot interleave with
    another one, in this process or any other using the same database.
    """

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = normalize_database_url(url or database_url_from_env())
        parsed = make_url(self.url)
        backend = parsed.get_backend_name()
        if backend not in SUPPORTED_BACKENDS:
            raise ValueError(
                f"unsupported database {backend!r} in {parsed.render_as_string()!r}: "
                f"frontdesk runs on {' or '.join(SUPPORTED_BACKENDS)}"
            )
        self.is_sqlite = backend == "sqlite"
        self.is_postgresql = backend == "postgresql"
        engine_args: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = parsed.database or ""
            in_memory = database in ("", ":memory:") or "mode=memory" in database
            if not in_memory:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine_args["connect_args"] = {
                "check_same_thread": False,
                "timeout": WRITE_LOCK_TIMEOUT_MS / 1000,
            }
            if in_memory:
                # One shared connection, or every worker thread would see its own empty
                # database; fine for tests and demos, not for concurrent writers.
                engine_args["poolclass"] = StaticPool
        else:
            # A server that is down or unreachable is an error within seconds, not a hang.
            engine_args["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
            engine_args["pool_pre_ping"] = True
            # Stated, not assumed from the server's default: exclusive_session relies on
            # each statement seeing what was committed before it started.
            engine_args["isolation_level"] = "READ COMMITTED"
        self.engine: Engine = create_engine(self.url, **engine_args)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: same pool, but every transaction takes the write lock when it begins.
        self._immediate_sessions = (
            sessionmaker(
                self.engine.execution_options(frontdesk_begin_immediate=True),
                expire_on_commit=False,
            )
            if self.is_sqlite
            else self._sessions
        )
        self._executor = ThreadPoolExecutor(DB_WORKER_THREADS, thread_name_prefix="frontdesk-db")

    def create_all(self) -> None:
        """Create every table and index that does not exist yet (no migration history: use
        :meth:`upgrade` for a database that will be upgraded later)."""
        model_metadata().create_all(self.engine)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (Alembic), adopting a database that
        :meth:`create_all` made earlier. Safe to call from several processes at once."""
        from frontdesk.store.migrate import upgrade_connection  # imports alembic: lazily

        engine = (
            self.engine.execution_options(frontdesk_begin_immediate=True)
            if self.is_sqlite
            else self.engine
        )
        with engine.begin() as connection:
            upgrade_connection(connection)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error.

        On SQLite it takes the write lock when it begins: a deferred transaction that reads
        and then writes fails at once with "database is locked" (no busy wait) if another
        writer committed in between, and every record write here reads first. On
        PostgreSQL it is a plain READ COMMITTED transaction.
        """
        with self._immediate_sessions() as session, session.begin():
            yield session

    @contextmanager
    def exclusive_session(self) -> Iterator[Session]:
        """Like :meth:`session`, but no other exclusive session can interleave with this
        transaction: what it reads stays true until it commits, as far as other exclusive
        writers go. Raises ``OperationalError`` if the lock is not had within
        :data:`WRITE_LOCK_TIMEOUT_MS`."""
        with self._immediate_sessions() as session, session.begin():
            if self.is_postgresql:
                # READ COMMITTED takes a new snapshot per statement, so once the lock is
                # ours every later statement sees what the previous holder committed.
                session.execute(text(f"SET LOCAL lock_timeout = {WRITE_LOCK_TIMEOUT_MS}"))
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
            yield session

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking database ``work(*args)`` on a database worker thread.

        If the awaiting task is cancelled the work still finishes (threads cannot be
        interrupted), so a started write is never half-done.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(work, *args))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"


def _configure_sqlite(engine: Engine) -> None:
    """Per-connection pragmas, and explicit BEGIN so ``BEGIN IMMEDIATE`` is possible.

    pysqlite opens transactions lazily on its own; SQLAlchemy's documented recipe turns
    that off and emits BEGIN itself.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={WRITE_LOCK_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("frontdesk_begin_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, waiting out another connection doing the same.

    SQLite answers "database is locked" at once, without its busy handler, when two
    connections change a new file's journal mode together (two processes starting on a
    fresh database); WAL is persistent, so the one that waits finds it already done.
    """
    deadline = time.monotonic() + WRITE_LOCK_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
