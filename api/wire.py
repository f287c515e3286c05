"""The OpenAI wire format of /v1: request bodies in, chunks and completion objects out.

Source: the OpenAI API reference, Chat Completions
(https://platform.openai.com/docs/api-reference/chat/create), its streamed
chunk object (https://platform.openai.com/docs/api-reference/chat-streaming)
and Models (https://platform.openai.com/docs/api-reference/models/list).
Parsing is strict where it matters (types, roles, sizes): a bad field is a
400 naming it, before anything is saved. Fields the site does not use
(`user`, `seed`, `logit_bias`, ...) are accepted and ignored, as OpenAI-compatible
servers do; ones that would change the answer's shape (`tools`, `n` > 1) are refused.
"""

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from api.chat import ChatMessage, ChatParams, ChatStarted
from api.errors import ApiError, ApiErrorKind

CONVERSATION_HEADER = "X-Conversation-Id"
# Refused rather than ignored: the caller expects an answer they would not get.
_UNSUPPORTED_FIELDS = ("tools", "functions", "tool_choice", "function_call", "audio", "modalities")


@dataclass(frozen=True)
class CompletionRequest:
    """A parsed `POST /v1/chat/completions` body; `conversation_id` from metadata or the X-Conversation-Id header."""

    model: str
    messages: list[ChatMessage]
    params: ChatParams
    stream: bool = False
    include_usage: bool = False
    store: bool = True
    conversation_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def parse_completion_request(body: bytes, *, conversation_header: str | None) -> CompletionRequest:
    """Return the request in `body` (the raw bytes, already within CHAT_API_MAX_BODY_BYTES).

    conversation_header: the X-Conversation-Id request header, if sent.

    Raises:
        ApiError: INVALID_REQUEST naming the problem and, where there is one, the field (`param`):
            not UTF-8, not JSON, not an object, a missing or mistyped field,
            an out-of-range number, more than CHAT_API_MAX_MESSAGES messages,
            content that is not text, an unsupported field.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(_("The request body is not UTF-8 text (byte %(at)d).") % {"at": exc.start}) from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        if not isinstance(exc, json.JSONDecodeError):  # NaN or Infinity (`_refuse_constant`), nesting too deep
            raise _invalid(_("The request body is not valid JSON.")) from None
        reason = _JSON_REASONS.get(exc.msg, _JSON_REASON_OTHER)
        raise _invalid(
            _("The request body is not valid JSON: %(reason)s (line %(line)d, column %(column)d).")
            % {"reason": reason, "line": exc.lineno, "column": exc.colno}
        ) from None
    if not isinstance(data, dict):
        raise _invalid(_("The request body must be a JSON object."))
    for name in _UNSUPPORTED_FIELDS:
        if data.get(name) not in (None, [], {}):
            raise _invalid(_("“%(field)s” is not supported here: this site has no tools.") % {"field": name}, name)
    if _get(data, "n", int, default=1) != 1:
        raise _invalid(_("Only one choice per request is supported (n = 1)."), "n")
    model = _get(data, "model", str, required=True)
    messages = _messages(data)
    stream = _get(data, "stream", bool, default=False)
    options = _get(data, "stream_options", dict, default={}) or {}
    include_usage = _get(options, "include_usage", bool, default=False, param="stream_options.include_usage")
    metadata = _metadata(data)
    conversation_id = _conversation_id(metadata.get("conversation_id"), conversation_header)
    max_tokens = _get(data, "max_completion_tokens", int, default=None)
    if max_tokens is None:
        max_tokens = _get(data, "max_tokens", int, default=None)
    return CompletionRequest(
        model=model,
        messages=messages,
        params=ChatParams(
            temperature=_number(data, "temperature", 0, 2),
            top_p=_number(data, "top_p", 0, 1),
            max_tokens=_positive(max_tokens, "max_tokens"),
        ),
        stream=stream,
        include_usage=stream and include_usage,
        store=_get(data, "store", bool, default=True),
        conversation_id=conversation_id,
        metadata=metadata,
    )


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(ApiErrorKind.INVALID_REQUEST, message, param=param)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# What `_get` says a field must be, in the caller's language.
_TYPE_NAMES = {
    str: gettext_lazy("a string"),
    bool: gettext_lazy("true or false"),
    int: gettext_lazy("an integer"),
    dict: gettext_lazy("an object"),
    list: gettext_lazy("an array"),
}

# Python's JSON parser's messages (`json.JSONDecodeError.msg`, the same from its C scanner; Python 3.11's
# Lib/json/decoder.py and __init__.py), in the caller's language; one Python adds later reads as _JSON_REASON_OTHER.
_JSON_REASONS = {
    "Expecting value": gettext_lazy("a value is missing"),
    "Expecting ',' delimiter": gettext_lazy("a comma is missing"),
    "Expecting ':' delimiter": gettext_lazy("a colon is missing"),
    "Expecting property name enclosed in double quotes": gettext_lazy("a name in double quotes is missing"),
    "Unterminated string starting at": gettext_lazy("a string is not closed"),
    "Invalid control character at": gettext_lazy("a control character inside a string"),
    "Invalid \\escape": gettext_lazy("an invalid backslash escape"),
    "Invalid \\uXXXX escape": gettext_lazy("an invalid \\uXXXX escape"),
    "Extra data": gettext_lazy("more text after the JSON value"),
    "Unexpected UTF-8 BOM (decode using utf-8-sig)": gettext_lazy("a byte order mark before the JSON value"),
}
_JSON_REASON_OTHER = gettext_lazy("a syntax error")


def _get(data: dict, name: str, kind: type, *, default: Any = None, required: bool = False, param: str = "") -> Any:
    """Return `data[name]` if it is of `kind` (a JSON null counts as absent), else `default`.

    Raises:
        ApiError: the field is missing though `required`, or of another type.
    """
    param = param or name
    value = data.get(name)
    if value is None:
        if required:
            raise _invalid(_("“%(field)s” is required.") % {"field": param}, param)
        return default
    # bool is an int in Python; JSON true is never a number here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(
            _("“%(field)s” must be %(type)s.") % {"field": param, "type": _TYPE_NAMES.get(kind, kind.__name__)}, param
        )
    return value


def _number(data: dict, name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _invalid(
            _("“%(field)s” must be a number from %(low)s to %(high)s.") % {"field": name, "low": low, "high": high},
            name,
        )
    return float(value)


def _positive(value: int | None, name: str) -> int | None:
    if value is not None and value < 1:
        raise _invalid(_("“%(field)s” must be at least 1.") % {"field": name}, name)
    return value


def messages_count_check(count: int) -> None:
    """Check how many messages one request carries (every face of the API: /v1 and gRPC).

    Raises:
        ApiError: INVALID_REQUEST with param "messages": none, or more than settings.CHAT_API_MAX_MESSAGES.
    """
    if not count:
        raise _invalid(_("“messages” must hold at least one message."), "messages")
    limit = settings.CHAT_API_MAX_MESSAGES
    if count > limit:
        raise _invalid(
            _("“messages” holds %(count)d messages; the limit is %(limit)d. Send the new one with a conversation id.")
            % {"count": count, "limit": limit},
            "messages",
        )


def _messages(data: dict) -> list[ChatMessage]:
    raw = _get(data, "messages", list, required=True)
    messages_count_check(len(raw))
    messages = []
    for index, item in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(item, dict):
            raise _invalid(_("“%(field)s” must be an object with a role and content.") % {"field": param}, param)
        role = _get(item, "role", str, required=True, param=f"{param}.role")
        messages.append(ChatMessage(role=role, content=_content(item.get("content"), f"{param}.content")))
    return messages


def _content(content: object, param: str) -> str:
    """Return a message's text: a string, or the text parts of an array of content parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _invalid(_("“%(field)s” may hold text parts only.") % {"field": param}, param)
            texts.append(part["text"])
        return "\n".join(texts)
    raise _invalid(_("“%(field)s” must be text.") % {"field": param}, param)


