"""WeChat Official Accounts: the server's signature checks, message encryption, XML, and the API it calls.

Protocol sources (WeChat Official Accounts documentation, developers.weixin.qq.com):

- "消息推送" (server configuration): `signature` = hex SHA-1 of the sorted
  and joined Token, timestamp and nonce; the URL check (GET) echoes `echostr`.
- "消息加解密说明" and its technical plan: in safe and compatible mode the
  URL also carries `encrypt_type=aes` and `msg_signature` = SHA-1 of the
  sorted Token, timestamp, nonce and the `Encrypt` text. AESKey =
  base64(EncodingAESKey + "="), 32 bytes; AES-256-CBC with IV = AESKey[:16];
  plaintext = 16 random bytes + 4-byte big-endian message length + message
  + AppID, PKCS#7-padded to a multiple of 32 bytes.
- "被动回复用户消息": a text reply is XML with ToUserName, FromUserName,
  CreateTime, MsgType=text and Content, answered within 5 s; WeChat retries
  three times, so messages are deduplicated by MsgId (events by FromUserName
  + CreateTime); "success" or an empty body means no reply.
- "获取 Access token": GET /cgi-bin/token (valid `expires_in`, 7200 s);
  "客服消息": POST /cgi-bin/message/custom/send. Error codes 40001, 40014 and
  42001 mean the access token is invalid or expired.

Written with `cryptography` and the standard library: wechatpy has had no
release since 2021. XML is parsed with xml.etree after refusing any DOCTYPE
(so no entity can be declared, let alone expanded) and anything larger than
`settings.BOTS_MAX_BODY_BYTES`.
"""

import base64
import hashlib
import hmac
import os
import struct
import time
from typing import Any
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from bots.http import PlatformError, TokenApi, request_json

INVALID_TOKEN_CODES = {40001, 40014, 42001}
BLOCK_BYTES = 32  # WeChat pads to 32-byte multiples, not AES's 16.


class CallbackRefused(Exception):
    """A callback that must be refused without side effects; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@sensitive_variables("token")
def signature(*parts: str) -> str:
    """Return WeChat's signature of `parts` (Token, timestamp, nonce[, Encrypt]): SHA-1 of them sorted and joined."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


@sensitive_variables("token")
def check_signature(*, token: str, timestamp: str, nonce: str, given: str, encrypted: str | None = None) -> None:
    """Check `given` against the signature of Token, timestamp and nonce (and `encrypted`, for msg_signature).

    Raises:
        CallbackRefused: the channel has no Token (anyone could sign then), it
            does not match, or the timestamp is more than
            settings.BOTS_MAX_CLOCK_SKEW_S from now (403).
    """
    if not token:
        raise CallbackRefused("The channel has no Token: an admin must enter it.", status=403)
    parts = (token, timestamp, nonce) if encrypted is None else (token, timestamp, nonce, encrypted)
    if not given or not hmac.compare_digest(given, signature(*parts)):
        raise CallbackRefused("The signature does not match.", status=403)
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise CallbackRefused("The timestamp is not a number.", status=403) from None
    if abs(time.time() - sent_at) > settings.BOTS_MAX_CLOCK_SKEW_S:
        raise CallbackRefused("The timestamp is too old or in the future (a replay?).", status=403)


def _aes_key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CallbackRefused("The channel's EncodingAESKey is not 43 base64 characters.", status=403)
    return key


@sensitive_variables("encoding_aes_key", "key")
def decrypt(*, encoding_aes_key: str, app_id: str, encrypted: str) -> bytes:
    """Return the XML message inside `encrypted` (the Encrypt element's text).

    Raises:
        CallbackRefused: not base64 or AES blocks, a bad padding or length, or
            another AppID inside (403).
    """
    key = _aes_key(encoding_aes_key)
    try:
        data = base64.b64decode(encrypted, validate=True)
    except ValueError:
        raise CallbackRefused("The encrypted message is not base64.", status=403) from None
    if not data or len(data) % 16:
        raise CallbackRefused("The encrypted message is not whole AES blocks.", status=403)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK_BYTES or plain[-pad:] != bytes([pad]) * pad:
        raise CallbackRefused("The encrypted message does not decrypt with the EncodingAESKey.", status=403)
    plain = plain[:-pad]
    if len(plain) < 20:
        raise CallbackRefused("The decrypted message is too short.", status=403)
    (length,) = struct.unpack(">I", plain[16:20])
    message, tail = plain[20 : 20 + length], plain[20 + length :]
    if len(message) != length or tail.decode(errors="replace") != app_id:
        raise CallbackRefused("The decrypted message is not for this AppID.", status=403)
    return message


