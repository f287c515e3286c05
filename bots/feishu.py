"""Feishu and Lark bots: the event callback's checks and decryption, and the messaging API.

Protocol sources (Feishu Open Platform, the same for Lark at open.larksuite.com):

- Receiving events, "接收事件" (encrypt-key-encryption-configuration-case):
  the body is `{"encrypt": base64(iv + AES-256-CBC(event))}` with the key
  SHA-256(Encrypt Key), PKCS#7 padding; the signature header
  `X-Lark-Signature` is hex SHA-256 of X-Lark-Request-Timestamp +
  X-Lark-Request-Nonce + Encrypt Key + the raw body.
- Request URL check, "配置请求地址": `{"type": "url_verification", "challenge",
  "token"}` answered with `{"challenge": ...}` within 1 s.
- Event `im.message.receive_v1` (schema 2.0), message content of `text` and
  `post` messages, and `mentions` keys `@_user_N`.
- tenant_access_token (internal apps): POST /open-apis/auth/v3/tenant_access_token/internal,
  valid `expire` seconds (7200); reply: POST /open-apis/im/v1/messages/:message_id/reply;
  update a card: PATCH /open-apis/im/v1/messages/:message_id (cards with
  `config.update_multi`; at most 5 updates per second per message); bot info:
  GET /open-apis/bot/v3/info.
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from bots.http import PlatformError, TokenApi, request_json

# Error codes of an invalid or expired tenant_access_token: fetch a new one and try again once.
INVALID_TOKEN_CODES = {99991661, 99991663, 99991668}


class CallbackRefused(Exception):
    """A callback that must be refused without side effects; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@sensitive_variables("encrypt_key", "key")
