"""One chat completion for an API caller, over the site's own chat machinery; every face of the API sits on it.

`chat_completion` is the only place the API asks for a reply: the HTTP view
(`api.views`) and gRPC turn its events into their wire formats. It saves and
generates through the same services as the chat page (`conversations.services
.reply_request`, `conversations.generation.start_reply`), so quotas, rate
limits, the per-user concurrency limit, the context budget, the provider
client's retries, timeouts and error kinds, checkpoints and the stored reply
are the page's.
"""

import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

import llm
from api import selectors
from api.errors import ApiError, ApiErrorKind
from conversations import events, generation, quotas, services, upstream
from conversations import selectors as conversation_selectors
from conversations.models import Conversation, Message
from personas.models import ChatModel, Persona
from personas.selectors import persona_list_active

# The roles a caller's message may have (OpenAI API reference, Chat Completions, "messages"), as the site
# stores them: "developer" is the newer name of "system". Tool and function messages are refused.
ROLES = {
    "system": Message.Role.SYSTEM,
    "developer": Message.Role.SYSTEM,
    "user": Message.Role.USER,
    "assistant": Message.Role.ASSISTANT,
}
UNSUPPORTED_ROLES = ("tool", "function")

# How many of a caller's messages a model for direct use looks back on (a persona has its own history limit).
DIRECT_HISTORY_LIMIT = 100


