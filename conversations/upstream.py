"""What a reply is asked with: the upstream request built from the saved history, and the context budget.

`reply_job_build` selects the context (`llm.context.select_context`: system
prompt, greeting, as many recent messages as fit) and pairs the request with
the provider's connection settings; `context_budget` is the same selection for
the next message, shown under the composer.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from django.utils.formats import number_format
from django.utils.translation import gettext as _

import llm
from accounts.selectors import custom_instructions_text
from attachments.models import Attachment
from attachments.selectors import attachment_data_url
from conversations import selectors
from conversations.models import Conversation, Message, UnstoredReply
from llm import context
from llm.tokens import count_tokens, counter_name, image_tokens
from llm.types import Content
from personas.crypto import DecryptionError
from personas.models import ChatModel, Persona
from personas.selectors import chat_model_list_for_persona, provider_upstream_config

# An image's part until the request is sent: its attachment's public id, replaced by the data URL
# (`reply_job_build`) only for the images the selected context keeps.
_IMAGE_REF = "attachment:"


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
    # The stored history the request was selected from, when the conversation's own persona answers
    # (its history limit): with the reply, the context of the next message (`context_budget`).
    history: selectors.UpstreamHistory | None = None


# Called with a reply's upstream request once it is known, before the reply is written, in the ORM thread
# (`services.reply_request`'s `on_request`).
RequestOpener = Callable[[llm.UpstreamConfig, llm.ChatRequest], None]


def chat_model_for(conversation: Conversation) -> ChatModel:
    """Return the model `conversation` replies with: the one the person switched to, else its persona's.

    The conversation must have a persona; `upstream_check` refuses a chosen
    model the admin no longer allows.
    """
    assert conversation.persona is not None, "a conversation without a persona gets no reply"
    return conversation.chat_model or conversation.persona.model


def _model_for(conversation: Conversation | None, persona: Persona) -> ChatModel:
    """Return the model a reply by `persona` is asked of: the chat's own choice when `persona` is the chat's."""
    if conversation is not None and persona.pk is not None and conversation.persona_id == persona.pk:
        return chat_model_for(conversation)
    return persona.model


def upstream_check(*, conversation: Conversation | None, persona: Persona | None = None) -> None:
    """Check that `conversation` (or, without one, `persona`) can get a reply now, before anything is saved.

    persona: the one to answer with instead of the conversation's own (the
        API's models for direct use: an unsaved persona on a chat model).

    Raises:
        ValidationError: the persona was deleted or deactivated (code
            "persona_unavailable"), the model the chat was switched to is no
            longer offered ("model_not_offered"), its model was disabled
            ("model_disabled"), or its provider's key cannot be decrypted
            ("provider_key"), with a message for the person chatting.
    """
    persona = persona or (conversation.persona if conversation is not None else None)
    if persona is None or not persona.is_active:
        raise ValidationError(
            _("This chat's persona is no longer available. Choose another persona to continue."),
            code="persona_unavailable",
        )
    model = _model_for(conversation, persona)
    if model.pk != persona.model_id and model not in chat_model_list_for_persona(persona=persona):
        raise ValidationError(
            _("The model this chat was switched to is no longer offered. Pick another one."), code="model_not_offered"
        )
    if not model.enabled:
        raise ValidationError(
            _("This chat's model has been disabled by an admin. Choose another persona to continue."),
            code="model_disabled",
        )
    try:
        provider_upstream_config(provider=model.provider)  # Decrypts the key.
    except DecryptionError:
        raise ValidationError(
            _("The provider's API key cannot be read with the current secret key. An admin must enter it again."),
            code="provider_key",
        ) from None


def persona_usable(*, conversation: Conversation) -> bool:
    """Return whether `conversation`'s persona can still answer: there, active, on an enabled model.

    When it cannot (an imported chat, a persona or model an admin removed), the
    page offers the active personas to continue with (`services.conversation_persona_set`).
    """
    persona = conversation.persona
    return persona is not None and persona.is_active and persona.model.enabled


def reply_history(*, conversation: Conversation, persona: Persona | None = None) -> selectors.UpstreamHistory:
    """Return the stored history a reply of `persona` (default: the conversation's own) may see, up to its limit.

    `selectors.message_history_for_upstream` with the persona's history limit; call `upstream_check` first.
    Many at once: `reply_histories`.
    """
    return reply_histories([(conversation, persona)])[0]


def reply_histories(asked: Sequence[tuple[Conversation, Persona | None]]) -> list[selectors.UpstreamHistory]:
    """Return `reply_history(conversation, persona)` for each of `asked`, read together.

    `selectors.message_histories_for_upstream`: each conversation at most once, each with a persona.
    """
    limits = []
    for conversation, persona in asked:
        answering = persona or conversation.persona
        assert answering is not None, "upstream_check refuses a conversation without a persona"
        limits.append((conversation, max(answering.history_limit, 1)))
    return selectors.message_histories_for_upstream(limits)


def reply_job_build(
    *,
    conversation: Conversation,
    message: Message | None,
    persona: Persona | None = None,
    history: selectors.UpstreamHistory | None = None,
    instructions: str | None = None,
) -> ReplyJob:
    """Assemble the upstream request for `message`, the empty reply that the send, edit or regenerate created.

    `message` None: the reply is not written yet (a send's request opened
    early, `services.reply_request`'s `on_request`); the caller sets it
    (`dataclasses.replace`) before the job runs.

    The request is what `llm.context.select_context` keeps: the persona's system
    prompt (with the owner's custom instructions), the greeting, and as many of
    the latest messages (ending with the new question, its documents and images
    included) as fit both the persona's history limit and the model's context
    window less the reply's max_tokens; with the chat's temperature (else the
    persona's), the persona's top_p and max_tokens. `persona` replaces the conversation's own (see
    `upstream_check`). `history`: the stored history with the new question,
    when the caller has it (`reply_history`, then `UpstreamHistory.with_message`);
    read otherwise; `instructions`: the owner's custom instructions, likewise (`system_prompt_for`).
    Call `upstream_check` first.

    Raises:
        ValidationError: the new question alone does not fit the context window.
    """
    own = persona is None or persona.pk == conversation.persona_id
    persona = persona or conversation.persona
    assert persona is not None, "upstream_check refuses a conversation without a persona"
    model = _model_for(conversation, persona)
    upstream = _select(
        conversation=conversation,
        persona=persona,
        model=model,
        next_message=None,
        history=history,
        instructions=instructions,
    )
    question = upstream.history.recent[-1]
    messages = [_with_image_data(m, upstream.images) for m in upstream.context.messages]
    # The question is the shown conversation's only message besides the greeting (the reply is not finished).
    wants_title = conversation.title_source == Conversation.TitleSource.FIRST_MESSAGE and upstream.history.total == 1
    return ReplyJob(
        conversation_id=conversation.public_id,
        message=message,
        title_from=question.content if wants_title else "",
        prompt_tokens_counted=upstream.context.tokens,
        config=provider_upstream_config(provider=model.provider),
        request=_request(persona, model, messages, conversation),
        history=upstream.history if own else None,
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
    persona's system prompt with the user's custom instructions, its greeting,
    then as much of the earlier messages as fits, then `question`. The earlier
    messages are the stored history of `conversation` when given (continuing
    it without saving to it, with its temperature), else `history` as (role, text) pairs. `unstored`
    is the reply's record for the quotas (`services.reply_unstored_start`).
    Call `upstream_check` first; nothing is written.

    Raises:
        ValidationError: the question alone does not fit the context window (code "context_too_large").
    """
    model = _model_for(conversation, persona)
    if conversation is not None:
        upstream = _select(conversation=conversation, persona=persona, model=model, next_message=question)
        selected = upstream.context
        messages = [_with_image_data(m, upstream.images) for m in selected.messages]
    else:
        try:
            selected = _select_context(
                persona=persona,
                model=model,
                system_prompt=system_prompt_for(persona=persona, user_id=unstored.user_id),
                greeting=persona.greeting if persona.greeting.strip() else None,
                items=[*history, (Message.Role.USER, question)],
                known=None,
            )
        except context.ContextTooLarge as exc:
            raise ValidationError(str(exc), code="context_too_large") from None
        messages = selected.messages
    return ReplyJob(
        conversation_id=uuid4(),
        message=None,
        unstored=unstored,
        prompt_tokens_counted=selected.tokens,
        config=provider_upstream_config(provider=model.provider),
        request=_request(persona, model, messages, conversation),
    )


def _request(persona: Persona, model: ChatModel, messages: list, conversation: Conversation | None) -> llm.ChatRequest:
    """Return the request asking `model` with `messages`, with `persona`'s parameters and the chat's temperature."""
    temperature = conversation.temperature if conversation is not None else None
    return llm.ChatRequest(
        model=model.model_id,
        messages=messages,
        temperature=persona.temperature if temperature is None else temperature,
        top_p=persona.top_p,
        max_tokens=persona.max_tokens or model.max_output_tokens,
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


def context_budget(
    *, conversation: Conversation, history: selectors.UpstreamHistory | None = None
) -> ContextBudget | None:
    """Return the context the next message would be sent with (shown under the composer), or None without a persona.

    history: the conversation's stored history (`selectors.message_history_for_upstream`
        with its persona's limit) when the caller has it (a finished reply's:
        `ReplyJob.history` with the reply); read otherwise.
    """
    persona = conversation.persona
    if persona is None:
        return None
    try:
        upstream = _select(
            conversation=conversation,
            persona=persona,
            model=chat_model_for(conversation),
            next_message="",
            history=history,
        )
    except ValidationError:  # The persona alone fills the window; the send will say so.
        return None
    return _budget(upstream.context, total=upstream.history.total, greeting=upstream.history.greeting is not None)


def context_budget_for_new(*, persona: Persona, user_id: int) -> ContextBudget | None:
    """Return the context a new chat's first message would be sent with: the system prompt and greeting.

    The system prompt carries user `user_id`'s custom instructions, as every reply's does.
    """
    greeting = persona.greeting if persona.greeting.strip() else None
    try:
        selected = _select_context(
            persona=persona,
            model=persona.model,
            system_prompt=system_prompt_for(persona=persona, user_id=user_id),
            greeting=greeting,
            items=[(Message.Role.USER, "")],
            known=[],
        )
    except context.ContextTooLarge:
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
    # The images the history refers to, by public id hex (see _IMAGE_REF).
    images: dict[str, Attachment] = field(default_factory=dict)


def system_prompt_for(*, persona: Persona, user_id: int, instructions: str | None = None) -> str:
    """Return the system message of a reply: the persona's system prompt, then the user's custom instructions.

    `instructions`: the user's `custom_instructions_text`, when the caller read it already; None: read here.
    """
    if instructions is None:
        instructions = custom_instructions_text(user_id=user_id)
    return "\n\n".join(part for part in (persona.system_prompt.strip(), instructions) if part)


def message_content(message: Message, *, model: ChatModel) -> Content:
    """Return what the model sees of `message`: its text, then each attached document inside delimiters.

    Documents come as `<document name="..."> ... </document>` blocks after the
    text (quotes in the name escaped). Images become image_url parts (their
    URL an `_IMAGE_REF` until `reply_job_build`) when `model` accepts
    images; otherwise a line says an image was left out. `message.attachments`
    must be prefetched; a message not written yet (a send of a batch, `services.replies_request`) has none.
    """
    has_files = message.role == Message.Role.USER and message.pk is not None
    attachments = list(message.attachments.all()) if has_files else []
    if not attachments:
        return message.content
    text = message.content
    images = []
    for attachment in attachments:
        name = attachment.name.replace('"', "'")
        if attachment.is_image and model.supports_images:
            images.append({"type": "image_url", "image_url": {"url": _IMAGE_REF + attachment.public_id.hex}})
        elif attachment.is_image:
            text += f'\n\n[An image, "{name}", was attached; this model does not read images.]'
        else:
            cut = ' cut="true"' if attachment.text_cut else ""
            text += f'\n\n<document name="{name}"{cut}>\n{attachment.text}\n</document>'
    if not images:
        return text
    return [{"type": "text", "text": text}, *images]


def _content_tokens(message: Message, content: Content, *, model: ChatModel) -> int:
    """Return what `content` (from `message_content`) costs: its text's tokens, and each image's (by its size)."""
    if isinstance(content, str):
        return count_tokens(content, model_id=model.model_id)
    sizes = {a.public_id.hex: (a.width or 0, a.height or 0) for a in message.attachments.all()}
    total = 0
    for part in content:
        if part["type"] == "text":
            total += count_tokens(part["text"], model_id=model.model_id)
        else:
            total += image_tokens(*sizes.get(part["image_url"]["url"].removeprefix(_IMAGE_REF), (0, 0)))
    return total


def _with_image_data(message: dict, images: dict[str, Attachment]) -> dict:
    """Return `message` with its image references replaced by the images' data URLs (read from storage)."""
    content = message["content"]
    if isinstance(content, str):
        return message
    parts = []
    for part in content:
        url = part.get("image_url", {}).get("url", "")
        if url.startswith(_IMAGE_REF):
            part = {
                "type": "image_url",
                "image_url": {"url": attachment_data_url(images[url.removeprefix(_IMAGE_REF)])},
            }
        parts.append(part)
    return {**message, "content": parts}


def _select(
    *,
    conversation: Conversation,
    persona: Persona,
    model: ChatModel,
    next_message: str | None,
    history: selectors.UpstreamHistory | None = None,
    instructions: str | None = None,
) -> _Upstream:
    """Select the context for the saved history, plus `next_message` when it is not saved yet.

    `persona` answers (checked to be there by the caller) with `model` (`_model_for`).
    `history`: the saved history, when the caller has it (see `context_budget`); `instructions`: the
    owner's custom instructions, likewise (`system_prompt_for`).

    Raises:
        ValidationError: the newest message alone does not fit the context window.
    """
    if history is None:
        history = reply_history(conversation=conversation, persona=persona)
    # Only a user message carries files (`message_content`). A history read for a reply comes with them, and a
    # send's question without files is known to have none: building the prefetch alone cost a send 0.2 ms.
    unloaded = [m for m in history.recent if m.role == Message.Role.USER and not selectors.message_files_loaded(m)]
    if unloaded:
        prefetch_related_objects(unloaded, "attachments")
    counter = counter_name(model.model_id)
    items: list[tuple[str, Content]] = []
    known: list[int | None] = []
    images: dict[str, Attachment] = {}
    for m in history.recent:
        content = message_content(m, model=model)
        items.append((m.role, content))
        if content is m.content:
            known.append(m.content_tokens if m.tokens_counter == counter else None)
        else:
            known.append(_content_tokens(m, content, model=model))
            images.update((a.public_id.hex, a) for a in m.attachments.all() if a.is_image)
    if next_message is not None:
        items.append((Message.Role.USER, next_message))
    try:
        selected = _select_context(
            persona=persona,
            model=model,
            system_prompt=system_prompt_for(persona=persona, user_id=conversation.owner_id, instructions=instructions),
            greeting=history.greeting.content if history.greeting else None,
            items=items,
            known=known,
        )
    except context.ContextTooLarge as exc:
        newest = history.recent[-1] if next_message is None and history.recent else None
        if newest is not None and items[-1][1] is not newest.content and exc.budget > 0:
            raise ValidationError(
                _(
                    "Your message and its files are about %(tokens)s tokens; this model's context window leaves "
                    "room for %(budget)s. The message was not sent: remove a document or attach a shorter one."
                )
                % {
                    "tokens": number_format(exc.tokens, force_grouping=True),
                    "budget": number_format(exc.budget, force_grouping=True),
                },
                code="context_too_large",
            ) from None
        raise ValidationError(str(exc), code="context_too_large") from None
    return _Upstream(history=history, context=selected, images=images)


def _select_context(
    *,
    persona: Persona,
    model: ChatModel,
    system_prompt: str,
    greeting: str | None,
    items: list[tuple[str, Content]],
    known: list[int | None] | None,
) -> context.UpstreamContext:
    """Run `llm.context.select_context` with `persona`'s limits on `model` over `items`, the last being the new one.

    Raises:
        context.ContextTooLarge: the newest item alone does not fit the context window.
    """
    return context.select_context(
        system_prompt=system_prompt,
        greeting=greeting or None,
        history=items,
        history_limit=max(persona.history_limit, 1),
        context_window=model.context_window,
        max_tokens=persona.max_tokens or model.max_output_tokens,
        model_id=model.model_id,
        content_tokens=known or (),
    )
