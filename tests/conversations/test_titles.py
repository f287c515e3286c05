"""Titles: the first line until the model names the chat after its first reply; a user's title stays."""

import pytest
from asgiref.sync import sync_to_async

from conversations import services, titles
from conversations.models import Conversation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Trip to Kyoto", "Trip to Kyoto"),
        ('"Trip to Kyoto."', "Trip to Kyoto"),
        ("**Title:** Kyoto with kids\nExtra line", "Kyoto with kids"),
        ("标题：京都亲子游。", "京都亲子游"),
        ("# Heading", "Heading"),
        ("  \n  ", ""),
    ],
)
def test_title_clean(answer, title):
    assert titles.title_clean(answer) == title


async def wait_for_title(conversation, source="generated", timeout=5):
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            await conversation.arefresh_from_db()
            if conversation.title_source == source:
                return conversation.title
            await asyncio.sleep(0.02)


async def test_first_reply_generates_a_title_shown_in_every_tab(alice, make_persona, open_socket, upstream):
    persona = await sync_to_async(make_persona)("long:4")
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    socket = await open_socket(alice, conversation.public_id)
    await socket.send("Plan a trip to Kyoto with kids")
    frames = await socket.receive_until('hx-swap-oob="true">w0 w1 w2 w3<')
    assert f'id="conversation-{conversation.public_id}-title"' in frames[-1]
    assert await wait_for_title(conversation) == "w0 w1 w2 w3"
    title_request = [r for r in upstream.requests if not r.body.get("stream")][-1].body
    assert title_request["max_tokens"] == titles.TITLE_MAX_TOKENS
    assert title_request["messages"][1]["content"] == "Plan a trip to Kyoto with kids"

    # Later replies leave the title alone.
    count = len(upstream.requests)
    await socket.send("And in autumn?")
    await socket.receive_final("complete")
    await conversation.arefresh_from_db()
    assert conversation.title == "w0 w1 w2 w3" and len(upstream.requests) == count + 1


async def test_failed_title_generation_keeps_the_first_line(alice, make_persona):
    persona = await sync_to_async(make_persona)("status:500")
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    await sync_to_async(services.message_send)(conversation=conversation, text="First line\nsecond")
    from personas.selectors import provider_upstream_config

    config = await sync_to_async(provider_upstream_config)(provider=persona.model.provider)
    stored = await titles.title_generate(
        config=config, conversation_id=conversation.public_id, model_id="status:500", user_text="x", reply_text="y"
    )
    await conversation.arefresh_from_db()
    assert stored == "" and (conversation.title, conversation.title_source) == ("First line", "first_message")


async def test_a_title_set_by_the_user_is_never_replaced(alice, make_persona):
    persona = await sync_to_async(make_persona)("long:2")
    conversation = await sync_to_async(services.conversation_create)(owner=alice, persona=persona)
    await Conversation.objects.filter(pk=conversation.pk).aupdate(title="Mine", title_source="user")
    from personas.selectors import provider_upstream_config

    config = await sync_to_async(provider_upstream_config)(provider=persona.model.provider)
    stored = await titles.title_generate(
        config=config, conversation_id=conversation.public_id, model_id="long:2", user_text="x", reply_text="y"
    )
    await conversation.arefresh_from_db()
    assert stored == "" and conversation.title == "Mine"


def test_storing_a_generated_title_sends_nothing_from_the_orm_thread(alice, make_persona, monkeypatch):
    """A send from the ORM thread would hold it until the event loop runs the send: the title goes from the loop."""
    from conversations import events

    conversation = services.conversation_create(owner=alice, persona=make_persona("long:2"))
    monkeypatch.setattr(events, "send_on_commit", lambda *args: pytest.fail("a send from the ORM thread"))

    stored = services.conversation_title_generated_set(public_id=conversation.public_id, title="Kyoto with kids")
    assert stored == "Kyoto with kids"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Kyoto with kids", "generated")