@dataclass(frozen=True)
class ChatMessage:
    """One message of the caller's: `role` as the caller sent it ("system", "developer", "user", "assistant"), text."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatParams:
    """The caller's sampling parameters; None leaves the persona's (else the provider's default).

    temperature: 0-2. top_p: 0-1. max_tokens: the reply's limit in tokens,
    at most the persona's or model's own limit when it has one.
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ChatStarted:
    """The first event: the request was accepted and the reply is being asked for.

    conversation_id: the conversation the reply is saved in (store) or
        continues (store false with an id given); None when nothing is saved.
    model: the id the caller named (persona slug or model id).
    completion_id: "chatcmpl-" and 24 hex digits, this completion's id.
    created: when it started, Unix time in whole seconds.
    """

    conversation_id: UUID | None
    model: str
    completion_id: str
    created: int


@dataclass(frozen=True)
class ChatDelta:
    """A piece of the reply's text, relayed as the upstream sent it (not coalesced)."""

    text: str


@dataclass(frozen=True)
class ChatFinished:
    """The last event of a reply that ended well.

    finish_reason: the upstream's ("stop", "length", "content_filter"), or
        "stop" for a reply stopped on the site (a Stop on the page).
    stopped: the reply was stopped on the site before the upstream finished.
    prompt_tokens, completion_tokens: the upstream's usage, else the site's
        estimate (`llm.tokens`); None when nothing was asked.
    """

    finish_reason: str
    stopped: bool
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class ChatFailed:
    """The last event of a reply the upstream failed: the page's message for it, as an `ApiError` (502/503/504, 400).

    Text already relayed stays relayed, and stored with the error as the page stores it.
    """

    error: ApiError


ChatEvent = ChatStarted | ChatDelta | ChatFinished | ChatFailed


async def chat_completion(
    *,
    user: User,
    model: str,
    messages: Sequence[ChatMessage],
    params: ChatParams = ChatParams(),
    store: bool = True,
    conversation_id: str | UUID | None = None,
) -> AsyncIterator[ChatEvent]:
    """Ask for one reply for `user`; yield `ChatStarted`, the `ChatDelta`s, then `ChatFinished` or `ChatFailed`.

    user: the caller, already authenticated (`api.auth.key_authenticate`).
    model: an active persona's slug (its system prompt, greeting, model and
        parameters apply; the caller's messages follow the greeting) or the
        model id of a chat model the admin allows for direct use
        (`api.models.DirectModel`; no system prompt or greeting of the site's).
    messages: the caller's, oldest first; the last one is the question and
        must be the user's. Earlier ones are the history the caller brings
        (a new conversation); with `conversation_id` they are ignored, the
        stored history is used.
    params: the caller's sampling parameters (`ChatParams`).
    store: save the question and reply in the caller's history (a new
        conversation, titled like any other, or the one continued); when
        false nothing is written but the reply's tokens, which still count
        toward the daily quota.
    conversation_id: a conversation of the user's to continue: its stored
        history is sent within the site's context budget
        (`llm.context.select_context`), so the caller need not resend it.

    Refusals raise before anything is saved (on the first `__anext__`).
    Once started, the reply runs as the page's does (`generation.start_reply`,
    with its retries, timeouts, checkpoints and final write); the deltas are
    relayed as they arrive. Closing the iterator before its last event (the
    client went away; `aclose()` or cancelling the task reading it) stops the
    reply like the page's Stop: the upstream response is closed and the text
    so far is stored.

    Raises:
        ApiError: NOT_FOUND (unknown model, param "model"; unknown or another
            user's conversation, param "conversation_id"); INVALID_REQUEST
            (messages missing, of an unknown role, not ending with the user's,
            or too long; a model not matching the conversation's persona;
            the persona or model unavailable), naming the param;
            CONTEXT_TOO_LONG; RATE_LIMITED (the site's quotas and rate limits,
            with `retry_after_s`).
    """
    prepared = await database_sync_to_async(_prepare)(
        user=user, model=model, messages=messages, params=params, store=store, conversation_id=conversation_id
    )
    listener: generation.ReplyListener = generation.ReplyListener()
    language = translation.get_language()
    reply: generation.ReplyGenerator | None = None
    ended = False
    try:
        if prepared.changed is not None:  # The new bubbles first, to tabs open on the conversation (as the page does).
            await events.channel_layer().group_send(
                events.conversation_group(prepared.job.conversation_id), events.layer_message(prepared.changed)
            )
        reply = _start_reply(prepared.job, listener, language)
        yield ChatStarted(
            conversation_id=prepared.conversation_id,
            model=model,
            completion_id="chatcmpl-" + secrets.token_hex(12),
            created=int(time.time()),
        )
        while True:
            item = await listener.get()
            if isinstance(item, llm.Delta):
                yield ChatDelta(text=item.text)
                continue
            ended = True
            if item.error is not None:
                yield ChatFailed(error=ApiError.from_upstream(item.error))
            else:
                yield ChatFinished(
                    finish_reason=item.finish_reason or "stop",
                    stopped=item.status == Message.Status.STOPPED,
                    prompt_tokens=item.prompt_tokens,
                    completion_tokens=item.completion_tokens,
                )
            return
    finally:
        if not ended:
            # Gone before the end: stop the reply (one cancelled before it started still ends, stored as stopped).
            (reply or _start_reply(prepared.job, listener, language)).stop()


def _start_reply(
    job: upstream.ReplyJob, listener: generation.ReplyListener, language: str | None
) -> generation.ReplyGenerator:
    """Start generating `job` with the caller's `language` (`generation.start_reply` gives it a context of its own)."""
    with translation.override(language):
        return generation.start_reply(job, listener=listener)


@dataclass(frozen=True)
class _Prepared:
    job: upstream.ReplyJob
    conversation_id: UUID | None
    changed: events.MessagesChanged | None


def _prepare(
    *,
    user: User,
    model: str,
    messages: Sequence[ChatMessage],
    params: ChatParams,
    store: bool,
    conversation_id: str | UUID | None,
) -> _Prepared:
    """Check the request, save what `store` saves, and return the reply's job. Runs the ORM; call it off the loop."""
    persona, direct = _persona_for(model, user=user)
    history, question = _split(messages)
    conversation = None
    if conversation_id is not None:
        conversation = _conversation(user=user, public_id=conversation_id, persona=persona, direct=direct)
    try:
        with transaction.atomic():
            if store:
                if conversation is None:
                    conversation = services.conversation_create(owner=user, persona=None if direct else persona)
                    services.messages_append(conversation=conversation, turns=history)
                requested = services.reply_request(
                    user=user, public_id=conversation.public_id, action="send", text=question, persona=persona
                )
                job, changed = requested.job, requested.changed
            else:
                upstream.upstream_check(conversation=None, persona=persona)
                quotas.quota_check(user=user, lock=True)
                job = upstream.reply_job_build_unstored(
                    unstored=services.reply_unstored_start(user=user),
                    persona=persona,
                    conversation=conversation,
                    history=history,
                    question=question,
                )
                changed = None
    except Conversation.DoesNotExist:  # Deleted meanwhile.
        raise _conversation_not_found() from None
    except ValidationError as exc:
        raise ApiError.from_validation(exc, param="model" if exc.code in _MODEL_CODES else "messages") from None
    return _Prepared(
        job=replace(job, request=_with_params(job.request, params)),
        conversation_id=conversation.public_id if conversation is not None else None,
        changed=changed,
    )


_MODEL_CODES = ("persona_unavailable", "model_disabled", "provider_key")


def _persona_for(model: str, *, user: User) -> tuple[Persona, bool]:
    """Return the persona answering as `model`, and whether it is a model for direct use (an unsaved persona).

    Only the personas `user` may chat with count (`persona_list_active`): the
    site's, their own and the published ones.

    Raises:
        ApiError: NOT_FOUND, no such persona for `user` and no model for direct use with that id.
    """
    persona = persona_list_active(user=user).filter(slug=model).select_related("model__provider").first()
    if persona is not None:
        return persona, False
    chat_model = selectors.direct_model_list().filter(model_id=model).first()
    if chat_model is not None:
        return _direct_persona(chat_model), True
    raise ApiError(
        ApiErrorKind.NOT_FOUND,
        _("There is no model “%(model)s”. GET /v1/models lists the ones you may use.") % {"model": model},
        param="model",
        code="model_not_found",
    )


def _direct_persona(chat_model: ChatModel) -> Persona:
    """Return an unsaved persona that asks `chat_model` with the caller's messages only (no prompt, no greeting)."""
    return Persona(
        name=str(chat_model),
        slug=chat_model.model_id,
        model=chat_model,
        system_prompt="",
        greeting="",
        history_limit=DIRECT_HISTORY_LIMIT,
        is_active=True,
    )


def _split(messages: Sequence[ChatMessage]) -> tuple[list[tuple[str, str]], str]:
    """Return the caller's earlier messages as (stored role, text) pairs, and the question's text.

    Raises:
        ApiError: INVALID_REQUEST naming the message at fault: none, an
            unknown or unsupported role, a text the page would refuse
            (`services.message_text_clean`), or a last message not the user's.
    """
    if not messages:
        raise ApiError(ApiErrorKind.INVALID_REQUEST, _("“messages” must hold at least one message."), param="messages")
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role = ROLES.get(message.role)
        if role is None:
            if message.role in UNSUPPORTED_ROLES:
                text = _("Messages of role “%(role)s” are not supported here: this site has no tools.")
            else:
                text = _("Unknown role “%(role)s”: use system, developer, user or assistant.")
            raise ApiError(ApiErrorKind.INVALID_REQUEST, text % {"role": message.role}, param=f"{param}.role")
        try:
            turns.append((role, services.message_text_clean(text=message.content)))
        except ValidationError as exc:
            raise ApiError(
                ApiErrorKind.INVALID_REQUEST, " ".join(exc.messages), param=f"{param}.content", code=exc.code
            ) from None
    last_role, question = turns.pop()
    if last_role != Message.Role.USER:
        raise ApiError(
            ApiErrorKind.INVALID_REQUEST,
            _("The last message must be the user's: it is the one answered."),
            param=f"messages[{len(messages) - 1}].role",
        )
    return turns, question


def _conversation(*, user: User, public_id: str | UUID, persona: Persona, direct: bool) -> Conversation:
    """Return the user's conversation `public_id` if `persona` may continue it.

    Raises:
        ApiError: NOT_FOUND, not the user's conversation (or no such one);
            INVALID_REQUEST, the model named is not the conversation's persona.
    """
    try:
        conversation = conversation_selectors.conversation_get_for_user(user=user, public_id=public_id)
    except Conversation.DoesNotExist:
        raise _conversation_not_found() from None
    if (conversation.persona_id is not None or direct) and conversation.persona_id != persona.pk:
        raise ApiError(
            ApiErrorKind.INVALID_REQUEST,
            _("This conversation is with “%(persona)s”; name it as the model to continue it.")
            % {"persona": conversation.persona.slug if conversation.persona else ""},
            param="model",
        )
    return conversation


def _conversation_not_found() -> ApiError:
    return ApiError(
        ApiErrorKind.NOT_FOUND,
        _("There is no such conversation in your history."),
        param="conversation_id",
        code="conversation_not_found",
    )


def _with_params(request: llm.ChatRequest, params: ChatParams) -> llm.ChatRequest:
    """Return `request` with the caller's parameters where given; max_tokens never above the persona's own."""
    max_tokens = request.max_tokens
    if params.max_tokens is not None:
        max_tokens = min(params.max_tokens, max_tokens) if max_tokens is not None else params.max_tokens
    return replace(
        request,
        temperature=params.temperature if params.temperature is not None else request.temperature,
        top_p=params.top_p if params.top_p is not None else request.top_p,
        max_tokens=max_tokens,
    )
