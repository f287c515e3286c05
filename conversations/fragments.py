"""Render message bubbles, with their version navigation (‹ 1/2 ›), for pages and socket events.

Bubbles are rendered from stored HTML (`Message.content_html`), never from
Markdown again; what costs queries here is the versions lookup, one per call.
"""

from django.template.loader import render_to_string

from conversations import selectors
from conversations.models import Conversation, Message


def with_versions(*, conversation: Conversation, messages: list[Message]) -> list[Message]:
    """Return `messages` with a `versions` attribute (selectors.Versions or None) on each, in one query."""
    versions = selectors.message_versions(conversation=conversation, messages=messages)
    for message in messages:
        message.versions = versions.get(message.pk)
    return messages


def bubble_html(*, conversation: Conversation, message: Message, oob: bool = False) -> str:
    """Return one bubble; with `oob`, it replaces the bubble of the same id in the page."""
    with_versions(conversation=conversation, messages=[message])
    return render_to_string(
        "conversations/partials/message.html", {"message": message, "conversation": conversation, "oob": oob}
    )


def message_list_html(*, conversation: Conversation) -> str:
    """Return the whole shown conversation as a fragment replacing the content of `#messages`."""
    messages = with_versions(
        conversation=conversation,
        messages=list(selectors.message_list_for_conversation(conversation=conversation)),
    )
    return render_to_string(
        "conversations/partials/messages_replaced.html", {"message_list": messages, "conversation": conversation}
    )
