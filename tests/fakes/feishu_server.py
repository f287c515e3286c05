"""A fake Feishu/Lark open platform on loopback, speaking the documented wire formats, and event builders.

Endpoints (Feishu Open Platform server API reference; Lark's are the same):

- POST /open-apis/auth/v3/tenant_access_token/internal: `{"app_id", "app_secret"}` →
  `{"code": 0, "msg": "ok", "tenant_access_token": "t-...", "expire": 7200}`, or
  code 10014 ("app secret invalid").
- GET /open-apis/bot/v3/info → `{"code": 0, "bot": {"open_id": BOT_OPEN_ID, ...}}`.
- POST /open-apis/im/v1/messages/:message_id/reply `{"msg_type", "content"}` →
  `{"code": 0, "data": {"message_id": "om_...", ...}}`.
- PATCH /open-apis/im/v1/messages/:message_id `{"content"}`: an interactive card
  sent with `config.update_multi` only; code 230001 otherwise. At most
  `UPDATES_PER_SECOND` updates of one message in any second: a faster one is
  refused with code `RATE_LIMITED` and kept in `refusals`.

A bearer token the fake did not issue (or revoked with `revoke_tokens`) gets
code 99991663 ("Invalid access token"). `fail_next(n)` answers the next n API
calls with HTTP 500. Every message sent is kept in `messages` with its updates.
`hold_replies()` keeps new replies (not updates) waiting until `release_replies()`.

`event_request` builds a callback as Feishu sends it: encrypted with the
Encrypt Key (AES-256-CBC, key SHA-256 of the Encrypt Key, base64(iv +
ciphertext)) and signed (X-Lark-Signature), as "接收事件" documents.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fakes.loopback import LoopbackServer

BOT_OPEN_ID = "ou_bot_0000000000000000000000000000"

# "更新已发送的消息卡片" (PATCH /open-apis/im/v1/messages/:message_id), 使用限制: "单条消息更新频控为 5 QPS"
# (one message is updated at most 5 times a second), https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/
# reference/im-v1/message/patch; the same page's error code table: 230020, the operation triggers the rate limit.
UPDATES_PER_SECOND = 5
RATE_LIMITED = 230020


@dataclass
class SentMessage:
    message_id: str
    reply_to: str
    msg_type: str
    content: str
    updates: list[str] = field(default_factory=list)
    update_times: list[float] = field(default_factory=list)

    @property
    def latest(self) -> str:
        """The content shown now: the last update, else what was sent."""
        return self.updates[-1] if self.updates else self.content

    def markdown(self, content: str | None = None) -> str:
        """Return the Markdown of a card's (or the latest) content."""
        card = json.loads(self.latest if content is None else content)
        return "".join(e.get("content", "") for e in card.get("elements", []))

    @property
    def text(self) -> str:
        return json.loads(self.content)["text"]


