"""What a reply is asked with: the upstream request built from the saved history, and the context budget.

`reply_job_build` selects the context (`llm.context.select_context`: system
prompt, greeting, as many recent messages as fit) and pairs the request with
the provider's connection settings; `context_budget` is the same selection for
the next message, shown under the composer.
"""

from dataclasses import dataclass
from uuid import UUID

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

import llm
from conversations import selectors
from conversations.models import Conversation, Message
from llm import context
from llm.tokens import counter_name
from personas.crypto import DecryptionError
from personas.models import Persona
from personas.selectors import provider_upstream_config


@dataclass(frozen=True)
class ReplyJob:
    """Everything a generation needs, loaded before it starts (no ORM reads while streaming)."""

    conversation_id: UUID
    message: Message
    config: llm.UpstreamConfig
    request: llm.ChatRequest
    # The first user message, when a title should be generated after this reply.
    title_from: str = ""
    # The request's prompt tokens as the site counts them (llm.tokens), for an upstream that reports no usage.
    prompt_tokens_counted: int = 0


def upstream_check(*, conversation: Conversation) -> None:
    """Check that `conversation` can get a reply now, before anything is saved.

    Raises:
        ValidationError: its persona was deleted or deactivated, its model was
            disabled, or its provider's key cannot be decrypted, with a message
            for the person chatting.
    """
    persona = conversation.persona
    if persona is None or not persona.is_active:
        raise ValidationError(_("This chat's persona is no longer available. Choose another persona to continue."))
    if not persona.model.enabled:
        raise ValidationError(_("This chat's model has been disabled by an admin. Choose another persona to continue."))
    try:
        provider_upstream_config(provider=persona.model.provider)  # Decrypts the key.
    except DecryptionError:
        raise ValidationError(
            _("The provider's API key cannot be read with the current secret key. An admin must enter it again.")
        ) from None


def persona_usable(*, conversation: Conversation) -> bool:
    """Return whether `conversation`'s persona can still answer: there, active, on an enabled model.

    When it cannot (an imported chat, a persona or model an admin removed), the
    page offers the active personas to continue with (`services.conversation_persona_set`).
    """
    persona = conversation.persona
    return persona is not None and persona.is_active and persona.model.enabled


def reply_job_build(*, conversation: Conversation, message: Message) -> ReplyJob:
    """Assemble the upstream request for `message`, the empty reply that the send, edit or regenerate created.

    The request is what `llm.context.select_context` keeps: the persona's system
    prompt, the greeting, and as many of the latest messages (ending with the
    new question) as fit both the persona's history limit and the model's
    context window less the reply's max_tokens; with the persona's
    temperature, top_p and max_tokens. Call `upstream_check` first.

    Raises:
        ValidationError: the new question alone does not fit the context window.
    """
    persona = conversation.persona
    assert persona is not None, "upstream_check refuses a conversation without a persona"
    model = persona.model
    upstream = _select(conversation=conversation, persona=persona, next_message=None)
    question = upstream.history.recent[-1]
    wants_title = conversation.title_source == Conversation.TitleSource.FIRST_MESSAGE and (
        selectors.message_is_only_question(message=question)
    )
    return ReplyJob(
        conversation_id=conversation.public_id,
        message=message,
        title_from=question.content if wants_title else "",
        prompt_tokens_counted=upstream.context.tokens,
        config=provider_upstream_config(provider=model.provider),
        request=llm.ChatRequest(
            model=model.model_id,
            messages=upstream.context.messages,
            temperature=persona.temperature,
            top_p=persona.top_p,
            max_tokens=persona.max_tokens or model.max_output_tokens,
        ),
    )


@dataclass(frozen=True)
class ContextBudget:
    """What the next message would carry: `kept` of `total` earlier messages, about `tokens` of `budget`.

    The greeting, always sent, counts among them (`greeting`: there is one).
    """

    kept: int
    total: int
    tokens: int
    budget: int | None
    exact: bool
    greeting: bool = False


def context_budget(*, conversation: Conversation) -> ContextBudget | None:
    """Return the context the next message would be sent with (shown under the composer), or None without a persona."""
    persona = conversation.persona
    if persona is None:
        return None
    try:
        upstream = _select(conversation=conversation, persona=persona, next_message="")
    except ValidationError:  # The persona alone fills the window; the send will say so.
        return None
    return _budget(upstream.context, total=upstream.history.total, greeting=upstream.history.greeting is not None)


def context_budget_for_new(*, persona: Persona) -> ContextBudget | None:
    """Return the context a new chat's first message would be sent with: the system prompt and greeting."""
    greeting = persona.greeting if persona.greeting.strip() else None
    try:
        selected = _select_context(persona=persona, greeting=greeting, items=[(Message.Role.USER, "")], known=[])
    except ValidationError:
        return None
    return _budget(selected, total=0, greeting=greeting is not None)


def _budget(selected: context.UpstreamContext, *, total: int, greeting: bool) -> ContextBudget:
    return ContextBudget(
        kept=selected.kept_count - 1 + greeting,
        total=total + greeting,
        tokens=selected.tokens,
        budget=selected.budget,
        exact=selected.exact,
        greeting=greeting,
    )


@dataclass(frozen=True)
class _Upstream:
    history: selectors.UpstreamHistory
    context: context.UpstreamContext


def _select(*, conversation: Conversation, persona: Persona, next_message: str | None) -> _Upstream:
    """Select the context for the saved history, plus `next_message` when it is not saved yet.

    `persona` is the conversation's, checked to be there by the caller.

    Raises:
        ValidationError: the newest message alone does not fit the context window.
    """
    limit = max(persona.history_limit, 1)
    history = selectors.message_history_for_upstream(conversation=conversation, limit=limit)
    items = [(m.role, m.content) for m in history.recent]
    counter = counter_name(persona.model.model_id)
    known = [m.content_tokens if m.tokens_counter == counter else None for m in history.recent]
    if next_message is not None:
        items.append((Message.Role.USER, next_message))
    greeting = history.greeting.content if history.greeting else None
    selected = _select_context(persona=persona, greeting=greeting, items=items, known=known)
    return _Upstream(history=history, context=selected)


def _select_context(
    *, persona: Persona, greeting: str | None, items: list[tuple[str, str]], known: list[int | None]
) -> context.UpstreamContext:
    """Run `llm.context.select_context` with `persona`'s prompt, limits and model.

    Raises:
        ValidationError: the newest message alone does not fit the context window.
    """
    model = persona.model
    try:
        return context.select_context(
            system_prompt=persona.system_prompt,
            greeting=greeting,
            history=items,
            history_limit=max(persona.history_limit, 1),
            context_window=model.context_window,
            max_tokens=persona.max_tokens or model.max_output_tokens,
            model_id=model.model_id,
            content_tokens=known,
        )
    except context.ContextTooLarge as exc:
        raise ValidationError(str(exc), code="context_too_large") from None
