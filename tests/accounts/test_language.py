"""The interface language: chosen from the browser's Accept-Language, then by the switch (a cookie for a
visitor, the user's preference across devices), on pages and on the websocket."""

import re
from datetime import UTC, date, datetime

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.locale import SESSION_KEY
from accounts.models import Preference
from accounts.templatetags.languages import language_tag
from chatsite.asgi import application
from conversations import services
from conversations.sidebar import date_group
from tests.servers import session_cookie
from tests.sockets import start_chat

pytestmark = pytest.mark.django_db

HTML_LANG = re.compile(r'<html lang="([^"]+)"')
LOGIN = "/accounts/login/"
# The language switch's label on the sign-in page, in each language: proof the page is translated, not just tagged.
LABEL = {"en": ">Language<", "zh-Hans": ">语言<", "zh-Hant": ">語言<"}


def page_language(client: Client, path: str = LOGIN, **headers) -> str:
    """Return the page's `<html lang>`, after checking that the page's text is in that language."""
    body = client.get(path, headers=headers).content.decode()
    language = HTML_LANG.search(body).group(1)
    assert LABEL[language] in body
    return language


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("zh-CN", "zh-Hans"),
        ("zh-SG", "zh-Hans"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        ("zh-Hans", "zh-Hans"),
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh-MO", "zh-Hant"),
        ("zh-TW,zh;q=0.9,en-US;q=0.8", "zh-Hant"),
        ("zh-Hant-TW", "zh-Hant"),
        ("en-US", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("ja", "en"),
        ("", "en"),
    ],
)
def test_the_language_follows_the_browser(client, accept_language, expected):
    assert page_language(client, accept_language=accept_language) == expected


def test_the_response_says_its_language_and_that_it_varies_with_the_browsers(client):
    response = client.get(LOGIN, headers={"accept-language": "zh-TW"})
    assert response["Content-Language"] == "zh-hant"
    assert "Accept-Language" in response["Vary"]


@pytest.mark.parametrize(
    ("code", "tag"),
    [("en", "en"), ("zh-hans", "zh-Hans"), ("zh-hant", "zh-Hant"), ("en-us", "en-US"), ("sr-latn-rs", "sr-Latn-RS")],
)
def test_language_tag_writes_bcp_47_case(code, tag):
    assert language_tag(code) == tag


def test_a_visitors_pick_is_kept_in_the_language_cookie_over_the_browsers(client):
    response = client.post(reverse("language-set"), {"language": "zh-hant", "next": LOGIN})
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "zh-hant"
    assert cookie["max-age"] == settings.LANGUAGE_COOKIE_AGE
    assert page_language(client, accept_language="zh-CN") == "zh-Hant"


def test_the_sign_in_page_offers_the_switch_to_visitors(client):
    body = client.get(LOGIN, headers={"accept-language": "zh-CN"}).content.decode()
    assert f'action="{reverse("language-set")}"' in body
    assert 'value="zh-hans" lang="zh-hans" selected' in body
    assert "繁體中文" in body and "简体中文" in body and "English" in body


def test_the_browsers_language_again_forgets_the_cookie(client):
    client.post(reverse("language-set"), {"language": "zh-hant"})
    response = client.post(reverse("language-set"), {"language": ""})
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME]["max-age"] == 0
    assert page_language(client, accept_language="zh-CN") == "zh-Hans"


@pytest.mark.parametrize("language", ["fr", "zh-tw", "<script>"])
def test_a_language_the_site_does_not_offer_is_refused(client, alice, language):
    client.force_login(alice)
    response = client.post(reverse("language-set"), {"language": language})
    assert response.status_code == 400
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert not Preference.objects.filter(user=alice).exclude(language="").exists()


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", ""])
def test_the_switch_goes_back_only_to_this_site(client, next_url):
    response = client.post(reverse("language-set"), {"language": "zh-hans", "next": next_url})
    assert response["Location"] == "/"


def test_the_switch_answers_only_post(client):
    assert client.get(reverse("language-set")).status_code == 405


def test_a_users_pick_follows_them_to_another_device(client, alice):
    client.force_login(alice)
    client.post(reverse("language-set"), {"language": "zh-hant", "next": reverse("account")})
    assert Preference.objects.get(user=alice).language == "zh-hant"

    other_device = Client()  # no cookie of the first one, an English browser
    other_device.force_login(alice)
    assert page_language(other_device, reverse("account"), accept_language="en-US") == "zh-Hant"


