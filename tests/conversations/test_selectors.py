import uuid

import pytest
from django.contrib.auth.models import AnonymousUser

from conversations import selectors, services
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def test_conversation_get_for_user_returns_the_owners_conversation(alice, conversation):
    found = selectors.conversation_get_for_user(user=alice, public_id=conversation.public_id)
    assert found == conversation and found.persona.model.provider.name == "Fake upstream"


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_conversation_get_for_user_hides_it_from_others(who, bob, conversation):
    user = bob if who == "bob" else AnonymousUser()
    with pytest.raises(Conversation.DoesNotExist):
        selectors.conversation_get_for_user(user=user, public_id=conversation.public_id)


@pytest.mark.parametrize("public_id", ["not-a-uuid", uuid.uuid4(), str(uuid.uuid4())])
def test_conversation_get_for_user_raises_for_unknown_ids(alice, public_id):
    with pytest.raises(Conversation.DoesNotExist):
        selectors.conversation_get_for_user(user=alice, public_id=public_id)


def test_conversation_list_is_the_users_own_unarchived_newest_first(alice, bob, persona):
    first = services.conversation_create(owner=alice, persona=persona)
    second = services.conversation_create(owner=alice, persona=persona)
    services.message_send(conversation=first, text="bump")  # most recent activity now
    archived = services.conversation_create(owner=alice, persona=persona)
    Conversation.objects.filter(pk=archived.pk).update(archived=True)
    services.conversation_create(owner=bob, persona=persona)
    assert list(selectors.conversation_list_for_user(user=alice)) == [first, second]
    assert len(selectors.conversation_list_for_user(user=alice, limit=1)) == 1


def test_history_for_upstream_is_greeting_plus_latest_finished_messages(conversation):
    def add(role, content, status="complete"):
        return Message.objects.create(conversation=conversation, role=role, content=content, status=status)

    add("user", "u1")
    add("assistant", "a1")
    add("user", "u2")
    add("assistant", "partial", status="error")
    add("assistant", "", status="complete")
    add("user", "u3")
    add("assistant", "stopped part", status="stopped")
    add("user", "u4")
    add("assistant", "", status="streaming")
    history = selectors.message_history_for_upstream(conversation=conversation, limit=4)
    # Error, empty and streaming replies are skipped; "u1" and "a1" fall out of the last 4.
    assert history.greeting.content == "Hello! How can I help?"
    assert [m.content for m in history.recent] == ["u2", "u3", "stopped part", "u4"]
    assert history.total == 6


def test_history_without_greeting_is_only_messages(alice, make_persona):
    conversation = services.conversation_create(owner=alice, persona=make_persona(greeting=""))
    Message.objects.create(conversation=conversation, role="user", content="only")
    history = selectors.message_history_for_upstream(conversation=conversation, limit=10)
    assert history.greeting is None and [m.content for m in history.recent] == ["only"] and history.total == 1


def test_a_history_within_the_limit_is_read_in_one_query_and_its_files_in_one_more(
    conversation, django_assert_num_queries
):
    # A send reads it on every message: the greeting comes with the latest messages, and needs no count.
    question = services.message_send(conversation=conversation, text="u1").user_message
    with django_assert_num_queries(2) as queries:
        history = selectors.message_history_for_upstream(conversation=conversation, limit=10)
    assert "attachments_attachment" in queries.captured_queries[1]["sql"]
    assert history.greeting.content == "Hello! How can I help?"
    assert history.recent == [question] and history.total == 1
    with django_assert_num_queries(0):
        assert list(history.recent[0].attachments.all()) == []  # The request reads no files.


def test_conversations_are_got_for_their_users_in_one_query(alice, bob, persona, django_assert_num_queries):
    mine = services.conversation_create(owner=alice, persona=persona)
    theirs = services.conversation_create(owner=bob, persona=persona)
    asked = [
        (alice, mine.public_id),
        (alice, theirs.public_id),  # Another user's: as if it did not exist.
        (alice, "not-a-uuid"),
        (AnonymousUser(), mine.public_id),
        (bob, str(theirs.public_id)),
        (alice, mine.public_id.hex),  # The same chat twice: each its own instance.
    ]
    with django_assert_num_queries(1):
        got = selectors.conversations_get_for_users(asked)
        assert got[0].persona.model.provider.name == "Fake upstream" and got[0].owner is alice
    assert [c.pk if c else None for c in got] == [mine.pk, None, None, None, theirs.pk, mine.pk]
    assert got[5] is not got[0]
