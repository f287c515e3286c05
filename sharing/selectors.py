"""Reads of share links: the owner's link of a conversation, and a link's page for whoever holds its token."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from accounts.selectors import site_settings
from conversations.models import Conversation, Message
from personas.models import Persona
from sharing.models import SharedConversation


def share_for_conversation(*, conversation: Conversation) -> SharedConversation | None:
    """Return the live share link of `conversation` (already scoped to its owner by its selector), else None."""
    return SharedConversation.objects.filter(conversation=conversation).first()


def shared_get(*, token: str, user: User | AnonymousUser) -> SharedConversation:
    """Return the share link `token` with its conversation, persona and owner, for `user` (maybe signed out).

    The token is the capability: anyone holding it may read, signed in, or
    signed out where the admin allows it (SiteSettings.shares_visible_to_anonymous).

    Raises:
        SharedConversation.DoesNotExist: no such link (never made, or revoked).
        PermissionError: `user` is signed out and the site shows share links only to signed-in users.
    """
    if not user.is_authenticated and not site_settings().shares_visible_to_anonymous:
        raise PermissionError("sign in to open share links")  # before the lookup: a signed-out guess learns nothing
    return SharedConversation.objects.select_related("conversation__persona", "conversation__owner").get(token=token)


def shared_messages(*, share: SharedConversation) -> QuerySet[Message]:
    """Return the messages `share` shows, oldest first: those shown when it was shared, still in its conversation."""
    return Message.objects.filter(conversation_id=share.conversation_id, pk__in=share.message_ids).order_by(
        "created_at", "id"
    )


def shared_persona_shown(*, share: SharedConversation, user: User | AnonymousUser) -> Persona | None:
    """Return the persona whose name and avatar `share`'s page may show to `user`, else None.

    A site persona or a published one is public. A user's private persona is
    shown only to its owner: its name and avatar are theirs, and sharing a chat
    shares its messages, not the persona (its system prompt is never shown to anyone).
    """
    persona = share.conversation.persona
    if persona is None or persona.owner_id is None or persona.is_published:
        return persona
    return persona if user.is_authenticated and persona.owner_id == user.pk else None