def _metadata(data: dict) -> dict[str, str]:
    metadata = _get(data, "metadata", dict, default={}) or {}
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _invalid(_("“metadata” values must be strings."), f"metadata.{key}")
    return metadata


def _conversation_id(from_metadata: str | None, from_header: str | None) -> str | None:
    """Return the conversation to continue, from metadata.conversation_id or the header (which must agree)."""
    values = {v.strip() for v in (from_metadata, from_header) if v and v.strip()}
    if len(values) > 1:
        raise _invalid(
            _("metadata.conversation_id and the X-Conversation-Id header name different conversations."),
            "metadata.conversation_id",
        )
    if not values:
        return None
    value = values.pop()
    try:
        UUID(value)
    except ValueError:
        raise _invalid(
            _("A conversation id is a UUID, as X-Conversation-Id returns it."), "metadata.conversation_id"
        ) from None
    return value


def chunk(started: ChatStarted, delta: dict, finish_reason: str | None = None) -> dict:
    """Return one `chat.completion.chunk` carrying `delta` ({"role"?, "content"?}) and `finish_reason`."""
    return {
        "id": started.completion_id,
        "object": "chat.completion.chunk",
        "created": started.created,
        "model": started.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage(prompt_tokens: int | None, completion_tokens: int | None) -> dict:
    """Return the `usage` object (tokens as the upstream counted them, else the site's estimate)."""
    prompt, completion = prompt_tokens or 0, completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def usage_chunk(started: ChatStarted, prompt_tokens: int | None, completion_tokens: int | None) -> dict:
    """Return the last chunk of a stream asked with stream_options.include_usage: no choices, the usage."""
    return {
        "id": started.completion_id,
        "object": "chat.completion.chunk",
        "created": started.created,
        "model": started.model,
        "system_fingerprint": None,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion(started: ChatStarted, text: str, finish_reason: str, usage_object: dict) -> dict:
    """Return the `chat.completion` object of a request with stream false."""
    return {
        "id": started.completion_id,
        "object": "chat.completion",
        "created": started.created,
        "model": started.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_object,
    }


def sse(data: dict | str) -> bytes:
    """Return one Server-Sent Event carrying `data` (JSON unless a string, e.g. "[DONE]"), as OpenAI frames them."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()
