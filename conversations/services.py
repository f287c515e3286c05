"""Writes of conversations and messages. Views and consumers call these, never the ORM directly."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import rendering
from conversations.models import Conversation, Message
from personas.models import Persona

TITLE_MAX_CHARS = 80


class DuplicateSend(Exception):
    """A send with an idempotency key this conversation has already seen."""


@dataclass(frozen=True)
class SentMessage:
    """The saved user message and the empty assistant message that will hold the reply."""

    user_message: Message
    assistant_message: Message


def conversation_create(*, owner: AbstractBaseUser, persona: Persona) -> Conversation:
    """Create a conversation with `persona`; its greeting becomes the first assistant message."""
    with transaction.atomic():
        conversation = Conversation.objects.create(owner=owner, persona=persona)
        if persona.greeting.strip():
            Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=persona.greeting,
                content_html=rendering.render_markdown(persona.greeting),
                status=Message.Status.COMPLETE,
            )
    return conversation


def message_text_clean(*, text: object) -> str:
    """Return the user's message ready to save.

    Raises:
        ValidationError: the message is not text, is empty or blank, or is
            longer than `settings.CHAT_MAX_MESSAGE_CHARS` characters.
    """
    if not isinstance(text, str):
        raise ValidationError(_("The message must be text."), code="invalid")
    text = text.strip()
    if not text:
        raise ValidationError(_("Type a message before sending."), code="empty")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ValidationError(
            _("The message is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(text), "limit": limit},
            code="too_long",
        )
    return text


def title_from_text(text: str) -> str:
    """Return a title from a message: its first non-blank line, cut to TITLE_MAX_CHARS."""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first_line) > TITLE_MAX_CHARS:
        first_line = first_line[: TITLE_MAX_CHARS - 1].rstrip() + "…"
    return first_line


def message_send(*, conversation: Conversation, text: str, idempotency_key: str = "") -> SentMessage:
    """Save a user message and the assistant message its reply will fill, in one transaction.

    `text` must come from `message_text_clean`. The user message follows
    the last message shown; the reply answers it. Three writes: the two
    messages and the conversation's title and activity time.

    Raises:
        DuplicateSend: `idempotency_key` was already used in this conversation.
    """
    model_id = conversation.persona.model.model_id if conversation.persona else ""
    now = timezone.now()
    try:
        with transaction.atomic():
            previous = (
                Message.objects.filter(conversation=conversation, is_current=True).order_by("-created_at", "-id").first()
            )
            user_message = Message.objects.create(
                conversation=conversation,
                parent=previous,
                role=Message.Role.USER,
                content=text,
                status=Message.Status.COMPLETE,
                idempotency_key=idempotency_key[:64],
            )
            assistant_message = Message.objects.create(
                conversation=conversation,
                parent=user_message,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                model_id=model_id,
            )
            conversation.updated_at = now
            fields = ["updated_at"]
            if not conversation.title:
                conversation.title = title_from_text(text)
                fields.append("title")
            conversation.save(update_fields=fields)
    except IntegrityError:
        if idempotency_key and Message.objects.filter(
            conversation=conversation, idempotency_key=idempotency_key[:64]
        ).exists():
            raise DuplicateSend(idempotency_key) from None
        raise
    return SentMessage(user_message=user_message, assistant_message=assistant_message)


def reply_finish(
    *,
    message: Message,
    content: str,
    status: str,
    finish_reason: str = "",
    error_text: str = "",
    model_id: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
) -> Message:
    """Store a finished reply with its rendered HTML and upstream metadata, in one write.

    `status` is one of Message.Status other than STREAMING; times in milliseconds.
    """
    message.content = content
    message.content_html = rendering.render_markdown(content) if content else ""
    message.status = status
    message.finish_reason = finish_reason
    message.error_text = error_text
    message.model_id = model_id or message.model_id
    message.prompt_tokens = prompt_tokens
    message.completion_tokens = completion_tokens
    message.ttft_ms = ttft_ms
    message.duration_ms = duration_ms
    message.save(
        update_fields=[
            "content",
            "content_html",
            "status",
            "finish_reason",
            "error_text",
            "model_id",
            "prompt_tokens",
            "completion_tokens",
            "ttft_ms",
            "duration_ms",
        ]
    )
    return message


def conversation_title_generated_set(*, public_id, title: str) -> bool:
    """Store a model-generated title unless the title came from the user; return whether it was stored."""
    updated = Conversation.objects.filter(
        public_id=public_id, title_source=Conversation.TitleSource.FIRST_MESSAGE
    ).update(title=title[:200], title_source=Conversation.TitleSource.GENERATED)
    return updated == 1
