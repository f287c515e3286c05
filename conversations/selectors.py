"""Reads of conversations and messages, each scoped to the user who asks."""

from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from conversations.models import Conversation, Message

SIDEBAR_PAGE_SIZE = 50


def conversation_list_for_user(*, user: AbstractBaseUser, limit: int = SIDEBAR_PAGE_SIZE) -> QuerySet[Conversation]:
    """Return `user`'s unarchived conversations, newest activity first, at most `limit`."""
    return (
        Conversation.objects.filter(owner=user, archived=False)
        .only("public_id", "title", "updated_at")
        .order_by("-updated_at", "-id")[:limit]
    )


def conversation_get_for_user(*, user: AbstractBaseUser, public_id: UUID | str) -> Conversation:
    """Return the conversation `public_id` if `user` owns it, with its persona, model and provider.

    Raises:
        Conversation.DoesNotExist: no such conversation, or another user's (callers answer 404).
    """
    if not getattr(user, "is_authenticated", False):
        raise Conversation.DoesNotExist
    try:
        return Conversation.objects.select_related("persona__model__provider").get(
            owner=user, public_id=public_id
        )
    except (ValueError, TypeError, ValidationError):  # Not a UUID.
        raise Conversation.DoesNotExist from None


def message_list_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    """Return the shown messages of `conversation` (already scoped by its selector), oldest first.

    Earlier versions of regenerated or edited messages are left out.
    """
    return Message.objects.filter(conversation=conversation, is_current=True).order_by("created_at", "id")


def message_streaming_ids(*, conversation: Conversation) -> list[UUID]:
    """Return the public ids of `conversation`'s replies still streaming."""
    return list(
        Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).values_list(
            "public_id", flat=True
        )
    )


def message_history_for_upstream(*, conversation: Conversation, limit: int) -> list[Message]:
    """Return what a new reply sees: the greeting, then the latest `limit` finished messages, oldest first.

    The greeting is the conversation's first message when it is an assistant
    message (`conversation_create` writes it). Failed, empty and streaming
    replies are left out, so an error bubble never becomes model input.
    """
    messages = message_list_for_conversation(conversation=conversation)
    first = messages.first()
    greeting = [first] if first is not None and first.role == Message.Role.ASSISTANT else []
    recent = (
        messages.filter(status__in=[Message.Status.COMPLETE, Message.Status.STOPPED])
        .exclude(content="")
        .exclude(pk__in=[m.pk for m in greeting])
        .order_by("-created_at", "-id")[:limit]
    )
    return greeting + list(reversed(recent))



def message_is_only_question(*, message: Message) -> bool:
    """Return whether `message` is the only user message of its conversation, counting earlier versions."""
    return not Message.objects.filter(conversation_id=message.conversation_id, role=Message.Role.USER).exclude(
        pk=message.pk
    ).exists()