@sensitive_variables("encoding_aes_key", "key")
def encrypt(*, encoding_aes_key: str, app_id: str, message: bytes, random_prefix: bytes | None = None) -> str:
    """Return `message` encrypted for WeChat (base64), with 16 random bytes first unless `random_prefix` is given."""
    key = _aes_key(encoding_aes_key)
    plain = (random_prefix or os.urandom(16)) + struct.pack(">I", len(message)) + message + app_id.encode()
    pad = BLOCK_BYTES - len(plain) % BLOCK_BYTES
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def parse_xml(body: bytes) -> dict[str, str]:
    """Return the child elements of a WeChat XML message as {tag: text}.

    WeChat sends UTF-8: anything else is refused before parsing (a UTF-16
    body would hide a DOCTYPE from a byte search), then any DOCTYPE or entity
    declaration is refused, so no entity is ever declared or expanded.

    Raises:
        CallbackRefused: too large, not UTF-8, a DOCTYPE (entities are refused
            outright), or not well-formed XML (400).
    """
    if len(body) > settings.BOTS_MAX_BODY_BYTES:
        raise CallbackRefused("The message is too large.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackRefused("The message is not UTF-8.") from None
    if "\x00" in text:  # Never in XML; UTF-16 without a byte order mark decodes as UTF-8 with NULs.
        raise CallbackRefused("The message is not UTF-8.")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise CallbackRefused("The message declares a DOCTYPE or entities.")
    # The parser reads the bytes as UTF-8 whatever encoding they declare: what was searched is what is parsed.
    parser = ElementTree.XMLParser(encoding="utf-8")
    try:
        parser.feed(body)
        root = parser.close()
    except ElementTree.ParseError:
        raise CallbackRefused("The message is not well-formed XML.") from None
    return {child.tag: (child.text or "") for child in root}


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply_xml(*, to_user: str, from_user: str, content: str, now: int | None = None) -> str:
    """Return the passive reply XML of a text message from `from_user` (the account) to `to_user`."""
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(time.time()) if now is None else now}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
        f"<Content>{_cdata(content)}</Content></xml>"
    )


@sensitive_variables("token", "encoding_aes_key")
def encrypted_reply_xml(*, token: str, encoding_aes_key: str, app_id: str, reply_xml: str, nonce: str) -> str:
    """Return `reply_xml` wrapped for safe mode: Encrypt, MsgSignature, TimeStamp and Nonce."""
    encrypted = encrypt(encoding_aes_key=encoding_aes_key, app_id=app_id, message=reply_xml.encode())
    timestamp = str(int(time.time()))
    return (
        f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{_cdata(signature(token, timestamp, nonce, encrypted))}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>"
    )


class WeChatApi(TokenApi):
    """The calls a bot channel makes to WeChat, with its access token cached (`TokenApi`)."""

    kind = "wechat"

    async def fetch_token(self) -> tuple[str, int]:
        """Fetch a new access token; return it and its lifetime in seconds.

        Raises:
            PlatformError: unreachable, or refused (WeChat's errcode and errmsg).
        """
        body = await request_json(
            "GET",
            f"{self.base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self._app_secret},
        )
        if not body.get("access_token"):
            raise PlatformError(f"WeChat refused the credentials: errcode {body.get('errcode')}, {body.get('errmsg')}")
        return str(body["access_token"]), int(body.get("expires_in") or 7200)

    async def send_text(self, *, open_id: str, text: str) -> None:
        """Send `text` to `open_id` through the customer service message API.

        Raises:
            PlatformError: unreachable or refused (after one fresh token on an invalid-token code).
        """
        for fresh in (False, True):
            token = await self.token(fresh=fresh)
            body: dict[str, Any] = await request_json(
                "POST",
                f"{self.base_url}/cgi-bin/message/custom/send",
                params={"access_token": token},
                json={"touser": open_id, "msgtype": "text", "text": {"content": text}},
            )
            if body.get("errcode") in INVALID_TOKEN_CODES and not fresh:
                continue
            if body.get("errcode") not in (0, None):
                raise PlatformError(f"WeChat refused the message: errcode {body.get('errcode')}, {body.get('errmsg')}")
            return
