"""The bot channel admin: write-only, masked secrets, the callback URL, and "Test credentials" against the fakes."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from bots import services
from bots.models import BotChannel
from tests.bots.conftest import WECHAT_AES_KEY

pytestmark = pytest.mark.django_db


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def _data(persona, **extra) -> dict:
    data = {
        "name": "Support bot",
        "kind": "wechat",
        "persona": persona.pk,
        "app_id": "wx_test_appid",
        "message_mode": "safe",
        "enabled": "on",
        "app_secret": "wechat-secret-0001",
        "token": "server-token-42",
        "aes_key": WECHAT_AES_KEY,
    }
    return {**data, **extra}


def test_secrets_are_stored_encrypted_and_never_shown_back(admin_client, persona):
    response = admin_client.post(reverse("admin:bots_botchannel_add"), _data(persona))
    assert response.status_code == 302
    channel = BotChannel.objects.get()
    assert channel.app_secret == "wechat-secret-0001" and channel.token == "server-token-42"
    assert "wechat-secret-0001" not in channel.app_secret_encrypted

    page = admin_client.get(reverse("admin:bots_botchannel_change", args=[channel.pk])).content.decode()

    for secret in ("wechat-secret-0001", "server-token-42", WECHAT_AES_KEY):
        assert secret not in page
    assert "••••••••0001" in page  # masked: the last four characters
    assert f"http://testserver/bots/wechat/{channel.public_id}/" in page  # the callback URL to paste


def test_an_empty_secret_field_keeps_the_stored_one(admin_client, persona):
    admin_client.post(reverse("admin:bots_botchannel_add"), _data(persona))
    channel = BotChannel.objects.get()
    admin_client.post(
        reverse("admin:bots_botchannel_change", args=[channel.pk]),
        _data(persona, name="Renamed", app_secret="", token="", aes_key=""),
    )
    channel.refresh_from_db()
    assert (
        channel.name == "Renamed" and channel.app_secret == "wechat-secret-0001" and channel.aes_key == WECHAT_AES_KEY
    )


def test_a_wechat_aes_key_must_be_43_characters(admin_client, persona):
    response = admin_client.post(reverse("admin:bots_botchannel_add"), _data(persona, aes_key="too-short"))
    assert response.status_code == 200 and not BotChannel.objects.exists()


@pytest.mark.parametrize("fixture", ["feishu_channel", "wechat_channel"])
def test_test_credentials_reports_the_platforms_answer(admin_client, request, fixture):
    channel = request.getfixturevalue(fixture)
    response = admin_client.post(
        reverse("admin:bots_botchannel_changelist"), {"action": "test_credentials", "_selected_action": [channel.pk]}
    )
    [(level, text)] = _messages(response)
    assert level == "success" and "accepted the credentials" in text


def test_test_credentials_reports_a_refusal(admin_client, wechat_channel):
    services.channel_set_secrets(channel=wechat_channel, app_secret="wrong-secret")
    response = admin_client.post(
        reverse("admin:bots_botchannel_changelist"),
        {"action": "test_credentials", "_selected_action": [wechat_channel.pk]},
    )
    [(level, text)] = _messages(response)
    assert level == "error" and "40125" in text and "wrong-secret" not in text
