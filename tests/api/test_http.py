"""/v1 through the real openai SDK (sync and async, streamed or not) on the site in daphne, the fake upstream behind."""

import httpx2
import openai
import pytest

from accounts.models import UsageLimit
from api.models import DirectModel
from conversations.models import Conversation, DailyUsage, Message
from tests.conftest import streamed_requests
from tests.fakes.openai_server import echo_reply
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_streamed_completion_relays_the_upstreams_text_finish_reason_and_usage(sdk, make_persona, upstream):
    make_persona("long:6", slug="helper")
    stream = sdk.chat.completions.create(
        model="helper",
        messages=[{"role": "user", "content": "Count for me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == 6 and usage.total_tokens > 6
    reply = Message.objects.get(role="assistant", status="complete", parent__isnull=False)
    assert reply.content == text and reply.conversation.owner.username == "alice"
    # Titled like any other: from the first message, then by the model once the reply is in.
    assert reply.conversation.title in ("Count for me", "w0 w1 w2 w3 w4 w5")


def test_a_completion_without_streaming_is_one_object_with_the_conversation_header(sdk, make_persona, upstream):
    make_persona("finish:length", slug="helper")
    raw = sdk.chat.completions.with_raw_response.create(
        model="helper", messages=[{"role": "user", "content": "Say **hi**"}]
    )
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.model == "helper"
    assert completion.choices[0].message.content == echo_reply([{"role": "user", "content": "Say **hi**"}])
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    conversation = Conversation.objects.get()
    assert raw.headers["X-Conversation-Id"] == str(conversation.public_id)


async def test_the_async_sdk_streams_and_completes(async_sdk, make_persona, upstream):
    from asgiref.sync import sync_to_async

    await sync_to_async(make_persona)("long:3", slug="helper")
    stream = await async_sdk.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    completion = await async_sdk.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "again"}]
    )
    assert text == "w0 w1 w2 " == completion.choices[0].message.content


def test_models_lists_active_personas_and_models_for_direct_use(sdk, make_persona):
    make_persona("fake-echo", slug="helper", name="Helper")
    make_persona("fake-echo", slug="retired", is_active=False)
    direct = make_persona("gpt-4o-mini", slug="mini", name="Mini").model
    DirectModel.objects.create(model=direct)
    ids = [m.id for m in sdk.models.list()]
    assert ids == ["helper", "mini", "gpt-4o-mini"]


def test_continuing_a_conversation_sends_its_history_within_the_context_budget(sdk, make_persona, upstream):
    make_persona("echo-raw", slug="echo", history_limit=3, greeting="")
    first = sdk.chat.completions.with_raw_response.create(model="echo", messages=[{"role": "user", "content": "one"}])
    conversation_id = first.headers["X-Conversation-Id"]
    sdk.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "two"}], metadata={"conversation_id": conversation_id}
    )
    third = sdk.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": "three"}],
        extra_headers={"X-Conversation-Id": conversation_id},
    )
    assert third.headers["X-Conversation-Id"] == conversation_id
    sent = [m["content"] for m in streamed_requests(upstream)[-1].body["messages"]]
    # The persona keeps 3 messages: the two latest stored ones and the new question.
    assert sent == ["Be brief.", "two", "two", "three"]
    assert Conversation.objects.count() == 1 and Message.objects.count() == 6


def test_another_users_conversation_id_is_not_found(sdk, make_persona, bob, upstream):
    persona = make_persona("long:2", slug="helper")
    from conversations import services

    theirs = services.conversation_create(owner=bob, persona=persona)
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.chat.completions.create(
            model="helper",
            messages=[{"role": "user", "content": "peek"}],
            metadata={"conversation_id": str(theirs.public_id)},
        )
    assert refused.value.body["param"] == "conversation_id"
    assert Message.objects.filter(role="user").count() == 0 and not streamed_requests(upstream)


def test_store_false_saves_nothing_but_counts_toward_the_quota(sdk, make_persona, upstream, alice):
    make_persona("long:4", slug="helper")
    raw = sdk.chat.completions.with_raw_response.create(
        model="helper", messages=[{"role": "user", "content": "off the record"}], store=False
    )
    assert raw.parse().choices[0].message.content == "w0 w1 w2 w3 "
    assert "X-Conversation-Id" not in raw.headers
    assert Conversation.objects.count() == 0 and Message.objects.count() == 0
    assert DailyUsage.objects.get(user=alice).tokens == raw.parse().usage.total_tokens


def test_a_quota_is_answered_429_with_retry_after(sdk, make_persona, alice, upstream):
    make_persona("long:2", slug="helper")
    UsageLimit.objects.create(user=alice, sends_per_minute=1)
    sdk.chat.completions.create(model="helper", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="helper", messages=[{"role": "user", "content": "two"}])
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert refused.value.body["code"] == "sends_per_minute"
    assert "in the last minute" in refused.value.body["message"]
    assert Message.objects.filter(role="user").count() == 1


def test_the_daily_token_quota_is_answered_429_until_midnight(sdk, make_persona, alice, upstream):
    make_persona("long:20", slug="helper")
    UsageLimit.objects.create(user=alice, daily_tokens=10)
    sdk.chat.completions.create(model="helper", messages=[{"role": "user", "content": "use it up"}], store=False)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="helper", messages=[{"role": "user", "content": "more"}], stream=True)
    assert refused.value.body["code"] == "daily_tokens" and int(refused.value.response.headers["Retry-After"]) >= 1


def test_a_client_gone_mid_stream_stops_the_upstream_and_keeps_the_partial_reply(
    site, alice_key, make_persona, upstream
):
    make_persona("long:1000+delay:20", slug="slow")  # 20 s of reply if nothing stops it
    body = {"model": "slow", "messages": [{"role": "user", "content": "go on"}], "stream": True}
    headers = {"Authorization": f"Bearer {alice_key}"}
    with httpx2.stream("POST", site.url("/v1/chat/completions"), json=body, headers=headers, timeout=30) as response:
        lines = response.iter_lines()
        seen = [line for line, _ in zip(lines, range(6), strict=False)]
    assert any('"content":"w0 "' in line for line in seen)
    reply = wait_until(lambda: Message.objects.filter(role="assistant", status="stopped").first(), timeout_s=20)
    # The site hung up on the upstream: the fake saw its client leave long before the reply's end.
    [hangup] = wait_until(lambda: [h for h in upstream.hangups if h.model == "long:1000+delay:20"], timeout_s=20)
    assert reply.content.startswith("w0 ") and len(reply.content.split()) <= hangup.sent < hangup.deltas // 2


def test_without_listed_origins_no_cors_headers_are_sent(site, alice_key):
    response = httpx2.get(
        site.url("/v1/models"), headers={"Origin": "https://tools.example.com", "Authorization": f"Bearer {alice_key}"}
    )
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers
