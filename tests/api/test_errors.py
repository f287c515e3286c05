"""Every error kind of /v1 as the openai SDK sees it: status, error object, and the page's own message."""

import httpx2
import openai
import pytest
from django.contrib.auth.models import Group

from api import services
from api.models import ApiKey, GroupApiAccess
from conversations.models import Message
from personas.models import ChatModel
from tests.conftest import streamed_requests
from tests.servers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]


def sdk_with(site, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=site.url("/v1"), api_key=key, max_retries=0, timeout=30)


def test_no_key_is_401_and_a_signed_in_browsers_cookie_does_not_count(site, alice, persona):
    response = httpx2.post(
        site.url("/v1/chat/completions"),
        json={"model": persona.slug, "messages": HELLO},
        headers={"Cookie": session_cookie(alice)},
    )
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "missing_api_key"
    assert Message.objects.filter(role="user").count() == 0


def test_a_wrong_key_is_401(site, persona):
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk_with(site, "chat-not-a-real-key").chat.completions.create(model=persona.slug, messages=HELLO)
    assert refused.value.status_code == 401 and refused.value.body["code"] == "invalid_api_key"


def test_a_revoked_key_is_403_and_its_last_use_stays_shown(site, alice, alice_key, persona, upstream):
    client = sdk_with(site, alice_key)
    client.models.list()
    key = ApiKey.objects.get(user=alice)
    assert key.last_used_at is not None
    services.api_key_revoke(key=key)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=persona.slug, messages=HELLO)
    assert refused.value.body["code"] == "revoked_api_key" and not streamed_requests(upstream)


def test_an_expired_console_key_is_401(site, alice, persona):
    from django.utils import timezone

    key = services.api_key_create(user=alice, name="console", expires_at=timezone.now())[1]
    with pytest.raises(openai.AuthenticationError):
        sdk_with(site, key).models.list()


def test_an_inactive_user_is_403(site, alice, alice_key, persona):
    alice.is_active = False
    alice.save()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk_with(site, alice_key).chat.completions.create(model=persona.slug, messages=HELLO)
    assert refused.value.body["code"] == "inactive_user"


def test_the_api_switched_off_for_a_group_is_403_for_its_members(site, alice, alice_key, persona):
    group = Group.objects.create(name="students")
    alice.groups.add(group)
    GroupApiAccess.objects.create(group=group, enabled=False)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk_with(site, alice_key).models.list()
    assert refused.value.body["code"] == "api_disabled"


def test_an_unknown_model_is_404_naming_the_param(sdk, persona):
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.chat.completions.create(model="no-such-persona", messages=HELLO)
    body = refused.value.body
    assert body["param"] == "model" and body["code"] == "model_not_found" and "no-such-persona" in body["message"]


def test_a_bad_parameter_is_400_naming_it(sdk, persona):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=persona.slug, messages=HELLO, temperature=3)
    assert refused.value.body["param"] == "temperature"


def test_a_question_too_long_for_the_context_window_is_400_context_length_exceeded(sdk, make_persona, upstream):
    persona = make_persona("fake-echo", slug="small")
    ChatModel.objects.filter(pk=persona.model_id).update(context_window=300, max_output_tokens=100)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="small", messages=[{"role": "user", "content": "word " * 400}])
    body = refused.value.body
    assert body["code"] == "context_length_exceeded" and "context window" in body["message"]
    assert Message.objects.filter(role="user").count() == 0 and not streamed_requests(upstream)


@pytest.mark.parametrize(
    ("model", "status", "error"),
    [
        ("status:401", 502, openai.InternalServerError),
        ("status:503", 503, openai.InternalServerError),
        ("status:500", 503, openai.InternalServerError),
    ],
)
def test_an_upstream_failure_is_its_status_with_the_pages_message(sdk, make_persona, upstream, model, status, error):
    make_persona(model, slug="failing")
    with pytest.raises(error) as failed:
        sdk.chat.completions.create(model="failing", messages=HELLO, stream=True)
    assert failed.value.status_code == status
    stored = Message.objects.get(role="assistant", status="error")
    assert failed.value.body["message"] == stored.error_text


def test_an_upstream_timeout_is_504(sdk, provider, make_persona, upstream):
    provider.read_timeout_s = 0.3
    provider.save()
    make_persona("ttfb:2000", slug="slow")
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.chat.completions.create(model="slow", messages=HELLO)
    assert failed.value.status_code == 504
    assert failed.value.body["message"] == Message.objects.get(role="assistant", status="error").error_text


def test_an_upstream_error_after_text_ends_the_stream_with_an_error_event(sdk, make_persona, upstream):
    make_persona("long:5+error:2", slug="flaky")
    stream = sdk.chat.completions.create(model="flaky", messages=HELLO, stream=True)
    text = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            text.append(chunk.choices[0].delta.content or "")
    assert "".join(text) == "w0 w1 "
    reply = Message.objects.get(role="assistant", parent__isnull=False)
    assert reply.status == "error" and reply.content == "w0 w1 " and failed.value.message == reply.error_text
