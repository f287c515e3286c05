"""The gRPC face of the API: `ChatService` (chat.proto's `chatsite.v1.Chat`) and `serve`, run by `manage.py grpcserve`.

Each call is authenticated by a personal key in its metadata (`authorization: Bearer KEY`) through
`api.auth.key_authenticate`, and a chat is `api.chat.chat_completion`, the same service function as
/v1/chat/completions: quotas, history, context budget, retries and error kinds are the page's. Its
`ApiError`s end the call with a status code (`STATUS_CODES`), the error's message as the details, and
trailing metadata ``error-code``, ``error-param`` and ``retry-after`` (seconds) where they apply.
Status codes: https://grpc.github.io/grpc/core/md_doc_statuscodes.html
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _

from api import auth, selectors
from api.chat import ChatDelta, ChatFailed, ChatFinished, ChatMessage, ChatStarted, chat_completion
from api.errors import ApiError, ApiErrorKind
from api.rpc import chat_pb2, chat_pb2_grpc
from api.wire import messages_count_check

logger = logging.getLogger(__name__)

# How each kind of refusal or failure ends a call (the HTTP API answers the same kinds with STATUS).
STATUS_CODES: dict[ApiErrorKind, grpc.StatusCode] = {
    ApiErrorKind.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ApiErrorKind.CONTEXT_TOO_LONG: grpc.StatusCode.INVALID_ARGUMENT,
    ApiErrorKind.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    ApiErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ApiErrorKind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    ApiErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ApiErrorKind.METHOD_NOT_ALLOWED: grpc.StatusCode.UNIMPLEMENTED,
    ApiErrorKind.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ApiErrorKind.SERVER_ERROR: grpc.StatusCode.INTERNAL,
    ApiErrorKind.UPSTREAM_ERROR: grpc.StatusCode.INTERNAL,
    ApiErrorKind.UPSTREAM_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ApiErrorKind.UPSTREAM_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# Seconds a stopping server lets calls in progress finish (replies already started are stopped after that).
SHUTDOWN_GRACE_S = 5.0


class ChatService(chat_pb2_grpc.ChatServicer):
    """`chatsite.v1.Chat`: ListPersonas, and Chat with a server-streamed reply."""

    async def ListPersonas(
        self, request: chat_pb2.ListPersonasRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListPersonasResponse:
        """Return the personas (and models for direct use) the key's user may name, as GET /v1/models does."""
        try:
            translation.activate(_language(context))
            user = await _user(context)
            personas, models = await database_sync_to_async(selectors.callable_models)(user=user)
        except Exception as error:
            await _fail(context, error)
        return chat_pb2.ListPersonasResponse(
            personas=[chat_pb2.Persona(id=p.slug, name=p.name, description=p.description) for p in personas]
            + [chat_pb2.Persona(id=m.model_id, name=str(m)) for m in models]
        )

    async def Chat(
        self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.ChatEvent]:
        """Stream one reply: the conversation id, the deltas as they arrive, then the finish reason and usage.

        A call cancelled by the client (or past its deadline) cancels this task: closing the service's
        iterator stops the upstream and the partial reply is stored, as when a /v1 stream is dropped.
        """
        try:
            translation.activate(_language(context))
            user = await _user(context)
            messages_count_check(len(request.messages))
            stream = chat_completion(
                user=user,
                model=request.persona,
                messages=[ChatMessage(role=m.role, content=m.content) for m in request.messages],
                store=request.store if request.HasField("store") else True,
                conversation_id=request.conversation_id or None,
            )
            try:
                async for event in stream:
                    if isinstance(event, ChatStarted):
                        yield chat_pb2.ChatEvent(conversation_id=str(event.conversation_id or ""))
                    elif isinstance(event, ChatDelta):
                        yield chat_pb2.ChatEvent(delta=event.text)
                    elif isinstance(event, ChatFinished):
                        yield chat_pb2.ChatEvent(finish=_finish(event))
                    else:
                        assert isinstance(event, ChatFailed)
                        raise event.error
            finally:
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        except Exception as error:
            await _fail(context, error)


def _finish(event: ChatFinished) -> chat_pb2.Finish:
    finish = chat_pb2.Finish(finish_reason=event.finish_reason)
    if event.prompt_tokens is not None or event.completion_tokens is not None:
        prompt, completion = event.prompt_tokens or 0, event.completion_tokens or 0
        finish.usage.CopyFrom(
            chat_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        )
    return finish


def _language(context: grpc.aio.ServicerContext) -> str:
    """Return the site's language closest to the call's ``accept-language`` metadata (as a page's request)."""
    request = HttpRequest()
    request.META["HTTP_ACCEPT_LANGUAGE"] = dict(context.invocation_metadata() or ()).get("accept-language", "")
    return translation.get_language_from_request(request)


async def _user(context: grpc.aio.ServicerContext) -> User:
    """Return the user whose key the call's ``authorization`` metadata carries (``Bearer KEY``).

    Raises:
        ApiError: as `api.auth.key_authenticate` (UNAUTHENTICATED, FORBIDDEN).
    """
    metadata = dict(context.invocation_metadata() or ())
    scheme, _space, key = str(metadata.get("authorization", "")).partition(" ")
    presented = key.strip() if scheme.lower() == "bearer" else None
    if metadata.get("authorization") and presented is None:
        raise ApiError(
            ApiErrorKind.UNAUTHENTICATED,
            _("Send the key as “authorization: Bearer KEY” in the call's metadata."),
            code="invalid_api_key",
        )
    return await database_sync_to_async(auth.key_authenticate)(presented=presented)


async def _fail(context: grpc.aio.ServicerContext, error: Exception) -> NoReturn:
    """End the call for `error`: an `ApiError` as its kind says, anything else as INTERNAL with a generic message.

    The unexpected error is logged, never shown to the caller (as /v1's JSON 500).
    """
    if not isinstance(error, ApiError):
        logger.error("gRPC call failed", exc_info=error)
        error = ApiError(ApiErrorKind.SERVER_ERROR, _("The site failed to answer this request. Try again."))
    trailing: list[tuple[str, str]] = []
    if error.code:
        trailing.append(("error-code", str(error.code)))
    if error.param:
        trailing.append(("error-param", error.param))
    if error.retry_after_s is not None:
        trailing.append(("retry-after", str(error.retry_after_s)))
    await context.abort(STATUS_CODES[error.kind], error.message, trailing_metadata=tuple(trailing))
    raise AssertionError("context.abort raises")  # pragma: no cover


def server_address(host: str, port: int) -> str:
    """Return ``host:port`` as gRPC takes it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def serve(*, host: str, port: int, on_ready: Callable[[int], Any]) -> None:
    """Serve `ChatService` on ``host:port`` until SIGINT or SIGTERM; call `on_ready(port)` once listening.

    Port 0 picks a free port (the one passed to `on_ready`). Plaintext HTTP/2: keep it on loopback or a
    private network, or put a TLS-terminating proxy in front.

    Raises:
        OSError: the address cannot be bound.
    """
    # A call's request is bounded like a /v1 body (grpcio's default is 4 MiB).
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", settings.CHAT_API_MAX_BODY_BYTES)])
    chat_pb2_grpc.add_ChatServicer_to_server(ChatService(), server)
    address = server_address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:  # grpcio raises for an address it cannot bind
        raise OSError(f"Cannot listen on {address}: {error}") from error
    if not bound:
        raise OSError(f"Cannot listen on {address}.")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    on_ready(bound)
    await stopping.wait()
    await server.stop(grace=SHUTDOWN_GRACE_S)
