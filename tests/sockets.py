"""Websocket helpers for tests: a logged-in tab on the real ASGI application, and waiting for a reply."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from conversations.models import Message
from tests.servers import session_cookie


class ChatSocket:
    """A browser tab's websocket, speaking the page's frames and reading its fragments."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.received: list[str] = []

    async def send(self, message: str, **extra) -> None:
        await self.communicator.send_to(text_data=json.dumps({"action": "send", "message": message, **extra}))

    async def stop(self) -> None:
        await self.communicator.send_to(text_data=json.dumps({"action": "stop"}))

    async def receive(self, timeout: float = 5) -> str:
        frame = await self.communicator.receive_output(timeout)
        if frame["type"] == "websocket.close":
            raise ConnectionResetError(frame.get("code"))
        self.received.append(frame["text"])
        return frame["text"]

    async def receive_until(self, needle: str, timeout: float = 10) -> list[str]:
        """Receive fragments until one contains `needle`; return them all."""
        frames = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive(timeout)
                frames.append(frame)
                if needle in frame:
                    return frames

    async def receive_final(self, status: str = "complete", timeout: float = 10) -> list[str]:
        """Receive fragments until the finished reply bubble with `status` replaces the streaming one."""
        return await self.receive_until(f'data-status="{status}" hx-swap-oob="true"', timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
def open_socket():
    """Return an async factory: `await open_socket(user, conversation)` gives a connected ChatSocket."""
    sockets: list[ChatSocket] = []

    async def open_(user, conversation_id, *, origin: bytes = b"http://127.0.0.1") -> tuple[ChatSocket, dict]:
        headers = [(b"origin", origin)]
        if user is not None:
            cookie = await sync_to_async(session_cookie)(user)
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        socket = ChatSocket(communicator)
        sockets.append(socket)
        return socket

    yield open_


async def wait_for_reply(message_filter: dict | None = None, timeout: float = 10) -> Message:
    """Poll until the latest assistant reply is no longer streaming; return it."""
    async with asyncio.timeout(timeout):
        while True:
            message = await Message.objects.filter(role="assistant", **(message_filter or {})).alast()
            if message is not None and message.status != Message.Status.STREAMING:
                return message
            await asyncio.sleep(0.02)


@pytest.fixture
def write_counter():
    """Record every INSERT/UPDATE/DELETE run on any thread's connection as (sql, params)."""
    from django.db.backends.utils import CursorWrapper

    writes: list[tuple[str, tuple]] = []
    original = CursorWrapper.execute

    def execute(self, sql, params=None):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append((sql.lstrip(), tuple(params or ())))
        return original(self, sql, params)

    CursorWrapper.execute = execute
    try:
        yield writes
    finally:
        CursorWrapper.execute = original
