"""The one module that talks to OpenAI-compatible APIs (the only importer of `openai`).

It streams chat completions with the official SDK (`AsyncOpenAI`) and turns
every failure into an `LLMError` whose `kind` the rest of the site can rely
on and whose `message` a person can act on. Provider quirks handled here come
from real captures (shared/fixtures/upstream/SOURCES.md): a chunk without
`delta` (Azure), `content` as an array of parts (Mistral Magistral), usage only
under `x_groq` (Groq) or repeated on several chunks (Groq, OpenRouter),
trailing `choices: []` chunks after the usage chunk (OpenAI moderation),
`refusal` deltas instead of content (OpenAI), and several choices (`n` > 1).

Protocol source: OpenAI API reference, "Chat Completions: create" and
"The chat completion chunk object"; "Error codes" for the status mapping.
"""

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx2
import openai
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)


class ErrorKind(StrEnum):
    """What went wrong upstream, in terms a caller can branch on."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"
    CONTEXT_TOO_LONG = "context_too_long"
    BAD_REQUEST = "bad_request"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    CONNECTION_DROPPED = "connection_dropped"
    STREAM_ERROR = "stream_error"
    INCOMPLETE = "incomplete"
    BAD_RESPONSE = "bad_response"


class LLMError(Exception):
    """An upstream failure.

    Attributes:
        kind: the `ErrorKind`.
        message: a translated sentence for the person chatting, never holding the API key.
        status: the HTTP status when the upstream answered with one, else None.
        retry_after_s: the upstream's Retry-After in seconds, when given.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class UpstreamConfig:
    """Where and how to call one provider; timeouts in seconds."""

    base_url: str
    api_key: str
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    total_timeout_s: float = 600.0

    def __repr__(self) -> str:  # Keep the key out of logs and tracebacks.
        return f"UpstreamConfig(base_url={self.base_url!r}, api_key='***')"


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request: `messages` as the API takes them ({"role", "content"})."""

    model: str
    messages: list[dict[str, str]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Delta:
    """A piece of reply text, in arrival order."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The end of a stream: why it stopped and the usage the upstream reported."""

    finish_reason: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None


# One HTTP client per event loop, shared by every reply streamed on it:
# creating one costs ~50 ms (its TLS context), which would land on every time
# to first token, and sharing keeps its connection pool warm. Weak keys: a
# client goes away with its loop. Process-local, so safe with many workers.
_http_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def _shared_http_client() -> httpx2.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _http_clients.get(loop)
    if client is None or client.is_closed:
        client = _http_clients[loop] = openai.DefaultAsyncHttpxClient()
    return client


