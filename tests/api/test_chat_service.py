"""api.chat.chat_completion, the service under every face of the API: events, storage, refusals, stopping."""

import pytest
from asgiref.sync import sync_to_async

import llm
from accounts.models import UsageLimit
from api.chat import ChatDelta, ChatFailed, ChatFinished, ChatMessage, ChatParams, ChatStarted, chat_completion
from api.errors import ApiError, ApiErrorKind
from api.models import DirectModel
from conversations.models import Conversation, DailyUsage, Message, UnstoredReply
from tests.conftest import streamed_requests
from tests.waiting import async_wait_until

pytestmark = pytest.mark.django_db(transaction=True)


async def collect(**kwargs) -> list:
    return [event async for event in chat_completion(**kwargs)]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, ChatDelta))


async def test_a_stored_completion_streams_the_upstream_text_and_saves_a_titled_conversation(
    alice, make_persona, upstream
):
    persona = await sync_to_async(make_persona)("long:5", slug="helper")
    events = await collect(user=alice, model="helper", messages=[ChatMessage("user", "Hello there")])
    started, finished = events[0], events[-1]
    assert isinstance(started, ChatStarted) and started.model == "helper" and started.conversation_id is not None
    assert text_of(events) == "w0 w1 w2 w3 w4 "
    assert isinstance(finished, ChatFinished) and finished.finish_reason == "stop" and finished.completion_tokens
    conversation = await Conversation.objects.aget(public_id=started.conversation_id)
    assert conversation.owner_id == alice.pk and conversation.persona_id == persona.pk
    assert conversation.title == "Hello there"
    reply = await Message.objects.filter(conversation=conversation, role="assistant").alast()
    assert reply.content == "w0 w1 w2 w3 w4 " and reply.status == "complete"
    sent = streamed_requests(upstream)[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_the_upstream_of_an_api_reply_is_read_as_it_comes(alice, make_persona, upstream, monkeypatch):
    # The caller gets each upstream delta as it comes, not once a window as a page does.
    paces: list = []
    stream_chat = llm.stream_chat

    def recording(config, request, **kwargs):
        paces.append(kwargs.get("pace_s"))
        return stream_chat(config, request, **kwargs)

    monkeypatch.setattr(llm, "stream_chat", recording)
    await sync_to_async(make_persona)("long:5", slug="helper")
    events = await collect(user=alice, model="helper", messages=[ChatMessage("user", "Hello there")])

    assert text_of(events) == "w0 w1 w2 w3 w4 " and paces == [None]


async def test_store_false_writes_no_conversation_but_counts_the_tokens(alice, make_persona, upstream):
    await sync_to_async(make_persona)("long:5", slug="helper")
    events = await collect(user=alice, model="helper", messages=[ChatMessage("user", "Hi")], store=False)
    assert events[0].conversation_id is None and text_of(events) == "w0 w1 w2 w3 w4 "
    assert await Conversation.objects.acount() == 0 and await Message.objects.acount() == 0
    usage = await DailyUsage.objects.aget(user=alice)
    assert usage.tokens == events[-1].prompt_tokens + events[-1].completion_tokens


async def test_continuing_uses_the_stored_history_and_ignores_resent_messages(alice, make_persona, upstream):
    await sync_to_async(make_persona)("echo-raw", slug="echo")
    first = await collect(user=alice, model="echo", messages=[ChatMessage("user", "first question")])
    conversation_id = first[0].conversation_id
    second = await collect(
        user=alice,
        model="echo",
        messages=[ChatMessage("user", "ignored"), ChatMessage("user", "second question")],
        conversation_id=conversation_id,
    )
    assert second[0].conversation_id == conversation_id and text_of(second) == "second question"
    sent = [m["content"] for m in streamed_requests(upstream)[1].body["messages"]]
    assert sent == ["Be brief.", "Hello! How can I help?", "first question", "first question", "second question"]


async def test_another_users_conversation_is_not_found(alice, bob, make_persona, upstream):
    await sync_to_async(make_persona)("long:2", slug="helper")
    first = await collect(user=alice, model="helper", messages=[ChatMessage("user", "mine")])
    with pytest.raises(ApiError) as refused:
        await collect(
            user=bob, model="helper", messages=[ChatMessage("user", "yours?")], conversation_id=first[0].conversation_id
        )
    assert refused.value.kind == ApiErrorKind.NOT_FOUND and refused.value.param == "conversation_id"
    assert await Message.objects.filter(conversation__owner=bob).acount() == 0


async def test_an_unknown_model_is_not_found(alice, persona):
    with pytest.raises(ApiError) as refused:
        await collect(user=alice, model="nobody", messages=[ChatMessage("user", "hi")])
    assert refused.value.status == 404 and refused.value.code == "model_not_found"


async def test_a_quota_refuses_with_its_wait_and_saves_nothing(alice, make_persona, upstream):
    await sync_to_async(make_persona)("long:2", slug="helper")
    await UsageLimit.objects.acreate(user=alice, sends_per_minute=1)
    await collect(user=alice, model="helper", messages=[ChatMessage("user", "one")])
    before = await Message.objects.acount()
    with pytest.raises(ApiError) as refused:
        await collect(user=alice, model="helper", messages=[ChatMessage("user", "two")])
    assert refused.value.status == 429 and refused.value.retry_after_s and refused.value.code == "sends_per_minute"
    assert await Message.objects.acount() == before


async def test_an_upstream_failure_ends_with_the_pages_message(alice, make_persona, upstream):
    await sync_to_async(make_persona)("status:503", slug="down")
    events = await collect(user=alice, model="down", messages=[ChatMessage("user", "hi")])
    assert isinstance(events[-1], ChatFailed) and events[-1].error.status == 503
    reply = await Message.objects.filter(role="assistant", status="error").alast()
    assert reply.error_text == events[-1].error.message


async def test_closing_the_stream_stops_the_upstream_and_keeps_the_partial_reply(alice, make_persona, upstream):
    await sync_to_async(make_persona)("long:500+delay:20", slug="slow")
    stream = chat_completion(user=alice, model="slow", messages=[ChatMessage("user", "go")])
    started = await anext(stream)
    first = await anext(stream)
    assert isinstance(first, ChatDelta)
    await stream.aclose()
    reply = await async_wait_until(
        lambda: Message.objects.filter(conversation__public_id=started.conversation_id, status="stopped").afirst()
    )
    assert reply.content.startswith("w0 ") and len(reply.content.split()) < 500


async def test_a_model_for_direct_use_gets_the_callers_messages_only(alice, provider, make_persona, upstream):
    persona = await sync_to_async(make_persona)("echo-raw", slug="echo")
    await DirectModel.objects.acreate(model_id=persona.model_id)
    events = await collect(
        user=alice,
        model="echo-raw",
        messages=[ChatMessage("system", "Be terse."), ChatMessage("user", "direct")],
        params=ChatParams(temperature=0.5),
    )
    assert text_of(events) == "direct"
    body = streamed_requests(upstream)[0].body
    assert body["messages"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "direct"}]
    assert body["temperature"] == 0.5
    conversation = await Conversation.objects.aget(public_id=events[0].conversation_id)
    assert conversation.persona_id is None


