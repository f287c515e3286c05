"""What a reply is asked with: the upstream request built from the saved history, and the context budget.

`reply_job_build` selects the context (`llm.context.select_context`: system
prompt, greeting, as many recent messages as fit) and pairs the request with
the provider's connection settings; `context_budget` is the same selection for
the next message, shown under the composer.
"""

from dataclasses import dataclass
from uuid import UUID, uuid4

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

import llm
from conversations import selectors
from conversations.models import Conversation, Message, UnstoredReply
from llm import context
from llm.tokens import counter_name
from personas.crypto import DecryptionError
from personas.models import Persona
from personas.selectors import provider_upstream_config


@dataclass(frozen=True)
class ReplyJob:
    """Everything a generation needs, loaded before it starts (no ORM reads while streaming)."""

    conversation_id: UUID
    # The empty reply the generation fills; None for a reply that is not stored (`reply_job_build_unstored`).
    message: Message | None
    config: llm.UpstreamConfig
    request: llm.ChatRequest
    # The first user message, when a title should be generated after this reply.
    title_from: str = ""
    # The request's prompt tokens as the site counts them (llm.tokens), for an upstream that reports no usage.
    prompt_tokens_counted: int = 0
    # The quota's record of a reply that is not stored (`message` None): services.reply_unstored_start.
    unstored: UnstoredReply | None = None


def upstream_check(*, conversation: Conversation | None, persona: Persona | None = None) -> None:
    """Check that `conversation` (or, without one, `persona`) can get a reply now, before anything is saved.

    persona: the one to answer with instead of the conversation's own (the
        API's models for direct use: an unsaved persona on a chat model).

    Raises:
        ValidationError: the persona was deleted or deactivated (code
            "persona_unavailable"), its model was disabled ("model_disabled"),
            or its provider's key cannot be decrypted ("provider_key"), with a
            message for the person chatting.
    """
    persona = persona or (conversation.persona if conversation is not None else None)
    if persona is None or not persona.is_active:
        raise ValidationError(
            _("This chat's persona is no longer available. Start a new chat."), code="persona_unavailable"
        )
    if not persona.model.enabled:
        raise ValidationError(
            _("This chat's model has been disabled by an admin. Start a new chat."), code="model_disabled"
        )
    try:
        provider_upstream_config(provider=persona.model.provider)  # Decrypts the key.
    except DecryptionError:
        raise ValidationError(
            _("The provider's API key cannot be read with the current secret key. An admin must enter it again."),
            code="provider_key",
        ) from None


def reply_job_build(*, conversation: Conversation, message: Message, persona: Persona | None = None) -> ReplyJob:
    """Assemble the upstream request for `message`, the empty reply that the send, edit or regenerate created.

    The request is what `llm.context.select_context` keeps: the persona's system
    prompt, the greeting, and as many of the latest messages (ending with the
    new question) as fit both the persona's history limit and the model's
    context window less the reply's max_tokens; with the persona's
    temperature, top_p and max_tokens. `persona` replaces the conversation's
    own (see `upstream_check`). Call `upstream_check` first.

    Raises:
        ValidationError: the new question alone does not fit the context window.
    """
    persona = persona or conversation.persona
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
        request=_request(persona, upstream.context),
    )


def reply_job_build_unstored(
    *,
    unstored: UnstoredReply,
    persona: Persona,
    conversation: Conversation | None,
    history: list[tuple[str, str]],
    question: str,
) -> ReplyJob:
    """Assemble the upstream request for a reply that is not stored (the API's `store: false`).

    The context is selected as for a stored reply (`reply_job_build`): the
    persona's system prompt, its greeting, then as much of the earlier
    messages as fits, then `question`. The earlier messages are the stored
    history of `conversation` when given (continuing it without saving to
    it), else `history` as (role, text) pairs. `unstored` is the reply's
    record for the quotas (`services.reply_unstored_start`). Call
    `upstream_check` first; nothing is written.

    Raises:
        ValidationError: the question alone does not fit the context window (code "context_too_large").
    """
    if conversation is not None:
        upstream = _select(conversation=conversation, persona=persona, next_message=question)
        selected = upstream.context
    else:
        selected = _select_context(
            persona=persona,
            greeting=persona.greeting if persona.greeting.strip() else None,
            items=[*history, (Message.Role.USER, question)],
            known=None,
        )
    return ReplyJob(
        conversation_id=uuid4(),
        message=None,
        unstored=unstored,
        prompt_tokens_counted=selected.tokens,
        config=provider_upstream_config(provider=persona.model.provider),
        request=_request(persona, selected),
    )


def _request(persona: Persona, selected: context.UpstreamContext) -> llm.ChatRequest:
    """Return the request asking `persona`'s model with `selected`, with the persona's parameters."""
    model = persona.model
    return llm.ChatRequest(
        model=model.model_id,
        messages=selected.messages,
        temperature=persona.temperature,
        top_p=persona.top_p,
        max_tokens=persona.max_tokens or model.max_output_tokens,
    )


@dataclass(frozen=True)
class ContextBudget:
    """What the next message would carry: `kept` of `total` earlier messages, about `tokens` of `budget`."""

    kept: int
    total: int
    tokens: int
    budget: int | None
    exact: bool


def context_budget(*, conversation: Conversation) -> ContextBudget | None:
    """Return the context the next message would be sent with (shown under the composer), or None without a persona."""
    persona = conversation.persona
    if persona is None:
        return None
    try:
        upstream = _select(conversation=conversation, persona=persona, next_message="")
    except ValidationError:  # The persona alone fills the window; the send will say so.
        return None
    return ContextBudget(
        kept=upstream.context.kept_count - 1,
        total=upstream.history.total,
        tokens=upstream.context.tokens,
        budget=upstream.context.budget,
        exact=upstream.context.exact,
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
    model = persona.model
    limit = max(persona.history_limit, 1)
    history = selectors.message_history_for_upstream(conversation=conversation, limit=limit)
    items = [(m.role, m.content) for m in history.recent]
    counter = counter_name(model.model_id)
    known = [m.content_tokens if m.tokens_counter == counter else None for m in history.recent]
    if next_message is not None:
        items.append((Message.Role.USER, next_message))
    selected = _select_context(
        persona=persona, greeting=history.greeting.content if history.greeting else None, items=items, known=known
    )
    return _Upstream(history=history, context=selected)


def _select_context(
    *, persona: Persona, greeting: str | None, items: list[tuple[str, str]], known: list[int | None] | None
) -> context.UpstreamContext:
    """Run `llm.context.select_context` with `persona`'s prompt and limits over `items`, the last being the new one.

    Raises:
        ValidationError: the newest item alone does not fit the context window.
    """
    model = persona.model
    try:
        return context.select_context(
            system_prompt=persona.system_prompt,
            greeting=greeting or None,
            history=items,
            history_limit=max(persona.history_limit, 1),
            context_window=model.context_window,
            max_tokens=persona.max_tokens or model.max_output_tokens,
            model_id=model.model_id,
            content_tokens=known or (),
        )
    except context.ContextTooLarge as exc:
        raise ValidationError(str(exc), code="context_too_large") from None
