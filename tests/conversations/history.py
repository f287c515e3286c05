"""Builders of conversation histories for the export, import and message page tests."""

from datetime import UTC, datetime, timedelta

from conversations import services
from conversations.models import Conversation, Message

START = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def make_conversation(owner, persona=None, *, title="Trip to Lisbon", archived=False, start=START) -> Conversation:
    """Create a conversation with a shown path of four messages and one hidden earlier reply.

    Path: user question, assistant reply (hidden: an earlier version of it),
    user follow-up, assistant reply stopped with an error. Times are fixed,
    a minute apart from `start`.
    """
    conversation = Conversation.objects.create(owner=owner, persona=persona, title=title, archived=archived)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=start, updated_at=start + timedelta(minutes=4))
    conversation.refresh_from_db()
    question = _message(conversation, None, "user", "What should I see in **Lisbon**?", start)
    _message(conversation, question, "assistant", "An earlier answer.", start + timedelta(minutes=1), is_current=False)
    answer = _message(
        conversation,
        question,
        "assistant",
        "See the *Alfama* and <script>alert(1)</script>.",
        start + timedelta(minutes=1, seconds=30),
        model_id="gpt-4o-mini",
        finish_reason="stop",
        prompt_tokens=12,
        completion_tokens=34,
    )
    follow_up = _message(conversation, answer, "user", "And food?\nWith kids.", start + timedelta(minutes=2))
    _message(
        conversation,
        follow_up,
        "assistant",
        "Try pastéis de nata",
        start + timedelta(minutes=3),
        status="error",
        error_text="The provider is unavailable.",
        model_id="gpt-4o-mini",
    )
    return conversation


def _message(conversation, parent, role, content, created, **fields) -> Message:
    message = Message.objects.create(conversation=conversation, parent=parent, role=role, content=content, **fields)
    Message.objects.filter(pk=message.pk).update(created_at=created)
    message.refresh_from_db()
    return message


def long_conversation(owner, persona, count: int, *, per_second: int = 3) -> tuple[Conversation, list[Message]]:
    """Return a conversation whose shown path is its greeting and then `count` alternating questions and replies.

    The path's messages are a parent chain; `per_second` of them share each
    created_at, after the greeting's. Returned oldest first, greeting included.
    """
    conversation = services.conversation_create(owner=owner, persona=persona)
    greeting = conversation.messages.get()
    rows = Message.objects.bulk_create(
        [
            Message(
                conversation=conversation,
                role="user" if i % 2 == 0 else "assistant",
                content=f"Question {i} <script>alert({i})</script>" if i % 2 == 0 else f"Reply {i}",
                content_html="" if i % 2 == 0 else f"<p>Reply {i}</p>\n",
            )
            for i in range(count)
        ]
    )
    previous = greeting
    for i, message in enumerate(rows):
        message.parent = previous
        message.created_at = greeting.created_at + timedelta(seconds=1 + i // per_second)
        previous = message
    Message.objects.bulk_update(rows, ["parent", "created_at"], batch_size=500)
    return conversation, [greeting, *rows]
