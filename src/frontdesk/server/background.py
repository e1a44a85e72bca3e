"""Running the server inside an existing event loop (tests, the evaluation battery).

The agent's engines belong to the loop they were started on, so the server must share it:
uvicorn is run as a task on the current loop, on a socket bound here (port 0 picks a free
port), without touching the process's signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Ctrl-C belongs to whoever owns the process (pytest), not to this server.
        yield


class BackgroundServer:
    """uvicorn serving an app on ``host`` as a task of the running loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.app: FastAPI | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    async def start(self, app: FastAPI, timeout_s: float = 10.0) -> None:
        """Serve ``app``, returning once the server accepts connections (the port is known
        before, so the app can be built with its own public URL)."""
        self.app = app
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws_ping_interval=None)
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the server stopped during start-up")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the server did not start in time")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Shut down (live connections get uvicorn's graceful shutdown)."""
        if self._task is None or self._server is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 15)
        self._socket.close()
