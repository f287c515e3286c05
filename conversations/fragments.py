"""The HTML fragments of a conversation page, for pages and socket events, and the DOM ids they hit.

Bubbles are rendered from stored HTML (`Message.content_html`), never from
Markdown again; what costs queries here is the versions lookup, one per
call, and for a finished reply the context budget and quota under the composer.
Socket fragments carry `hx-swap-oob`, so htmx swaps each into the node of the
same id, named by `dom.py`.
"""

from uuid import UUID

from django.db.models import prefetch_related_objects
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import SafeString

from conversations import bubbles, quotas, rendering, selectors, upstream
from conversations.dom import message_body_dom_id
from conversations.models import Conversation, Message


def with_versions(*, conversation: Conversation, messages: list[Message]) -> list[Message]:
    """Return `messages` with a `versions` attribute (selectors.Versions or None) and their attachments.

    Two queries: the versions, and the attachments of the user messages among them (none without any).
    """
    _with_attachments(messages)
    versions = selectors.message_versions(conversation=conversation, messages=messages)
    for message in messages:
        message.versions = versions.get(message.pk)
    return messages


def _with_attachments(messages: list[Message]) -> None:
    """Load the attachments of the user messages among `messages` (one query; none when there are none)."""
    prefetch_related_objects([m for m in messages if m.role == Message.Role.USER], "attachments")


def bubble_html(*, conversation: Conversation, message: Message, oob: bool = False) -> str:
    """Return one bubble; with `oob`, it replaces the bubble of the same id in the page."""
    with_versions(conversation=conversation, messages=[message])
    return bubbles.render_bubble(message, conversation, oob=oob)


def message_list_html(*, conversation: Conversation) -> str:
    """Return the shown conversation's latest page as a fragment replacing the content of `#messages`.

    The page is `selectors.MESSAGE_PAGE_SIZE` bubbles at most, under the
    sentinel that loads older ones, so the fragment's size does not grow
    with the conversation (a full resync, a version switch). Two queries.
    """
    page = selectors.message_page_for_conversation(conversation=conversation)
    return render_to_string(
        "conversations/partials/messages_replaced.html",
        {"message_page": page_with_versions(conversation=conversation, page=page), "conversation": conversation},
    )


def page_with_versions(*, conversation: Conversation, page: selectors.MessagePage) -> selectors.MessagePage:
    """Return `page` with `versions` set on each of its messages (see `with_versions`), in one query."""
    with_versions(conversation=conversation, messages=page.messages)
    return page


def message_page_html(*, conversation: Conversation, page: selectors.MessagePage) -> str:
    """Return the bubbles of `page` under the sentinel that loads the page before it (none at the start).

    The answer to a sentinel: it replaces the sentinel (`hx-swap="outerHTML"`),
    so the older bubbles land above the ones shown. One query (versions).
    """
    return render_to_string(
        "conversations/partials/message_page.html",
        {"message_page": page_with_versions(conversation=conversation, page=page), "conversation": conversation},
    )


def messages_added_html(*, conversation: Conversation, messages: list[Message]) -> SafeString:
    """Return `messages` (new, so without other versions) appended to `#messages`, with their attachments."""
    _with_attachments(messages)
    return rendering.html_format(
        '<div id="messages" hx-swap-oob="beforeend">{}</div>\n{}',
        rendering.html_join(bubbles.render_bubble(message, conversation) for message in messages),
        title_html(conversation_id=conversation.public_id, title=conversation.title),
    )


def reply_final_html(
    *, conversation: Conversation, message: Message, history: selectors.UpstreamHistory | None = None
) -> str:
    """Return a finished reply's bubble, replacing the streaming one, with the new context budget and quota.

    history: the conversation's history with this reply, when the caller has it (`upstream.context_budget`).
    """
    status = render_to_string(
        "conversations/partials/composer_status.html",
        {
            "context_budget": upstream.context_budget(conversation=conversation, history=history),
            "quota": quotas.quota_status(user=conversation.owner),
            "oob": True,
        },
    )
    return bubble_html(conversation=conversation, message=message, oob=True) + status


def title_html(*, conversation_id: UUID, title: str) -> SafeString:
    """Return the conversation's title wherever the page shows it (heading and sidebar entry), out of band.

    Built in Python, as it goes with every send's bubbles (`messages_added_html`).
    """
    return rendering.html_format(
        '<span id="conversation-{}-title" hx-swap-oob="true">{}</span>\n'
        '<span id="conversation-{}-heading-title" hx-swap-oob="true">{}</span>',
        conversation_id,
        title,
        conversation_id,
        title,
    )


def text_appended_html(message_id: UUID | str, text: str) -> str:
    """Return the fragment appending escaped `text` to a streaming bubble: O(len(text))."""
    return _body_text_html(message_id, text, swap="beforeend")


def text_replaced_html(message_id: UUID | str, text: str) -> str:
    """Return the fragment setting a streaming bubble's text to escaped `text` (a snapshot)."""
    return _body_text_html(message_id, text, swap="innerHTML")


def _body_text_html(message_id: UUID | str, text: str, *, swap: str) -> str:
    return f'<div id="{message_body_dom_id(message_id)}" hx-swap-oob="{swap}">{rendering.render_plain_text(text)}</div>'


def alert_html(text: str) -> str:
    """Return the alert under the composer showing escaped `text`; "" clears it."""
    return (
        '<div id="composer-alert" class="composer-alert" role="alert" hx-swap-oob="true">'
        f"{rendering.render_plain_text(text)}</div>"
    )


def send_outcome_html(*, accepted: bool, key: str, reason: str = "") -> str:
    """Return the alert under the composer telling this tab whether its message was taken.

    accepted: the message was saved (or had been: a resent key); the page then
        empties its composer. Refused: `reason` (escaped) shows beside the
        text, which stays to be edited.
    key: the frame's idempotency key (escaped), so the page knows which send this answers.
    """
    outcome = "accepted" if accepted else "refused"
    return (
        '<div id="composer-alert" class="composer-alert" role="alert" hx-swap-oob="true"'
        f' data-outcome="{outcome}" data-key="{escape(key)}">{rendering.render_plain_text(reason)}</div>'
    )


def messages_refetch_html(*, conversation: Conversation) -> str:
    """Return a fragment emptying `#messages` for a loader that fetches them over HTTP (the latest page).

    For an update too large for a websocket frame: the loader's GET of the
    conversation page (htmx: its partial) replaces `#messages` with the one
    in the answer. No query.
    """
    return render_to_string("conversations/partials/messages_refetch.html", {"conversation": conversation})
