"""Upstream failures as `LLMError`s: a kind the site can branch on and a message a person can act on.

Status mapping from the OpenAI API reference, "Error codes"
(https://platform.openai.com/docs/guides/error-codes), and the error bodies
recorded from real providers (tests/fixtures/upstream/SOURCES.md). Messages
never carry the API key: upstream text is scrubbed of it before it is quoted.
"""

import logging
import re
from collections.abc import Mapping
from enum import StrEnum

import aiohttp
import httpx2
import openai
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from llm.types import UpstreamConfig

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


def map_error(exc: BaseException, *, config: UpstreamConfig, model: str, started: bool) -> LLMError:
    """Translate an SDK, transport or timeout exception into an `LLMError` with an actionable message."""
    detail = _scrub(_upstream_message(exc), config.api_key)
    if _connection_lost(exc):
        exc = httpx2.TransportError(detail)
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException, TimeoutError)):
        return _timeout_error(exc, config)
    if isinstance(exc, openai.APIStatusError):
        return _map_status_error(exc, detail=detail, model=model)
    # aiohttp's errors come unmapped from a stream's body, which is read from aiohttp directly (client.py).
    if isinstance(exc, (openai.APIConnectionError, httpx2.TransportError, aiohttp.ClientPayloadError)):
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
        # Raised for an error event inside a 200 stream: llama.cpp servers report an overflowing prompt so.
        body = exc.body if isinstance(exc.body, Mapping) else {}
        if {body.get("code"), body.get("type")} & CONTEXT_OVERFLOW_CODES or CONTEXT_OVERFLOW.search(detail):
            return _context_too_long(None)
        return LLMError(
            ErrorKind.STREAM_ERROR,
            _("The provider reported an error in the middle of the reply: %(detail)s") % {"detail": detail},
        )
    logger.warning("Unexpected transport error from provider %s: %s", config.base_url, type(exc).__name__)
    return LLMError(ErrorKind.BAD_RESPONSE, _("The provider sent a response that could not be read."))


def _connection_lost(exc: BaseException) -> bool:
    """Return whether `exc` comes from an aiohttp connection that closed or failed rather than timed out.

    The SDK's aiohttp transport (`openai.DefaultAioHttpClient`, llm/client.py)
    reports every `aiohttp.ClientConnectionError`, a refused connection or a
    server that hung up included, as httpx's `ConnectTimeout`; the aiohttp
    exception it came from is kept as its `__cause__`.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectionError):
            return not isinstance(seen, (aiohttp.ServerTimeoutError, aiohttp.SocketTimeoutError))
        seen = seen.__cause__
    return False


# How providers say a prompt overflowed the context window. OpenAI: code context_length_exceeded, "This
# model's maximum context length is ..." (vLLM and DeepSeek say the same); llama.cpp server: type
# exceed_context_size_error, "the request exceeds the available context size"; llama-cpp-python:
# "Requested tokens (4050) exceed context window of 4096"; Anthropic and Gemini endpoints: "prompt is too
# long", "input token count ... exceeds the maximum".
CONTEXT_OVERFLOW_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"})
CONTEXT_OVERFLOW = re.compile(
    r"context[ _](?:length|window|size)|maximum context|prompt is too long|input token count.{0,40}exceeds"
    r"|too many (?:input )?tokens",
    re.IGNORECASE,
)


def _context_too_long(status: int | None) -> LLMError:
    return LLMError(
        ErrorKind.CONTEXT_TOO_LONG,
        _("The conversation is too long for the model's context window. Start a new chat to continue."),
        status=status,
    )


def _timeout_error(exc: BaseException, config: UpstreamConfig) -> LLMError:
    """Name the time limit that ran out: connecting, waiting between chunks, or the whole reply."""
    cause = exc.__cause__ if isinstance(exc, openai.APITimeoutError) else exc
    if isinstance(cause, (httpx2.ConnectTimeout, httpx2.PoolTimeout)):
        message = _(
            "Could not connect to the provider within %(seconds)g s. "
            "Check that it is up; an admin can raise the connect timeout."
        )
        seconds = config.connect_timeout_s
    elif isinstance(cause, (httpx2.TimeoutException, aiohttp.SocketTimeoutError)):  # The latter: a stream's body.
        message = _("The provider stopped sending for %(seconds)g s. Try again; an admin can raise the idle timeout.")
        seconds = config.read_timeout_s
    else:
        message = _(
            "The reply took longer than %(seconds)g s in all. "
            "Ask for something shorter; an admin can raise the total timeout."
        )
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
    overflow_code = code in CONTEXT_OVERFLOW_CODES or exc.type in CONTEXT_OVERFLOW_CODES
    if status in (400, 413) and (overflow_code or CONTEXT_OVERFLOW.search(detail)):
        return _context_too_long(status)
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


# The most of an upstream's error message that reaches the admin and the person chatting.
UPSTREAM_MESSAGE_MAX_CHARS = 300
# What looks like a credential in an error body: the common key prefixes (OpenAI sk-, Groq gsk_,
# xAI xai-, Anthropic sk-ant-, Google AIza...), bearer tokens, and any long unbroken token.
_KEY_LIKE = re.compile(
    r"\b(?:sk|gsk|xai|pk|rk|key|token)[-_][A-Za-z0-9_\-]{6,}|\bAIza[A-Za-z0-9_\-]{20,}"
    r"|\bBearer\s+\S+|\b[A-Za-z0-9_\-+=]{32,}",
    re.IGNORECASE,
)


def _upstream_message(exc: BaseException) -> str:
    """Return the upstream's own error message (OpenAI error body `error.message`), or a short fallback."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"]
    message = getattr(exc, "message", None) or str(exc)
    return str(message)


@sensitive_variables("api_key")
def _scrub(text: str, api_key: str) -> str:
    """Return `text` cut to UPSTREAM_MESSAGE_MAX_CHARS, without the API key or anything that looks like a key.

    The whole text is scrubbed before it is cut, so a key straddling the cut
    cannot leave a readable prefix behind.
    """
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    text = _KEY_LIKE.sub("***", text)
    return text if len(text) <= UPSTREAM_MESSAGE_MAX_CHARS else text[: UPSTREAM_MESSAGE_MAX_CHARS - 1] + "…"


def _retry_after_s(response: httpx2.Response) -> float | None:
    """Return Retry-After in seconds (RFC 9110 §10.2.3, delta-seconds form; `retry-after-ms` first)."""
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None