# The SDK's own frames below this one hold the key as a plain string: error reports hide them all.
@sensitive_variables()
def _client(config: UpstreamConfig, http_client: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    """Return an SDK client for `config` on `http_client`; never close it: that would close the shared client."""
    timeout = openai.Timeout(
        config.total_timeout_s, connect=config.connect_timeout_s, read=config.read_timeout_s
    )
    # Retries are the caller's policy, not the SDK's: a retry after text has
    # been shown would duplicate it.
    return openai.AsyncOpenAI(
        api_key=config.api_key or "none",
        base_url=config.base_url,
        timeout=timeout,
        max_retries=0,
        http_client=http_client,
    )


async def stream_chat(config: UpstreamConfig, request: ChatRequest) -> AsyncIterator[Delta | Finish]:
    """Stream one chat completion: yield `Delta`s, then exactly one `Finish`.

    Sends `stream=True` with `stream_options.include_usage` so the usage chunk
    arrives at the end. Only choice index 0 is read.

    Raises:
        LLMError: for every upstream failure, before or during the stream; a
            stream that ends without a finish reason raises kind INCOMPLETE.
    """
    params: dict[str, Any] = {}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    finish_reason = ""
    model = request.model
    usage: Mapping[str, Any] | None = None
    started = False
    loop = asyncio.get_running_loop()
    # The read timeout bounds each wait for a chunk; the total bound is checked per chunk.
    deadline = loop.time() + config.total_timeout_s
    client = _client(config, _shared_http_client())
    try:
        stream = await client.chat.completions.create(
            model=request.model,
            messages=request.messages,
            stream=True,
            stream_options={"include_usage": True},
            **params,
        )
        async with stream:  # Closes the HTTP response on stop (cancellation) or error.
            async for chunk in stream:
                if loop.time() > deadline:
                    raise TimeoutError
                usage = _chunk_usage(chunk) or usage
                model = chunk.model or model
                for choice in chunk.choices or ():
                    if choice.index != 0:
                        continue
                    text = _delta_text(choice.delta)
                    if text:
                        started = True
                        yield Delta(text)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
    except (openai.APIError, httpx2.HTTPError, TimeoutError) as exc:
        raise _map_error(exc, config=config, model=request.model, started=started) from exc
    if not finish_reason:
        raise LLMError(
            ErrorKind.INCOMPLETE,
            _("The reply is incomplete: the provider ended the stream before the model finished."),
        )
    yield Finish(
        finish_reason=finish_reason,
        model=model,
        prompt_tokens=_int_or_none(usage, "prompt_tokens"),
        completion_tokens=_int_or_none(usage, "completion_tokens"),
    )


async def complete_once(config: UpstreamConfig, request: ChatRequest) -> str:
    """Return the text of one non-streaming completion (e.g. a one-token connection test).

    Raises:
        LLMError: as `stream_chat`.
    """
    client = _client(config, _shared_http_client())
    try:
        completion = await client.chat.completions.create(
            model=request.model,
            messages=request.messages,
            max_tokens=request.max_tokens,
        )
    except (openai.APIError, httpx2.HTTPError, TimeoutError) as exc:
        raise _map_error(exc, config=config, model=request.model, started=False) from exc
    if not completion.choices:
        raise LLMError(ErrorKind.BAD_RESPONSE, _("The provider's answer had no choices."))
    return _delta_text(completion.choices[0].message)


async def list_models(config: UpstreamConfig) -> dict[str, str]:
    """Return {model id: label} of GET {base_url}/models, in the provider's order.

    The label is the model object's human name, `display_name` (Together,
    Anthropic) or `name` (OpenRouter); "" when it has none.

    Raises:
        LLMError: as `stream_chat`.
    """
    client = _client(config, _shared_http_client())
    try:
        return {model.id: _model_label(model) async for model in client.models.list()}
    except (openai.APIError, httpx2.HTTPError, TimeoutError) as exc:
        raise _map_error(exc, config=config, model="", started=False) from exc


def _model_label(model: Any) -> str:
    """Return a listed model's human name (`display_name`, else `name`), or ""."""
    extra = model.model_extra or {}
    label = extra.get("display_name") or extra.get("name")
    return label.strip() if isinstance(label, str) else ""


def _delta_text(delta: Any) -> str:
    """Return the visible text of a delta or message: content (a string or text parts) and refusal."""
    if delta is None:
        return ""
    content = getattr(delta, "content", None)
    if isinstance(content, list):
        # Mistral's Magistral sends [{"type": "thinking", ...}, {"type": "text", "text": ...}].
        content = "".join(
            part.get("text", "") for part in content if isinstance(part, Mapping) and part.get("type") == "text"
        )
    refusal = getattr(delta, "refusal", None)
    return (content if isinstance(content, str) else "") + (refusal if isinstance(refusal, str) else "")


def _chunk_usage(chunk: Any) -> Mapping[str, Any] | None:
    """Return the usage a chunk carries, as a mapping; later usages replace earlier ones (never summed)."""
    if chunk.usage is not None:
        return chunk.usage.model_dump()
    x_groq = (chunk.model_extra or {}).get("x_groq")
    if isinstance(x_groq, Mapping) and isinstance(x_groq.get("usage"), Mapping):
        return x_groq["usage"]
    return None


def _int_or_none(usage: Mapping[str, Any] | None, key: str) -> int | None:
    value = (usage or {}).get(key)
    return value if isinstance(value, int) and value >= 0 else None


def _map_error(exc: BaseException, *, config: UpstreamConfig, model: str, started: bool) -> LLMError:
    """Translate an SDK, transport or timeout exception into an `LLMError` with an actionable message."""
    detail = _scrub(_upstream_message(exc), config.api_key)
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException, TimeoutError)):
        return _timeout_error(exc, config)
    if isinstance(exc, openai.APIStatusError):
        return _map_status_error(exc, detail=detail, model=model)
    if isinstance(exc, openai.APIConnectionError) or isinstance(exc, httpx2.TransportError):
        if started:
            return LLMError(
                ErrorKind.CONNECTION_DROPPED,
                _("The connection to the provider dropped in the middle of the reply. Send again to retry."),
            )
        return LLMError(
            ErrorKind.UNAVAILABLE,
            _("Could not connect to the provider. Check that it is running and that its base URL is right."),
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMError(ErrorKind.BAD_RESPONSE, _("The provider sent a response that could not be read."))
    if isinstance(exc, openai.APIError):
        # Raised by the SDK for an error event inside a 200 stream.
        return LLMError(
            ErrorKind.STREAM_ERROR,
            _("The provider reported an error in the middle of the reply: %(detail)s") % {"detail": detail},
        )
    logger.warning("Unexpected transport error from provider %s: %s", config.base_url, type(exc).__name__)
    return LLMError(ErrorKind.BAD_RESPONSE, _("The provider sent a response that could not be read."))


def _timeout_error(exc: BaseException, config: UpstreamConfig) -> LLMError:
    """Name the time limit that ran out: connecting, waiting between chunks, or the whole reply."""
    cause = exc.__cause__ if isinstance(exc, openai.APITimeoutError) else exc
    if isinstance(cause, (httpx2.ConnectTimeout, httpx2.PoolTimeout)):
        message = _("Could not connect to the provider within %(seconds)g s. Check that it is up; an admin can raise the connect timeout.")
        seconds = config.connect_timeout_s
    elif isinstance(cause, httpx2.TimeoutException):
        message = _("The provider stopped sending for %(seconds)g s. Try again; an admin can raise the idle timeout.")
        seconds = config.read_timeout_s
    else:
        message = _("The reply took longer than %(seconds)g s in all. Ask for something shorter; an admin can raise the total timeout.")
        seconds = config.total_timeout_s
    return LLMError(ErrorKind.TIMEOUT, message % {"seconds": seconds})


def _map_status_error(exc: openai.APIStatusError, *, detail: str, model: str) -> LLMError:
    status = exc.status_code
    code = str(exc.code or "")
    if status in (401, 403):
        return LLMError(
            ErrorKind.AUTH,
            _("The provider refused the API key (%(status)s). An admin should check the provider's key.")
            % {"status": status},
            status=status,
        )
    if status == 404:
        return LLMError(
            ErrorKind.NOT_FOUND,
            _("The provider does not know the model “%(model)s” (404). An admin should check the model id.")
            % {"model": model},
            status=status,
        )
    if status == 429:
        if code == "insufficient_quota" or exc.type == "insufficient_quota":
            return LLMError(
                ErrorKind.QUOTA,
                _("The provider account is out of quota. An admin needs to add credit or switch providers."),
                status=status,
            )
        retry_after_s = _retry_after_s(exc.response)
        message = _("The provider is rate limiting requests. Wait a moment and send again.")
        if retry_after_s is not None:
            message = _("The provider is rate limiting requests. Try again in %(seconds)d s.") % {
                "seconds": round(retry_after_s)
            }
        return LLMError(ErrorKind.RATE_LIMITED, message, status=status, retry_after_s=retry_after_s)
    if status == 400 and (code == "context_length_exceeded" or "context length" in detail.lower()):
        return LLMError(
            ErrorKind.CONTEXT_TOO_LONG,
            _("The conversation is too long for the model's context window. Start a new chat to continue."),
            status=status,
        )
    if status >= 500:
        return LLMError(
            ErrorKind.UNAVAILABLE,
            _("The provider is unavailable right now (%(status)s). Try again in a moment.") % {"status": status},
            status=status,
        )
    return LLMError(
        ErrorKind.BAD_REQUEST,
        _("The provider refused the request (%(status)s): %(detail)s") % {"status": status, "detail": detail},
        status=status,
    )


def _upstream_message(exc: BaseException) -> str:
    """Return the upstream's own error message (OpenAI error body `error.message`), or a short fallback."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"][:500]
    message = getattr(exc, "message", None) or str(exc)
    return str(message)[:500]


@sensitive_variables("api_key")
def _scrub(text: str, api_key: str) -> str:
    """Remove the API key from `text`, should an upstream echo it back."""
    return text.replace(api_key, "***") if api_key and len(api_key) >= 4 else text


def _retry_after_s(response: httpx2.Response) -> float | None:
    """Return Retry-After in seconds (RFC 9110 §10.2.3, delta-seconds form; `retry-after-ms` first)."""
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None
