"""Run an aiohttp application on loopback in a background thread, for fakes that sync and async tests share.

class MyFake(LoopbackServer):
    def make_app(self) -> web.Application: ...

with MyFake() as fake:
    fake.url("/path")
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class LoopbackServer:
    """An aiohttp app served on 127.0.0.1 (a free port) from its own thread and event loop."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def port(self) -> int:
        """Return the bound port. Raises: RuntimeError before start."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def _start_async(self) -> None:
        self._runner = web.AppRunner(self.make_app(), shutdown_timeout=0.25, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self._port = self._runner.addresses[0][1]

    def start(self) -> LoopbackServer:
        """Serve from a background thread; return once listening."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start_async())
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def stop(self) -> None:
        """Close the server and its thread."""
        if self._loop is None or self._thread is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
