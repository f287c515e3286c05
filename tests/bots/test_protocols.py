"""The platforms' signatures and encryption, checked against their documented examples (tests/fixtures/bots)."""

import json
import time
from pathlib import Path

import pytest

from bots import feishu, wechat
from bots.text import markdown_to_plain, split_text, utf8_bytes
from tests.fakes import feishu_server, wechat_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bots"
FEISHU = json.loads((FIXTURES / "feishu.json").read_text())
WECHAT = json.loads((FIXTURES / "wechat.json").read_text())
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def test_feishu_documented_example_decrypts():
    example = FEISHU["decrypt"]
    assert feishu.decrypt(example["encrypt_key"], example["encrypt"]).decode() == example["plaintext"]


def test_feishu_payload_with_another_key_is_refused():
    with pytest.raises(feishu.CallbackRefused):
        feishu.decrypt("another key", FEISHU["decrypt"]["encrypt"])


@pytest.mark.parametrize("garbage", ["not base64!", "QUJD", ""])
def test_feishu_garbage_payload_is_refused(garbage):
    with pytest.raises(feishu.CallbackRefused):
        feishu.decrypt("test key", garbage)


def test_feishu_signed_event_is_accepted_and_decrypted():
    event = feishu_server.message_event(text="hi", token="tok")
    body, headers = feishu_server.event_request(event, encrypt_key="key")
    headers = {k.lower(): v for k, v in headers.items()}
    payload = feishu.callback_payload(body=body, headers=headers, verification_token="tok", encrypt_key="key")
    assert payload == event


@pytest.mark.parametrize(
    "change",
    [
        {"x-lark-signature": "0" * 64},
        {"x-lark-request-nonce": "another"},
        {"x-lark-request-timestamp": str(int(time.time()) - 3600)},
    ],
)
def test_feishu_forged_or_replayed_signature_is_refused(change):
    body, headers = feishu_server.event_request(feishu_server.message_event(text="hi", token="tok"), encrypt_key="key")
    headers = {k.lower(): v for k, v in headers.items()} | change
    with pytest.raises(feishu.CallbackRefused) as refused:
        feishu.callback_payload(body=body, headers=headers, verification_token="tok", encrypt_key="key")
    assert refused.value.status == 403


def test_feishu_replayed_but_resigned_old_timestamp_is_refused():
    old = int(time.time()) - 3600
    body, headers = feishu_server.event_request(
        feishu_server.message_event(text="hi", token="tok"), encrypt_key="key", timestamp=old
    )
    with pytest.raises(feishu.CallbackRefused, match="too old"):
        feishu.callback_payload(
            body=body, headers={k.lower(): v for k, v in headers.items()}, verification_token="tok", encrypt_key="key"
        )


def test_feishu_wrong_verification_token_is_refused():
    body, _headers = feishu_server.event_request(feishu_server.message_event(text="hi", token="forged"))
    with pytest.raises(feishu.CallbackRefused, match="Verification Token"):
        feishu.callback_payload(body=body, headers={}, verification_token="tok", encrypt_key="")


def test_feishu_group_message_strips_the_bot_mention():
    event = feishu_server.message_event(text="what is 2+2?", token="t", chat_type="group", mention_bot=True)
    message = feishu.incoming_message(event, bot_open_id=feishu_server.BOT_OPEN_ID)
    assert message is not None
    assert message.mentions_bot and message.is_group
    assert message.text == "what is 2+2?"


def test_feishu_post_message_reads_as_text():
    content = {
        "title": "Question",
        "content": [[{"tag": "text", "text": "first line"}], [{"tag": "a", "text": "a link", "href": "https://x"}]],
    }
    event = feishu_server.message_event(text="", token="t", message_type="post", content=content)
    message = feishu.incoming_message(event, bot_open_id="")
    assert message is not None and message.text == "Question\nfirst line\na link"


def test_feishu_image_message_has_no_text():
    event = feishu_server.message_event(text="", token="t", message_type="image", content={"image_key": "img_1"})
    message = feishu.incoming_message(event, bot_open_id="")
    assert message is not None and message.text is None


def test_wechat_documented_url_check_signature():
    example = WECHAT["url_check"]
    assert wechat.signature(example["token"], example["timestamp"], example["nonce"]) == example["signature"]


def test_wechat_documented_push_signature():
    example = WECHAT["plain_push"]
    assert wechat.signature(example["token"], example["timestamp"], example["nonce"]) == example["signature"]