def test_a_users_saved_language_beats_the_cookie_and_the_browser(client, alice):
    Preference.objects.create(user=alice, language="zh-hans")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hant"
    client.force_login(alice)
    assert page_language(client, reverse("account"), accept_language="zh-TW") == "zh-Hans"


def test_a_session_opened_before_the_pick_reads_the_saved_language_once(client, alice):
    Preference.objects.create(user=alice, language="zh-hant")
    name, value = session_cookie(alice).split("=", 1)  # a session without the language in it
    client.cookies[name] = value
    assert page_language(client, reverse("account"), accept_language="en") == "zh-Hant"
    assert SessionStore(value)[SESSION_KEY] == "zh-hant"


def test_a_user_who_picks_the_browsers_language_gets_the_browsers(client, alice):
    Preference.objects.create(user=alice, language="zh-hant")
    client.force_login(alice)
    client.post(reverse("language-set"), {"language": ""})
    assert Preference.objects.get(user=alice).language == ""
    assert page_language(client, reverse("account"), accept_language="zh-CN") == "zh-Hans"


def test_the_account_page_shows_the_switch_with_the_saved_choice(client, alice):
    Preference.objects.create(user=alice, language="zh-hant")
    client.force_login(alice)
    body = client.get(reverse("account")).content.decode()
    assert 'id="account-language"' in body
    assert 'value="zh-hant" lang="zh-hant" selected' in body
    assert f'name="next" value="{reverse("account")}"' in body


def test_the_sidebars_groups_and_dates_follow_the_language(client, alice, persona):
    services.conversation_create(owner=alice, persona=persona)
    client.force_login(alice)
    page = client.get(reverse("conversations:conversation-new"), headers={"accept-language": "zh-TW"})
    assert '<h2 class="conversation-group">今天</h2>' in page.content.decode()
    page = client.get(reverse("conversations:conversation-new"), headers={"accept-language": "zh-CN"})
    assert "新对话" in page.content.decode() and "對話" not in page.content.decode()


@pytest.mark.parametrize(
    ("language", "expected"), [("en", ["Yesterday", "November 2026"]), ("zh-hant", ["昨天", "2026年11月"])]
)
def test_the_sidebars_day_and_month_groups_are_written_in_the_language(language, expected):
    today = date(2026, 12, 31)
    with translation.override(language):
        labels = [date_group(datetime(2026, 12, 30, 12, tzinfo=UTC), today=today)]
        labels.append(date_group(datetime(2026, 11, 2, 12, tzinfo=UTC), today=today))
    assert labels == expected


def test_the_javascript_catalog_follows_the_users_language_with_the_session_alone(
    client, alice, django_assert_num_queries
):
    Preference.objects.create(user=alice, language="zh-hant")
    client.force_login(alice)
    with django_assert_num_queries(1):  # the session; not the user, not the preference
        catalog = client.get(reverse("javascript-catalog"), headers={"accept-language": "en-US"})
    assert '"YEAR_MONTH_FORMAT": "Y\\u5e74n\\u6708"' in catalog.content.decode()  # 2026年11月: Chinese formats


# The websocket: refusals and fragments in the page's language


async def _alert_for_empty_message(user, persona_maker, headers: list) -> str:
    conversation = await start_chat(user, persona_maker)
    cookie = await sync_to_async(session_cookie)(user)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation.public_id}/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie.encode()), *headers],
    )
    connected, _ = await communicator.connect()
    assert connected
    try:
        await communicator.send_json_to({"action": "send", "message": "", "idempotency_key": "k1"})
        return (await communicator.receive_output(5))["text"]
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [("zh-TW", "請先輸入訊息再傳送。"), ("zh-CN", "请先输入消息再发送。"), ("en-US", "Type a message before sending.")],
)
async def test_the_socket_refuses_in_the_browsers_language(alice, make_persona, accept_language, expected):
    alert = await _alert_for_empty_message(alice, make_persona, [(b"accept-language", accept_language.encode())])
    assert expected in alert


@pytest.mark.django_db(transaction=True)
async def test_the_socket_speaks_the_users_saved_language(alice, make_persona):
    await Preference.objects.acreate(user=alice, language="zh-hant")
    alert = await _alert_for_empty_message(alice, make_persona, [(b"accept-language", b"en-US")])
    assert "請先輸入訊息再傳送。" in alert
