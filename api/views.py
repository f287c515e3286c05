"""The OpenAI-compatible HTTP API: `GET /v1/models` and `POST /v1/chat/completions`, authenticated by personal keys.

Only `Authorization: Bearer KEY` is accepted: session cookies are ignored,
so a signed-in browser cannot be used from another site, and CSRF does not
apply (nothing here is authenticated by a cookie). CORS headers are sent only
for origins in CHAT_API_CORS_ORIGINS. Every error is an OpenAI error object
(`api.errors`). The chat itself is `api.chat.chat_completion`.
"""

import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from api import auth, selectors, wire
from api.chat import ChatDelta, ChatEvent, ChatFailed, ChatFinished, ChatStarted, chat_completion
from api.errors import ApiError, ApiErrorKind

logger = logging.getLogger(__name__)

_Response = TypeVar("_Response", HttpResponse, StreamingHttpResponse)

_CORS_HEADERS = {
    "Access-Control-Allow-Headers": f"Authorization, Content-Type, {wire.CONVERSATION_HEADER}",
    "Access-Control-Expose-Headers": f"{wire.CONVERSATION_HEADER}, Retry-After",
    "Access-Control-Max-Age": "600",
}


_View = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def api_view(view: _View) -> _View:
    """Wrap a /v1 view (of the request and its URL's parameters): CSRF off (no cookie authenticates
    here), never cached, ApiError and any failure answered as OpenAI error objects."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except ApiError as exc:
            return error_response(request, exc)
        except Exception:
            logger.exception("API request failed: %s %s", request.method, request.path)
            failure = ApiError(ApiErrorKind.SERVER_ERROR, _("The site failed to answer this request. Try again."))
            return error_response(request, failure)

    return csrf_exempt(never_cache(wrapped))


@api_view
async def models_list(request: HttpRequest) -> HttpResponse:
    """List the models the caller may name: active personas (id = slug) and the models for direct use."""
    if request.method == "OPTIONS":
        return _preflight(request, "GET")
    method_check(request, "GET")
    user = await authenticate(request)
    personas, models = await sync_to_async(selectors.callable_models)(user=user)
    data = [
        {
            "id": p.slug,
            "object": "model",
            "created": int(p.created_at.timestamp()),
            "owned_by": "persona",
            "name": p.name,
            "description": p.description,
        }
        for p in personas
    ]
    data += [
        {
            "id": m.model_id,
            "object": "model",
            "created": int(m.created_at.timestamp()),
            "owned_by": m.provider.name,
            "name": str(m),
            "description": "",
        }
        for m in models
    ]
    return with_cors(request, JsonResponse({"object": "list", "data": data}))


@api_view
async def chat_completions(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Answer a chat completion request, streamed as Server-Sent Events or as one `chat.completion`.

    The response carries X-Conversation-Id when the reply is saved (or
    continues a conversation); an error before any text is an error object
    with its status, one after it an SSE error event (as OpenAI sends them).
    """
    if request.method == "OPTIONS":
        return _preflight(request, "POST")
    method_check(request, "POST")
    user = await authenticate(request)
    parsed = wire.parse_completion_request(
        _read_body(request), conversation_header=request.headers.get(wire.CONVERSATION_HEADER)
    )
    stream = chat_completion(
        user=user,
        model=parsed.model,
        messages=parsed.messages,
        params=parsed.params,
        store=parsed.store,
        conversation_id=parsed.conversation_id,
    )
    started = await anext(stream)
    assert isinstance(started, ChatStarted)
    headers = {wire.CONVERSATION_HEADER: str(started.conversation_id)} if started.conversation_id else {}
    # The status is known at the first event after the start: an upstream failing before any text gets its own.
    first = await anext(stream)
    if isinstance(first, ChatFailed):
        return error_response(request, first.error, headers)
    if parsed.stream:
        response = StreamingHttpResponse(
            _sse(started, first, stream, include_usage=parsed.include_usage),
            content_type="text/event-stream; charset=utf-8",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        return with_cors(request, response)
    text: list[str] = []
    event: ChatEvent = first
    while isinstance(event, ChatDelta):
        text.append(event.text)
        event = await anext(stream)
    if isinstance(event, ChatFailed):
        return error_response(request, event.error, headers)
    assert isinstance(event, ChatFinished)
    body = wire.completion(
        started, "".join(text), event.finish_reason, wire.usage(event.prompt_tokens, event.completion_tokens)
    )
    return with_cors(request, JsonResponse(body, headers=headers, json_dumps_params={"ensure_ascii": False}))


@api_view
async def not_found(request: HttpRequest) -> HttpResponse:
    """Answer any other path under /v1 with a 404 error object, as OpenAI clients expect, not an HTML page."""
    raise ApiError(
        ApiErrorKind.NOT_FOUND,
        _("There is no %(path)s here: this site answers GET /v1/models and POST /v1/chat/completions.")
        % {"path": request.path},
        code="unknown_url",
    )


async def _sse(
    started: ChatStarted, first: ChatEvent, stream: AsyncIterator[ChatEvent], *, include_usage: bool
) -> AsyncIterator[bytes]:
    """Yield the reply's Server-Sent Events, each as soon as its delta arrives; end with `data: [DONE]`."""
    try:
        yield wire.sse(wire.chunk(started, {"role": "assistant", "content": ""}))
        event = first
        while True:
            if isinstance(event, ChatDelta):
                yield wire.sse(wire.chunk(started, {"content": event.text}))
            elif isinstance(event, ChatFinished):
                yield wire.sse(wire.chunk(started, {}, event.finish_reason))
                if include_usage:
                    yield wire.sse(wire.usage_chunk(started, event.prompt_tokens, event.completion_tokens))
                yield wire.sse("[DONE]")
                return
            else:
                assert isinstance(event, ChatFailed)
                yield wire.sse(event.error.as_object())  # The SDKs raise on an event carrying "error".
                return
            event = await anext(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]  # An async generator: a client gone stops the reply.


async def authenticate(request: HttpRequest) -> User:
    """Return the key's user from `Authorization: Bearer KEY`; cookies never count."""
    header = request.headers.get("Authorization", "")
    scheme, _space, key = header.partition(" ")
    presented = key.strip() if scheme.lower() == "bearer" else None
    return await sync_to_async(auth.key_authenticate)(presented=presented)


def method_check(request: HttpRequest, allowed: str) -> None:
    if request.method != allowed:
        raise ApiError(
            ApiErrorKind.METHOD_NOT_ALLOWED,
            _("%(method)s is not allowed here; use %(allowed)s.") % {"method": request.method, "allowed": allowed},
        )


def _read_body(request: HttpRequest) -> bytes:
    """Return the request body, at most CHAT_API_MAX_BODY_BYTES.

    Raises:
        ApiError: TOO_LARGE (413) for a larger body, told by its Content-Length or found reading it.
    """
    limit = settings.CHAT_API_MAX_BODY_BYTES
    too_large = ApiError(
        ApiErrorKind.TOO_LARGE,
        _("The request body is larger than %(limit)d bytes. Send only the new message with a conversation id.")
        % {"limit": limit},
        code="request_too_large",
    )
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    body = request.read(limit + 1)  # Not request.body: its limit (DATA_UPLOAD_MAX_MEMORY_SIZE) answers a bare 400.
    if len(body) > limit:
        raise too_large
    return body


def error_response(request: HttpRequest, error: ApiError, headers: dict[str, str] | None = None) -> HttpResponse:
    """Return `error` as its OpenAI error object with its status (and Retry-After for a 429, as RFC 9110 §10.2.3)."""
    response = JsonResponse(error.as_object(), status=error.status, headers=headers or {})
    if error.retry_after_s is not None:
        response["Retry-After"] = str(error.retry_after_s)
    if error.kind == ApiErrorKind.UNAUTHENTICATED:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    if error.kind == ApiErrorKind.METHOD_NOT_ALLOWED:
        # Chat completions is the one /v1 route that takes POST; every other one is GET.
        response["Allow"] = "POST, OPTIONS" if request.path.endswith("/chat/completions") else "GET, OPTIONS"
    return with_cors(request, response)


def _allowed_origin(request: HttpRequest) -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin and origin in settings.CHAT_API_CORS_ORIGINS else None


def with_cors(request: HttpRequest, response: _Response) -> _Response:
    """Add CORS headers for an origin the admin lists (CHAT_API_CORS_ORIGINS); none otherwise. Never credentials."""
    origin = _allowed_origin(request)
    if origin is not None:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = _CORS_HEADERS["Access-Control-Expose-Headers"]
    response["Vary"] = "Origin"
    return response


def _preflight(request: HttpRequest, method: str) -> HttpResponse:
    """Answer a CORS preflight: 204, with the allowed method and headers only for a listed origin."""
    response = HttpResponse(status=204)
    if _allowed_origin(request) is not None:
        response["Access-Control-Allow-Methods"] = f"{method}, OPTIONS"
        for name, value in _CORS_HEADERS.items():
            response[name] = value
    return with_cors(request, response)
