"""The database connection: engine, sessions, and the SQLite settings a phone agent needs.

Sessions are synchronous; async callers wrap their work in :meth:`Database.run`, which runs
it on the database's own worker threads: a slow disk never stalls the call loop, and a record
write never queues behind speech-model inference in the default executor.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from frontdesk.store.models import Base

DEFAULT_DATABASE_URL = "sqlite:///var/frontdesk.db"
"""Used when ``FRONTDESK_DATABASE_URL`` is not set; relative to the working directory."""

DB_WORKER_THREADS = 4
"""Worker threads per :class:`Database` for blocking database work."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another writer before giving up with an error."""

T = TypeVar("T")


def database_url_from_env() -> str:
    """The database URL from ``FRONTDESK_DATABASE_URL``, or the SQLite default."""
    return os.environ.get("FRONTDESK_DATABASE_URL") or DEFAULT_DATABASE_URL


class Database:
    """One database: an engine, a session factory and the schema.

    On SQLite the file's directory is created, the journal is WAL (readers never block the
    writer), writers wait up to :data:`SQLITE_BUSY_TIMEOUT_MS` for each other, and
    :meth:`exclusive_session` takes the write lock up front (``BEGIN IMMEDIATE``) so a
    read-check-write sequence such as a booking cannot interleave with another one.
    """

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = url or database_url_from_env()
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        engine_args: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = parsed.database or ""
            in_memory = database in ("", ":memory:") or "mode=memory" in database
            if not in_memory:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine_args["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            }
            if in_memory:
                # One shared connection, or every worker thread would see its own empty
                # database; fine for tests and demos, not for concurrent writers.
                engine_args["poolclass"] = StaticPool
        else:
            engine_args["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **engine_args)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool, but its transactions take the write lock (SQLite) or are serializable.
        exclusive_engine = (
            self.engine.execution_options(frontdesk_begin_immediate=True)
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="SERIALIZABLE")
        )
        self._exclusive_sessions = sessionmaker(exclusive_engine, expire_on_commit=False)
        self._begin_immediate_sessions = (
            self._exclusive_sessions if self.is_sqlite else self._sessions
        )
        self._executor = ThreadPoolExecutor(DB_WORKER_THREADS, thread_name_prefix="frontdesk-db")

    def create_all(self) -> None:
        """Create every table and index that does not exist yet."""
        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error.

        On SQLite it takes the write lock when it begins: a deferred transaction that reads
        and then writes fails at once with "database is locked" (no busy wait) if another
        writer committed in between, and every record write here reads first.
        """
        with self._begin_immediate_sessions() as session, session.begin():
            yield session

    @contextmanager
    def exclusive_session(self) -> Iterator[Session]:
        """Like :meth:`session`, but no other writer can interleave with this transaction."""
        with self._exclusive_sessions() as session, session.begin():
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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("frontdesk_begin_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
