"""Data migrations of conversations: what was stored before a new field or row still counts as it did."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.models import DailyUsage
from conversations.models import Message as MessageNow
from tests.transfer.test_migrations import migrate


@pytest.mark.django_db(transaction=True)
def test_the_daily_usage_rows_are_summed_from_the_stored_replies(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    old_apps = migrate([("conversations", "0007_message_content_tokens")])
    User = old_apps.get_model("auth", "User")
    Conversation = old_apps.get_model("conversations", "Conversation")
    Message = old_apps.get_model("conversations", "Message")
    alice, bob = User.objects.create(username="alice"), User.objects.create(username="bob")

    def reply(owner, at: datetime, prompt: int | None, completion: int | None) -> None:
        conversation = Conversation.objects.create(owner=owner)
        question = Message.objects.create(conversation=conversation, role="user", content="hi")
        answer = Message.objects.create(
            conversation=conversation,
            parent=question,
            role="assistant",
            prompt_tokens=prompt,
            completion_tokens=completion,
        )
        Message.objects.filter(pk=answer.pk).update(created_at=at)

    reply(alice, datetime(2026, 11, 30, 15, 59, tzinfo=UTC), 10, 5)  # 23:59 in Shanghai: the 30th.
    reply(alice, datetime(2026, 11, 30, 16, 1, tzinfo=UTC), 7, None)  # 00:01 in Shanghai: the 1st.
    reply(alice, datetime(2026, 11, 30, 17, 0, tzinfo=UTC), 1, 2)
    reply(bob, datetime(2026, 11, 30, 17, 0, tzinfo=UTC), None, None)  # No usage: no row.

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    rows = {(row.user.username, row.day.isoformat(), row.tokens) for row in DailyUsage.objects.select_related("user")}
    assert rows == {("alice", "2026-11-30", 15), ("alice", "2026-12-01", 10)}


@pytest.mark.django_db(transaction=True)
def test_questions_and_replies_stored_before_are_asked_by_their_owner_and_group_ones_by_their_sender():
    old_apps = migrate([("conversations", "0014_conversation_temperature"), ("bots", "0001_bot_channels")])
    User = old_apps.get_model("auth", "User")
    Conversation = old_apps.get_model("conversations", "Conversation")
    Message = old_apps.get_model("conversations", "Message")
    alice, member, group = (User.objects.create(username=name) for name in ("alice", "member", "feishu-group-1"))

    def exchange(owner, text):
        conversation = Conversation.objects.create(owner=owner)
        greeting = Message.objects.create(conversation=conversation, role="assistant", content="Hello")
        question = Message.objects.create(conversation=conversation, parent=greeting, role="user", content=text)
        reply = Message.objects.create(conversation=conversation, parent=question, role="assistant", content="ok")
        return conversation, reply

    exchange(alice, "alice's own")
    group_chat, group_reply = exchange(group, "a member's, in a group")
    channel = old_apps.get_model("bots", "BotChannel").objects.create(
        name="bot",
        kind="feishu",
        persona=old_apps.get_model("personas", "Persona").objects.create(
            name="P",
            slug="p",
            model=old_apps.get_model("personas", "ChatModel").objects.create(
                provider=old_apps.get_model("personas", "Provider").objects.create(name="up", base_url="http://x"),
                model_id="m",
            ),
        ),
        app_id="cli",
    )
    old_apps.get_model("bots", "BotIdentity").objects.create(channel=channel, platform_user_id="ou_m", user=member)
    chat = old_apps.get_model("bots", "BotChat").objects.create(
        channel=channel, chat_id="oc_g", is_group=True, owner=group, conversation=group_chat
    )
    old_apps.get_model("bots", "Delivery").objects.create(
        channel=channel, event_key="ev", chat=chat, sender_id="ou_m", reply=group_reply
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    askers = {
        (m.content, m.asked_by.username if m.asked_by else None) for m in MessageNow.objects.select_related("asked_by")
    }
    assert askers == {
        ("Hello", None),  # greetings: nobody asked them
        ("alice's own", "alice"),
        ("a member's, in a group", "member"),
        ("ok", "alice"),
        ("ok", "member"),
    }
