"""Services broadcast their changes to open tabs after the transaction commits, never before or after a rollback."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import transaction

from conversations import events, services

# Read from plain synchronous code, one event loop per call (see the fixture).
pytestmark = pytest.mark.usefixtures("one_process_channel_layer")


def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def received(channel: str) -> dict:
    return async_to_sync(get_channel_layer().receive)(channel)


def nothing_waiting(channel: str) -> bool:
    """Return whether no event waits on `channel` (the in-memory layer hands over a sent one at once)."""

    async def receive_now() -> bool:
        try:
            await asyncio.wait_for(get_channel_layer().receive(channel), timeout=0.01)
        except TimeoutError:
            return True
        return False

    return async_to_sync(receive_now)()


@pytest.fixture
def chat(alice, persona):
    return services.conversation_create(owner=alice, persona=persona)


@pytest.mark.django_db
def test_rename_is_sent_only_once_committed(chat, django_capture_on_commit_callbacks):
    channel = listen(events.conversation_group(chat.public_id))
    with django_capture_on_commit_callbacks() as callbacks:
        services.conversation_rename(conversation=chat, title="Plans <b>now</b>")
    assert len(callbacks) == 1  # waiting for the commit, not sent yet
    callbacks[0]()
    event = received(channel)
    assert event["type"] == "title.changed"
    assert "Plans &lt;b&gt;now&lt;/b&gt;" in event["html"] and "<b>" not in event["html"]


@pytest.mark.django_db
def test_a_rolled_back_change_is_never_sent(chat, django_capture_on_commit_callbacks):
    channel = listen(events.conversation_group(chat.public_id))
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.conversation_rename(conversation=chat, title="Never shown")
        raise RuntimeError
    assert callbacks == []
    assert nothing_waiting(channel)


@pytest.mark.django_db
def test_delete_stops_the_reply_through_the_control_group(chat, django_capture_on_commit_callbacks):
    channel = listen(events.control_group(chat.public_id))
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_delete(conversation=chat)
    assert received(channel) == {"type": "reply.stop"}


@pytest.mark.django_db
def test_a_send_returns_the_question_and_the_empty_reply_for_every_tab(alice, chat, django_capture_on_commit_callbacks):
    # The consumer sends them before it starts the reply: the service itself never waits on the channel layer.
    channel = listen(events.conversation_group(chat.public_id))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        requested = services.reply_request(user=alice, public_id=chat.public_id, action="send", text="Hi <there>")
    assert callbacks == [] and nothing_waiting(channel)
    event = requested.changed
    assert event["type"] == "messages.changed"
    assert (
        "Hi &lt;there&gt;" in event["html"] and f'data-message-id="{requested.job.message.public_id}"' in event["html"]
    )


@pytest.mark.django_db
def test_a_refused_send_saves_and_sends_nothing(alice, chat, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(ValidationError):
        services.reply_request(user=alice, public_id=chat.public_id, action="send", text="   ")
    assert callbacks == [] and chat.messages.count() == 1  # the greeting only