class FakeFeishuServer(LoopbackServer):
    """The token, bot info, reply and message update endpoints of Feishu's server API."""

    def __init__(self, *, app_id: str = "cli_test_app", app_secret: str = "feishu-secret-0001") -> None:
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_expire_s = 7200
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.messages: list[SentMessage] = []
        self._failures = 0
        self._ids = itertools.count(1)
        self.refusals: list[tuple[str, int]] = []  # (message_id, code) of the updates refused
        self._replies_open = threading.Event()
        self._replies_open.set()

    def clear(self) -> None:
        self.tokens.clear()
        self.messages.clear()
        self.token_requests = 0
        self._failures = 0
        self.refusals.clear()
        self._replies_open.set()

    def hold_replies(self) -> None:
        """Keep every new reply request waiting (unanswered) until `release_replies`."""
        self._replies_open.clear()

    def release_replies(self) -> None:
        self._replies_open.set()

    def revoke_tokens(self) -> None:
        """Make every issued token invalid (as when it expired early)."""
        self.tokens.clear()

    def fail_next(self, count: int) -> None:
        """Answer the next `count` API calls (not token requests) with HTTP 500."""
        self._failures = count

    def replies_to(self, message_id: str) -> list[SentMessage]:
        return [m for m in self.messages if m.reply_to == message_id]

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._token)
        app.router.add_get("/open-apis/bot/v3/info", self._bot_info)
        app.router.add_post("/open-apis/im/v1/messages/{message_id}/reply", self._reply)
        app.router.add_patch("/open-apis/im/v1/messages/{message_id}", self._patch)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.token_requests += 1
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return web.json_response({"code": 10014, "msg": "app secret invalid"})
        token = f"t-{next(self._ids)}-{os.urandom(4).hex()}"
        self.tokens.add(token)
        return web.json_response({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_expire_s})

    def _refuse(self, request: web.Request) -> web.Response | None:
        if self._failures:
            self._failures -= 1
            return web.json_response({"code": 1, "msg": "internal error"}, status=500)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return web.json_response({"code": 99991663, "msg": "Invalid access token for authorization."})
        return None

    async def _bot_info(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        return web.json_response({"code": 0, "msg": "ok", "bot": {"open_id": BOT_OPEN_ID, "app_name": "Test bot"}})

    async def _reply(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        await asyncio.to_thread(self._replies_open.wait)
        body = await request.json()
        json.loads(body["content"])  # Feishu refuses content that is not a JSON string.
        message = SentMessage(
            message_id=f"om_fake_{next(self._ids)}",
            reply_to=request.match_info["message_id"],
            msg_type=body["msg_type"],
            content=body["content"],
        )
        self.messages.append(message)
        data = {"message_id": message.message_id, "msg_type": message.msg_type, "parent_id": message.reply_to}
        return web.json_response({"code": 0, "msg": "success", "data": data})

    async def _patch(self, request: web.Request) -> web.Response:
        if refused := self._refuse(request):
            return refused
        body = await request.json()
        message = next((m for m in self.messages if m.message_id == request.match_info["message_id"]), None)
        if message is None or message.msg_type != "interactive":
            return web.json_response({"code": 230001, "msg": "message not found or not a card"})
        if not json.loads(message.content).get("config", {}).get("update_multi"):
            return web.json_response({"code": 230001, "msg": "the card is not shared (update_multi)"})
        now = time.monotonic()
        if sum(1 for at in message.update_times if at > now - 1) >= UPDATES_PER_SECOND:
            self.refusals.append((message.message_id, RATE_LIMITED))
            return web.json_response({"code": RATE_LIMITED, "msg": "This operation triggers the frequency limit."})
        message.updates.append(body["content"])
        message.update_times.append(now)
        return web.json_response({"code": 0, "msg": "success", "data": {}})


def encrypt(encrypt_key: str, plaintext: bytes, *, iv: bytes | None = None) -> str:
    """Encrypt as Feishu does: base64(iv + AES-256-CBC(PKCS#7(plaintext))) with key SHA-256(encrypt_key)."""
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    key = hashlib.sha256(encrypt_key.encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def event_request(
    payload: dict[str, Any], *, encrypt_key: str = "", timestamp: int | None = None, nonce: str = "nonce-1"
) -> tuple[bytes, dict[str, str]]:
    """Return (body, headers) of a callback carrying `payload`: encrypted and signed when `encrypt_key` is given."""
    if not encrypt_key:
        return json.dumps(payload).encode(), {"Content-Type": "application/json"}
    body = json.dumps({"encrypt": encrypt(encrypt_key, json.dumps(payload).encode())}).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hashlib.sha256((stamp + nonce + encrypt_key).encode() + body).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Lark-Request-Timestamp": stamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature,
    }
    return body, headers


_events = itertools.count(1)


def message_event(
    *,
    text: str,
    token: str,
    chat_id: str = "oc_direct_1",
    chat_type: str = "p2p",
    open_id: str = "ou_person_1",
    message_type: str = "text",
    mention_bot: bool = False,
    event_id: str | None = None,
    content: dict | None = None,
) -> dict[str, Any]:
    """Return an `im.message.receive_v1` event (schema 2.0) as Feishu documents it."""
    number = next(_events)
    mentions = []
    if mention_bot:
        mentions.append(
            {"key": "@_user_1", "id": {"open_id": BOT_OPEN_ID, "union_id": "on_bot", "user_id": ""}, "name": "Bot"}
        )
        text = f"@_user_1 {text}"
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or f"ev_{number}_{os.urandom(4).hex()}",
            "token": token,
            "create_time": str(int(time.time() * 1000)),
            "event_type": "im.message.receive_v1",
            "tenant_key": "tenant_1",
            "app_id": "cli_test_app",
        },
        "event": {
            "sender": {
                "sender_id": {"open_id": open_id, "union_id": f"on_{open_id}", "user_id": ""},
                "sender_type": "user",
                "tenant_key": "tenant_1",
            },
            "message": {
                "message_id": f"om_in_{number}",
                "create_time": str(int(time.time() * 1000)),
                "chat_id": chat_id,
                "chat_type": chat_type,
                "message_type": message_type,
                "content": json.dumps(content if content is not None else {"text": text}),
                "mentions": mentions,
            },
        },
    }