def decrypt(encrypt_key: str, encrypted: str) -> bytes:
    """Return the plaintext of an `encrypt` field.

    Raises:
        CallbackRefused: not base64, not whole AES blocks, or bad padding (a forged or corrupted payload).
    """
    try:
        data = base64.b64decode(encrypted, validate=True)
    except ValueError:
        raise CallbackRefused("The encrypted payload is not base64.") from None
    if len(data) < 32 or len(data) % 16:
        raise CallbackRefused("The encrypted payload is not whole AES blocks.")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
    padded = decryptor.update(data[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CallbackRefused("The encrypted payload does not decrypt with the Encrypt Key.") from None


@sensitive_variables("encrypt_key")
def signature(*, timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """Return the X-Lark-Signature of a callback: hex SHA-256 of timestamp + nonce + Encrypt Key + body."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


@sensitive_variables("verification_token", "encrypt_key")
def callback_payload(
    *, body: bytes, headers: dict[str, str], verification_token: str, encrypt_key: str, now: float | None = None
) -> dict[str, Any]:
    """Check a callback and return its event (decrypted when encrypted).

    With an Encrypt Key, every event but the URL check must carry a valid
    signature whose timestamp is at most `settings.BOTS_MAX_CLOCK_SKEW_S` away
    from `now` (a replay is refused); the Verification Token in the event must
    match the channel's.

    A channel with neither a Verification Token nor an Encrypt Key accepts
    nothing: anyone could post events to it.

    Raises:
        CallbackRefused: malformed (400), unsigned, forged or replayed, or the
            channel has no secret to check against (403).
    """
    if not verification_token and not encrypt_key:
        raise CallbackRefused(
            "The channel has no Verification Token or Encrypt Key: an admin must enter one.", status=403
        )
    try:
        outer = json.loads(body)
    except ValueError:
        raise CallbackRefused("The body is not JSON.") from None
    if not isinstance(outer, dict):
        raise CallbackRefused("The body is not a JSON object.")
    if "encrypt" in outer:
        if not encrypt_key:
            raise CallbackRefused("An encrypted event, but the channel has no Encrypt Key.", status=403)
        if not isinstance(outer["encrypt"], str):
            raise CallbackRefused("The encrypted payload is not text.")
        try:
            payload = json.loads(decrypt(encrypt_key, outer["encrypt"]))
        except CallbackRefused as exc:
            raise CallbackRefused(str(exc), status=403) from None
        except ValueError:
            raise CallbackRefused("The decrypted event is not JSON.", status=403) from None
    elif encrypt_key:
        raise CallbackRefused("The channel has an Encrypt Key but the event is not encrypted.", status=403)
    else:
        payload = outer
    if not isinstance(payload, dict):
        raise CallbackRefused("The event is not a JSON object.")
    is_check = payload.get("type") == "url_verification"
    if encrypt_key and not is_check:
        _check_signature(body=body, headers=headers, encrypt_key=encrypt_key, now=now)
    header = payload["header"] if isinstance(payload.get("header"), dict) else {}
    token = payload.get("token") if is_check or "header" not in payload else header.get("token")
    if verification_token and not hmac.compare_digest(str(token or ""), verification_token):
        raise CallbackRefused("The Verification Token does not match.", status=403)
    return payload


def _check_signature(*, body: bytes, headers: dict[str, str], encrypt_key: str, now: float | None) -> None:
    timestamp = headers.get("x-lark-request-timestamp", "")
    nonce = headers.get("x-lark-request-nonce", "")
    given = headers.get("x-lark-signature", "")
    expected = signature(timestamp=timestamp, nonce=nonce, encrypt_key=encrypt_key, body=body)
    if not given or not hmac.compare_digest(given, expected):
        raise CallbackRefused("The request signature does not match.", status=403)
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise CallbackRefused("The request timestamp is not a number.", status=403) from None
    if abs((time.time() if now is None else now) - sent_at) > settings.BOTS_MAX_CLOCK_SKEW_S:
        raise CallbackRefused("The request timestamp is too old or in the future (a replay?).", status=403)


@dataclass(frozen=True)
class IncomingMessage:
    """A person's message from an `im.message.receive_v1` event; `text` is None for unsupported types."""

    event_id: str
    message_id: str
    chat_id: str
    is_group: bool
    sender_open_id: str
    sender_union_id: str
    message_type: str
    text: str | None
    mentions_bot: bool


def incoming_message(payload: dict[str, Any], *, bot_open_id: str) -> IncomingMessage | None:
    """Return the message of an `im.message.receive_v1` event, or None for other events and bots' own messages.

    The bot's @-mention is stripped from the text; other people's mentions
    become their names.
    """
    header = payload.get("header") or {}
    if header.get("event_type") != "im.message.receive_v1":
        return None
    event = payload.get("event") or {}
    sender = event.get("sender") or {}
    message = event.get("message") or {}
    if sender.get("sender_type") not in (None, "user"):
        return None
    sender_id = sender.get("sender_id") or {}
    mentions = [m for m in message.get("mentions") or [] if isinstance(m, dict)]
    mentions_bot = any((m.get("id") or {}).get("open_id") == bot_open_id for m in mentions if bot_open_id)
    try:
        content = json.loads(message.get("content") or "{}")
    except ValueError:
        content = {}
    message_type = str(message.get("message_type") or "")
    return IncomingMessage(
        event_id=str(header.get("event_id") or ""),
        message_id=str(message.get("message_id") or ""),
        chat_id=str(message.get("chat_id") or ""),
        is_group=message.get("chat_type") != "p2p",
        sender_open_id=str(sender_id.get("open_id") or ""),
        sender_union_id=str(sender_id.get("union_id") or ""),
        message_type=message_type,
        text=_message_text(message_type, content, mentions, bot_open_id) if isinstance(content, dict) else None,
        mentions_bot=mentions_bot,
    )


def _message_text(message_type: str, content: dict, mentions: list[dict], bot_open_id: str) -> str | None:
    names = {
        str(m.get("key")): ("" if (m.get("id") or {}).get("open_id") == bot_open_id else "@" + str(m.get("name") or ""))
        for m in mentions
    }
    if message_type == "text":
        text = str(content.get("text") or "")
        for key, name in names.items():
            text = text.replace(key, name)
        return " ".join(text.split(" ")).strip()
    if message_type == "post":
        # A post is {"title", "content": [[element, ...], ...]}, one list per line.
        lines = [str(content.get("title") or "")]
        for row in content.get("content") or []:
            words = []
            for element in row if isinstance(row, list) else []:
                if not isinstance(element, dict):
                    continue
                if element.get("tag") == "at":
                    words.append(names.get(str(element.get("user_id")), "@" + str(element.get("user_name") or "")))
                else:
                    words.append(str(element.get("text") or ""))
            lines.append("".join(words))
        return "\n".join(line.strip() for line in lines if line.strip())
    return None


def card_json(markdown: str) -> str:
    """Return an interactive card showing `markdown`, updatable in place (`update_multi`), as a JSON string."""
    card = {
        "config": {"wide_screen_mode": True, "update_multi": True},
        "elements": [{"tag": "markdown", "content": markdown}],
    }
    return json.dumps(card, ensure_ascii=False)


class FeishuApi(TokenApi):
    """The calls a bot channel makes to Feishu or Lark, with its tenant access token cached (`TokenApi`).

    `base_url`: settings.BOTS_FEISHU_BASE_URL or BOTS_LARK_BASE_URL.
    """

    kind = "feishu"

    async def fetch_token(self) -> tuple[str, int]:
        """Fetch a new tenant access token; return it and its lifetime in seconds.

        Raises:
            PlatformError: unreachable, or refused (the platform's code and message).
        """
        body = await request_json(
            "POST",
            f"{self.base_url}/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": self.app_id, "app_secret": self._app_secret},
        )
        if body.get("code") != 0 or not body.get("tenant_access_token"):
            raise PlatformError(f"Feishu refused the credentials: code {body.get('code')}, {body.get('msg')}")
        return str(body["tenant_access_token"]), int(body.get("expire") or 7200)

    async def _call(self, method: str, path: str, *, json_body: Any = None) -> dict:
        for fresh in (False, True):
            token = await self.token(fresh=fresh)
            body = await request_json(
                method, f"{self.base_url}{path}", json=json_body, headers={"Authorization": f"Bearer {token}"}
            )
            if body.get("code") in INVALID_TOKEN_CODES and not fresh:
                continue
            if body.get("code") != 0:
                raise PlatformError(f"{method} {path}: code {body.get('code')}, {body.get('msg')}")
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    async def bot_open_id(self) -> str:
        """Return the bot's own open_id (to tell an @-mention of the bot in a group), cached for a day."""
        key = f"{self.cache_key}:bot"
        open_id = await cache.aget(key)
        if open_id is None:
            body = await self._call("GET", "/open-apis/bot/v3/info")
            open_id = str((body.get("bot") or {}).get("open_id") or "")
            await cache.aset(key, open_id, 24 * 3600)
        return open_id

    async def reply(self, *, message_id: str, msg_type: str, content: str) -> str:
        """Reply to message `message_id` with `content` (a JSON string of `msg_type`); return the new message's id."""
        body = await self._call(
            "POST",
            f"/open-apis/im/v1/messages/{message_id}/reply",
            json_body={"msg_type": msg_type, "content": content},
        )
        return str((body.get("data") or {}).get("message_id") or "")

    async def reply_text(self, *, message_id: str, text: str) -> str:
        """Reply with a plain text message; return its id."""
        return await self.reply(message_id=message_id, msg_type="text", content=json.dumps({"text": text}))

    async def reply_card(self, *, message_id: str, markdown: str) -> str:
        """Reply with an interactive card showing `markdown`; return the card message's id."""
        return await self.reply(message_id=message_id, msg_type="interactive", content=card_json(markdown))

    async def update_card(self, *, message_id: str, markdown: str) -> None:
        """Replace the content of card message `message_id` with `markdown`."""
        await self._call("PATCH", f"/open-apis/im/v1/messages/{message_id}", json_body={"content": card_json(markdown)})
