"""Replies stored before the daily usage rows existed still count toward the day's tokens after the migration."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.models import DailyUsage
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