def test_wechat_documented_safe_mode_message_is_signed_and_decrypts(settings):
    example = WECHAT["compatible_push"]
    settings.BOTS_MAX_CLOCK_SKEW_S = 10**10  # the example was signed in 2014
    encrypted = wechat.parse_xml(example["body"].encode())["Encrypt"]
    wechat.check_signature(
        token=example["token"],
        timestamp=example["timestamp"],
        nonce=example["nonce"],
        given=example["msg_signature"],
        encrypted=encrypted,
    )
    plaintext = wechat.decrypt(
        encoding_aes_key=example["encoding_aes_key"], app_id=example["app_id"], encrypted=encrypted
    )
    assert plaintext.decode() == example["plaintext"]
    assert wechat.parse_xml(plaintext)["Content"] == "abcdteT"


def test_wechat_documented_message_for_another_appid_is_refused():
    example = WECHAT["compatible_push"]
    encrypted = wechat.parse_xml(example["body"].encode())["Encrypt"]
    with pytest.raises(wechat.CallbackRefused):
        wechat.decrypt(encoding_aes_key=example["encoding_aes_key"], app_id="wx_another_app", encrypted=encrypted)


def test_wechat_decrypts_what_the_independent_fake_encrypts():
    encrypted = wechat_server.encrypt(encoding_aes_key=AES_KEY, app_id="wx123", message="<xml>你好</xml>".encode())
    assert wechat.decrypt(encoding_aes_key=AES_KEY, app_id="wx123", encrypted=encrypted) == "<xml>你好</xml>".encode()


def test_wechat_encryption_is_readable_by_the_independent_fake():
    encrypted = wechat.encrypt(encoding_aes_key=AES_KEY, app_id="wx123", message=b"<xml>reply</xml>")
    assert wechat_server.decrypt(encoding_aes_key=AES_KEY, encrypted=encrypted) == b"<xml>reply</xml>"


def test_wechat_message_for_another_appid_is_refused():
    encrypted = wechat_server.encrypt(encoding_aes_key=AES_KEY, app_id="wx-other", message=b"<xml/>")
    with pytest.raises(wechat.CallbackRefused):
        wechat.decrypt(encoding_aes_key=AES_KEY, app_id="wx123", encrypted=encrypted)


def test_wechat_xml_with_entities_is_refused():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>'
    with pytest.raises(wechat.CallbackRefused, match="DOCTYPE"):
        wechat.parse_xml(bomb)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_wechat_xml_in_another_encoding_cannot_hide_a_doctype(encoding):
    declaration = f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
    bomb = declaration + '<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>'
    with pytest.raises(wechat.CallbackRefused):
        wechat.parse_xml(bomb.encode(encoding))


def test_a_wechat_channel_without_a_token_accepts_no_signature():
    now = str(int(time.time()))
    with pytest.raises(wechat.CallbackRefused, match="no Token") as refused:
        wechat.check_signature(token="", timestamp=now, nonce="n", given=wechat.signature("", now, "n"))
    assert refused.value.status == 403


def test_a_feishu_channel_without_token_or_encrypt_key_accepts_nothing():
    body = json.dumps({"type": "url_verification", "challenge": "c", "token": ""}).encode()
    with pytest.raises(feishu.CallbackRefused, match="no Verification Token") as refused:
        feishu.callback_payload(body=body, headers={}, verification_token="", encrypt_key="")
    assert refused.value.status == 403


def test_wechat_malformed_xml_is_refused():
    with pytest.raises(wechat.CallbackRefused):
        wechat.parse_xml(b"<xml><Content>unclosed</xml>")


def test_split_text_keeps_every_part_within_the_byte_limit():
    text = "\n\n".join("段落" * 300 for _ in range(5))
    parts = split_text(text, limit=2048, size=utf8_bytes)
    assert len(parts) > 1
    assert all(utf8_bytes(part) <= 2048 for part in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")


def test_markdown_becomes_readable_plain_text():
    text = markdown_to_plain(
        "# Title\n\nSome **bold** and a [link](https://example.com).\n\n- one\n- two\n\n```\ncode\n```"
    )
    assert text == "Title\n\nSome bold and a link (https://example.com).\n\n• one\n\n• two\n\ncode"


def test_the_person_language_follows_their_preference_else_their_script(settings):
    from types import SimpleNamespace

    from bots.replies import person_language

    assert person_language(user=SimpleNamespace(preference=SimpleNamespace(language="en")), text="你好") == "en"
    assert person_language(user=None, text="你好，请问") == "zh-hans"
    assert person_language(user=None, text="hello") == settings.LANGUAGE_CODE