async def test_replies_not_stored_count_toward_the_replies_at_once_and_per_minute(alice, make_persona, upstream):
    await sync_to_async(make_persona)("long:300+delay:20", slug="slow")
    await UsageLimit.objects.acreate(user=alice, concurrent_replies=1, sends_per_minute=2)
    stream = chat_completion(user=alice, model="slow", messages=[ChatMessage("user", "one")], store=False)
    await anext(stream)
    with pytest.raises(ApiError) as refused:
        await collect(user=alice, model="slow", messages=[ChatMessage("user", "two")])
    assert refused.value.code == "concurrent_replies" and refused.value.retry_after_s == 1
    await stream.aclose()
    await async_wait_until(lambda: UnstoredReply.objects.filter(finished=True).aexists())
    await sync_to_async(make_persona)("long:1", slug="quick")
    await collect(user=alice, model="quick", messages=[ChatMessage("user", "three")], store=False)
    with pytest.raises(ApiError) as refused:
        await collect(user=alice, model="quick", messages=[ChatMessage("user", "four")])
    assert refused.value.code == "sends_per_minute" and refused.value.retry_after_s >= 1
    assert await Conversation.objects.acount() == 0


async def test_a_new_conversation_keeps_the_callers_earlier_messages_in_order(alice, make_persona, upstream):
    await sync_to_async(make_persona)("echo-raw", slug="echo", greeting="")
    events = await collect(
        user=alice,
        model="echo",
        messages=[
            ChatMessage("developer", "Answer in French."),
            ChatMessage("user", "first"),
            ChatMessage("assistant", "premier"),
            ChatMessage("user", "second"),
        ],
    )
    stored = [
        (m.role, m.content, bool(m.content_html))
        async for m in Message.objects.filter(conversation__public_id=events[0].conversation_id)
    ]
    assert stored == [
        ("system", "Answer in French.", True),
        ("user", "first", True),
        ("assistant", "premier", True),
        ("user", "second", True),
        ("assistant", "second", True),
    ]
    sent = streamed_requests(upstream)[0].body["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user", "assistant", "user"]


async def test_a_provider_key_the_site_cannot_read_is_503_with_the_pages_message(alice, provider, make_persona):
    await sync_to_async(make_persona)("long:2", slug="helper")
    provider.api_key_encrypted = "not-a-fernet-token"
    await provider.asave()
    with pytest.raises(ApiError) as refused:
        await collect(user=alice, model="helper", messages=[ChatMessage("user", "hi")])
    assert refused.value.status == 503 and "cannot be read" in refused.value.message
    assert await Message.objects.filter(role="user").acount() == 0
