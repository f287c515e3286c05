"""The API's refusals and failures: one typed error with its HTTP status and OpenAI error object.

Every face of the API (HTTP /v1, gRPC) reports problems as an `ApiError`;
the kinds map to HTTP statuses here and to gRPC codes where gRPC is served.
The object shape is the OpenAI API reference's ("Error codes",
https://platform.openai.com/docs/guides/error-codes):
`{"error": {"message", "type", "param", "code"}}`. The message is the same
translated sentence the chat page shows for the same problem.
"""

from enum import StrEnum

from django.core.exceptions import ValidationError

import llm
from conversations.quotas import QuotaExceeded


class ApiErrorKind(StrEnum):
    """What went wrong, in terms a caller can branch on; `STATUS` gives each one's HTTP status."""

    INVALID_REQUEST = "invalid_request"
    CONTEXT_TOO_LONG = "context_too_long"
    TOO_LARGE = "too_large"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"


STATUS: dict[ApiErrorKind, int] = {
    ApiErrorKind.INVALID_REQUEST: 400,
    ApiErrorKind.CONTEXT_TOO_LONG: 400,
    ApiErrorKind.TOO_LARGE: 413,
    ApiErrorKind.UNAUTHENTICATED: 401,
    ApiErrorKind.FORBIDDEN: 403,
    ApiErrorKind.NOT_FOUND: 404,
    ApiErrorKind.METHOD_NOT_ALLOWED: 405,
    ApiErrorKind.RATE_LIMITED: 429,
    ApiErrorKind.SERVER_ERROR: 500,
    ApiErrorKind.UPSTREAM_ERROR: 502,
    ApiErrorKind.UPSTREAM_UNAVAILABLE: 503,
    ApiErrorKind.UPSTREAM_TIMEOUT: 504,
}

# The error object's "type", as OpenAI names them.
_TYPE: dict[ApiErrorKind, str] = {
    ApiErrorKind.INVALID_REQUEST: "invalid_request_error",
    ApiErrorKind.CONTEXT_TOO_LONG: "invalid_request_error",
    ApiErrorKind.TOO_LARGE: "invalid_request_error",
    ApiErrorKind.UNAUTHENTICATED: "authentication_error",
    ApiErrorKind.FORBIDDEN: "permission_error",
    ApiErrorKind.NOT_FOUND: "invalid_request_error",
    ApiErrorKind.METHOD_NOT_ALLOWED: "invalid_request_error",
    ApiErrorKind.RATE_LIMITED: "rate_limit_error",
    ApiErrorKind.SERVER_ERROR: "server_error",
    ApiErrorKind.UPSTREAM_ERROR: "api_error",
    ApiErrorKind.UPSTREAM_UNAVAILABLE: "api_error",
    ApiErrorKind.UPSTREAM_TIMEOUT: "api_error",
}

# The upstream's error kinds (llm.ErrorKind) as the API reports them.
_UPSTREAM_KIND: dict[llm.ErrorKind, ApiErrorKind] = {
    llm.ErrorKind.TIMEOUT: ApiErrorKind.UPSTREAM_TIMEOUT,
    llm.ErrorKind.UNAVAILABLE: ApiErrorKind.UPSTREAM_UNAVAILABLE,
    llm.ErrorKind.RATE_LIMITED: ApiErrorKind.UPSTREAM_UNAVAILABLE,
    llm.ErrorKind.QUOTA: ApiErrorKind.UPSTREAM_UNAVAILABLE,
    llm.ErrorKind.CONTEXT_TOO_LONG: ApiErrorKind.CONTEXT_TOO_LONG,
}


class ApiError(Exception):
    """A request refused or a completion failed.

    Attributes:
        kind: the `ApiErrorKind`; `status` is its HTTP status.
        message: a translated sentence for the caller (the chat page's wording).
        param: the request field at fault ("messages", "model", "messages[2].role"), or None.
        code: a machine-readable detail: OpenAI's code where one exists
            ("invalid_api_key", "model_not_found", "context_length_exceeded"),
            the site's limit ("daily_tokens", "sends_per_minute",
            "concurrent_replies") or the upstream's `llm.ErrorKind`.
        retry_after_s: whole seconds until a refused request may succeed (429), else None.
    """

    def __init__(
        self,
        kind: ApiErrorKind,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return STATUS[self.kind]

    def as_object(self) -> dict:
        """Return the OpenAI error object: {"error": {"message", "type", "param", "code"}}."""
        return {"error": {"message": self.message, "type": _TYPE[self.kind], "param": self.param, "code": self.code}}

    @classmethod
    def from_upstream(cls, error: llm.LLMError) -> "ApiError":
        """Return the API's error for an upstream failure (502, 503, 504, or 400 for a context too long)."""
        kind = _UPSTREAM_KIND.get(error.kind, ApiErrorKind.UPSTREAM_ERROR)
        code = "context_length_exceeded" if kind == ApiErrorKind.CONTEXT_TOO_LONG else str(error.kind)
        return cls(kind, error.message, param="messages" if kind == ApiErrorKind.CONTEXT_TOO_LONG else None, code=code)

    @classmethod
    def from_validation(cls, error: ValidationError, *, param: str | None = "messages") -> "ApiError":
        """Return the API's error for a send the site refused (`conversations.services.reply_request`).

        A quota or rate limit is 429 with its wait (1 s for replies at once); a context too long is 400
        context_length_exceeded; anything else is 400 naming `param`.
        """
        message = " ".join(error.messages)
        if isinstance(error, QuotaExceeded):
            # Replies at once free up when one ends, at no known time: a second is a fair time to ask again.
            wait_s = error.retry_after_s if error.retry_after_s is not None else 1
            return cls(ApiErrorKind.RATE_LIMITED, message, code=error.limit, retry_after_s=wait_s)
        code = getattr(error, "code", None)
        if code == "context_too_large":
            return cls(ApiErrorKind.CONTEXT_TOO_LONG, message, param="messages", code="context_length_exceeded")
        return cls(ApiErrorKind.INVALID_REQUEST, message, param=param, code=code)
