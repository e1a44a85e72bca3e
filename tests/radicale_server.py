"""A real Radicale CalDAV server for tests: a ``python -m radicale`` subprocess on 127.0.0.1,
storage in a temporary folder, one htpasswd user, no delay after a wrong password."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "frontdesk"
PASSWORD = "s3cret-desk"


@dataclass(frozen=True, slots=True)
class RadicaleServer:
    """Where a running test server answers, and who may log in."""

    url: str
    user: str
    password: str
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=0.5).close()
    except urllib.error.HTTPError:
        return True  # 401 or a redirect: it is up and speaking HTTP
    except OSError:
        return False
    return True


@contextmanager
def radicale(folder: Path, startup_timeout_s: float = 15.0) -> Iterator[RadicaleServer]:
    """Start Radicale with its files in ``folder``; stop it on exit.

    Fails with the server's own log if it does not answer within ``startup_timeout_s``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    htpasswd = folder / "users"
    htpasswd.write_text(f"{USER}:{PASSWORD}\n")
    log = folder / "radicale.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [
        sys.executable,
        "-m",
        "radicale",
        "--config",
        "",  # ignore any system or user configuration file
        "--server-hosts",
        f"127.0.0.1:{port}",
        "--storage-filesystem-folder",
        str(folder / "collections"),
        "--auth-type",
        "htpasswd",
        "--auth-htpasswd-filename",
        str(htpasswd),
        "--auth-htpasswd-encryption",
        "plain",
        "--auth-delay",
        "0",
        "--rights-type",
        "owner_only",
        "--logging-level",
        "warning",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Radicale did not start on {url} (exit code {process.poll()}):\n"
                    + log.read_text(errors="replace")
                )
            time.sleep(0.05)
        yield RadicaleServer(url=url, user=USER, password=PASSWORD, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
