"""A real, throwaway PostgreSQL server for tests: initdb, pg_ctl start, fresh databases, stop.

The server runs from Debian's ``postgresql-15`` binaries (``/usr/lib/postgresql/15/bin``),
as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as root), with
its data directory and unix socket in a temporary directory, listening on 127.0.0.1 on a
free port. It is tuned for tests (no fsync): never point it at data you care about.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
"""Where the server binaries are looked for, newest supported first."""

SERVER_USER = "postgres"
"""The account the server runs as when the tests run as root."""

COMMAND_TIMEOUT_S = 60
"""No initdb or pg_ctl call may take longer than this (a hang becomes an error)."""


class PostgresServerError(RuntimeError):
    """The test server could not be set up, started or stopped; the message says why."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or a clear error."""
    for directory in PG_BIN_DIRS:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise PostgresServerError(
        "PostgreSQL 15 server binaries not found in "
        + ", ".join(str(d) for d in PG_BIN_DIRS)
        + ": install the Debian package postgresql-15 (apt-get install postgresql-15)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; :meth:`start` it, then :meth:`stop`.

    Authentication is ``trust`` for the ``postgres`` role on 127.0.0.1 only.
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="frontdesk-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_file = self.root / "server.log"
        self.port = 0
        self.running = False
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresServerError("running as root needs runuser (util-linux) for initdb")
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError as error:
                raise PostgresServerError(
                    f"no {SERVER_USER!r} user: install the Debian package postgresql-15"
                ) from error
            self._run_as = [runuser, "-u", SERVER_USER, "--"]
            self.socket_dir.mkdir()
            for path in (self.root, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        else:
            self.socket_dir.mkdir()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._run_as, *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
                cwd=self.root,
            )
        except subprocess.TimeoutExpired as error:
            raise PostgresServerError(
                f"{Path(args[0]).name} took over {COMMAND_TIMEOUT_S} s"
            ) from error
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise PostgresServerError(
                f"{' '.join(args[:2])} failed ({done.returncode}): "
                f"{done.stderr.strip()[-2000:]}\n{log[-2000:]}"
            )
        return done

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SERVER_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        # A port found free may be taken before the server binds it: try a few.
        for _attempt in range(3):
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=50"
            )
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-w",
                    "-t",
                    str(COMMAND_TIMEOUT_S - 10),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                )
            except PostgresServerError as error:
                if "could not bind" not in str(error) and "in use" not in str(error):
                    raise
                continue
            self.running = True
            atexit.register(self.stop)
            return
        raise PostgresServerError("no free port could be bound for PostgreSQL")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory; safe to call twice."""
        if self.running:
            self.running = False
            self._run(str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3) of ``database`` on this server."""
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "frontdesk") -> str:
        """Create an empty database with a unique name and return its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conninfo = f"host=127.0.0.1 port={self.port} user={SERVER_USER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """``postgres_server``: a PostgreSQL 15 server for the whole test session, stopped at the
    end even if tests fail. A missing server binary is a test error, not a skip.

    Import it (``from postgres_server import postgres_server_fixture``) into a conftest or a
    test module to make the fixture available there."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
