"""Writes of share links: share (or share again), revoke, and continue a shared chat in one's own account."""

import secrets
from itertools import pairwise

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from conversations import selectors as conversation_selectors
from conversations.models import Conversation, Message
from personas.selectors import persona_list_active
from sharing.models import SharedConversation
from sharing.selectors import shared_messages

# Random bytes in a share token: 256 bits, well over the 128 an unguessable link needs
# (OWASP, "Session ID entropy"); URL-safe base64 of secrets.token_bytes.
TOKEN_BYTES = 32


def share_token_new() -> str:
    """Return a new share token: TOKEN_BYTES random bytes as URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@transaction.atomic
def conversation_share(*, conversation: Conversation, show_owner: bool) -> SharedConversation:
    """Share `conversation` (already scoped to its owner) as it is now; sharing again updates the same link.

    The link shows the conversation's shown messages at this moment, except a
    reply still being written; what is added or changed later stays private
    until this is called again.
    """
    message_ids = list(
        conversation_selectors.message_list_for_conversation(conversation=conversation)
        .exclude(status=Message.Status.STREAMING)
        .values_list("pk", flat=True)
    )
    fields = {
        "message_ids": message_ids,
        "title": conversation.title,
        "show_owner": show_owner,
        "shared_at": timezone.now(),
    }
    share, created = SharedConversation.objects.select_for_update().get_or_create(
        conversation=conversation, defaults={"token": share_token_new(), **fields}
    )
    if not created:
        for name, value in fields.items():
            setattr(share, name, value)
        share.save(update_fields=list(fields))
    return share


def conversation_unshare(*, conversation: Conversation) -> bool:
    """Revoke the share link of `conversation` (already scoped to its owner); return whether there was one.

    The link answers 404 from then on; sharing again makes a new link.
    """
    deleted, _ = SharedConversation.objects.filter(conversation=conversation).delete()
    return bool(deleted)


@transaction.atomic
def shared_conversation_copy(*, share: SharedConversation, owner: User) -> Conversation:
    """Copy what `share` shows into a new conversation of `owner`, to continue it there.

    The copy keeps the persona only if `owner` may chat with it
    (`persona_list_active`: a site persona, a published one, or their own);
    otherwise (another user's private persona, or one no longer active) the
    copy has none, and its page offers the personas `owner` may choose.
    The copy is `owner`'s own: its messages are new rows (same text, stored
    HTML, times and context token counts), one linear path, and nothing links
    it back to the shared conversation or its owner. No usage is counted:
    nothing was asked of a model, so the copies carry no usage (prompt and
    completion tokens, times to first token) and keep the original times,
    so they count toward no per-minute limit either.
    """
    source = share.conversation
    usable = source.persona_id is not None and persona_list_active(user=owner).filter(pk=source.persona_id).exists()
    copy = Conversation.objects.create(
        owner=owner,
        persona_id=source.persona_id if usable else None,
        title=share.title,
        title_source=Conversation.TitleSource.USER if share.title else Conversation.TitleSource.FIRST_MESSAGE,
    )
    copied_fields = [
        "role",
        "content",
        "content_html",
        "status",
        "error_text",
        "model_id",
        "finish_reason",
        "content_tokens",
        "tokens_counter",
    ]
    originals = list(shared_messages(share=share).only("created_at", *copied_fields))
    messages = Message.objects.bulk_create(
        [
            Message(conversation=copy, is_current=True, **{name: getattr(message, name) for name in copied_fields})
            for message in originals
        ]
    )
    for message, original in zip(messages, originals, strict=True):
        message.created_at = original.created_at  # auto_now_add set "now" on create; bulk_update writes it back.
    for parent, message in pairwise(messages):
        message.parent = parent
    Message.objects.bulk_update(messages, ["parent", "created_at"])
    return copy
