"""A fake WeChat Official Accounts API on loopback, speaking the documented wire formats, and callback builders.

Endpoints (WeChat Official Accounts documentation):

- GET /cgi-bin/token?grant_type=client_credential&appid=&secret= →
  `{"access_token": "...", "expires_in": 7200}`, or `{"errcode": 40125, "errmsg": "invalid appsecret"}`.
- POST /cgi-bin/message/custom/send?access_token= `{"touser", "msgtype": "text",
  "text": {"content"}}` → `{"errcode": 0, "errmsg": "ok"}`; 40001 for a token it
  did not issue (or revoked), 45002 for content over 2048 bytes.

`message_request` builds a message callback as WeChat sends it, in plain or
safe mode (msg_signature and the Encrypt element, AES-256-CBC with IV =
AESKey[:16], 32-byte PKCS#7 padding), with the documented signatures.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import struct
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fakes.loopback import LoopbackServer


@dataclass
class CustomMessage:
    touser: str
    content: str


class FakeWeChatServer(LoopbackServer):
    """The access token and customer service message endpoints of WeChat's API."""

    def __init__(self, *, app_id: str = "wx_test_appid", app_secret: str = "wechat-secret-0001") -> None:
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.sent: list[CustomMessage] = []
        self._ids = itertools.count(1)

    def clear(self) -> None:
        self.tokens.clear()
        self.sent.clear()
        self.token_requests = 0

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        query = request.query
        if query.get("grant_type") != "client_credential" or query.get("appid") != self.app_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if query.get("secret") != self.app_secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = f"wx-token-{next(self._ids)}-{os.urandom(4).hex()}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _custom_send(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") not in self.tokens:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        body = await request.json()
        content = body["text"]["content"]
        if len(content.encode()) > 2048:
            return web.json_response({"errcode": 45002, "errmsg": "content size out of limit"})
        self.sent.append(CustomMessage(touser=body["touser"], content=content))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def encrypt(*, encoding_aes_key: str, app_id: str, message: bytes) -> str:
    key = base64.b64decode(encoding_aes_key + "=")
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + app_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(*, encoding_aes_key: str, encrypted: str) -> bytes:
    """Return the XML inside an encrypted passive reply (the test's side of safe mode)."""
    key = base64.b64decode(encoding_aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length]


_ids = itertools.count(1)


def text_xml(*, text: str, open_id: str = "o_person_1", account: str = "gh_test", msg_id: str | None = None) -> str:
    """Return a text message's XML as WeChat pushes it."""
    return (
        f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id or 10000 + next(_ids)}</MsgId></xml>"
    )


def event_xml(*, event: str, open_id: str = "o_person_1", account: str = "gh_test") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{open_id}]]></FromUserName>"
        f"<CreateTime>{int(time.time()) + next(_ids)}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    )


def message_request(
    xml: str,
    *,
    token: str,
    encoding_aes_key: str = "",
    app_id: str = "",
    timestamp: int | None = None,
    nonce: str = "123456",
    open_id: str = "o_person_1",
) -> tuple[str, bytes]:
    """Return (query string, body) of a message callback; safe mode when `encoding_aes_key` is given."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    query = {"signature": signature(token, stamp, nonce), "timestamp": stamp, "nonce": nonce, "openid": open_id}
    if not encoding_aes_key:
        return urlencode(query), xml.encode()
    encrypted = encrypt(encoding_aes_key=encoding_aes_key, app_id=app_id, message=xml.encode())
    query |= {"encrypt_type": "aes", "msg_signature": signature(token, stamp, nonce, encrypted)}
    body = f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return urlencode(query), body.encode()
