"""The site's HTTP API as the client uses it: OpenAI's endpoints plus the site's conversation endpoints.

Everything goes through one ``openai.OpenAI`` client (base URL ``<site>/v1``, ``Authorization: Bearer
<key>``), so authentication, timeouts and error bodies are handled once. The endpoints are documented
in the site's ``docs/api.md`` and ``docs/api-clients.md``: ``GET /v1/models``,
``POST /v1/chat/completions`` (the response header ``X-Conversation-Id`` names the conversation; sent
back as a request header it continues it), ``GET /v1/conversations``, ``GET /v1/conversations/<id>``
and ``GET /v1/conversations/<id>/export``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import openai

from .config import Credentials

CONVERSATION_HEADER = "X-Conversation-Id"
# A reply may take minutes; the connection itself must open quickly.
TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10.0


class SiteError(Exception):
    """Anything that went wrong talking to the site, as one line a person can act on."""


@dataclass(frozen=True)
class Persona:
    """One model the key's user may chat with (``id`` is the persona's slug)."""

    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class ConversationSummary:
    """One line of the user's history."""

    id: str
    title: str
    persona: str
    updated_at: str


@dataclass
class Reply:
    """A reply being streamed: its conversation, and, once it ends, the finish reason."""

    conversation_id: str | None
    finish_reason: str | None = None


def error_line(error: BaseException, *, url: str = "") -> str:
    """Return one readable line for an exception raised while talking to the site (never a traceback)."""
    if isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        message = detail.get("message") or error.message or "no details"
        retry_after = error.response.headers.get("Retry-After")
        tail = f" (try again in {retry_after} s)" if retry_after else ""
        return f"Error {error.status_code}: {_one_line(str(message))}{tail}"
    if isinstance(error, openai.APITimeoutError):
        return f"The site {url} did not answer in time."
    if isinstance(error, openai.APIConnectionError):
        return f"Cannot reach {url or 'the site'}: {_one_line(str(error.__cause__ or error))}"
    if isinstance(error, openai.APIError):  # an error event in the middle of a stream
        return f"Error: {_one_line(error.message)}"
    if isinstance(error, SiteError):
        return str(error)
    return f"Unexpected error: {_one_line(str(error)) or type(error).__name__}"


def user_language() -> str:
    """Return the user's language as a language tag ("zh-CN") from LC_ALL, LC_MESSAGES or LANG; "" for C/POSIX."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            tag = value.split(".")[0].split("@")[0].replace("_", "-")
            return "" if tag in ("C", "POSIX") else tag
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Site:
    """A session with one site, as one user (the key's)."""

    def __init__(self, credentials: Credentials) -> None:
        self.url = credentials.url
        language = user_language()
        self._client = openai.OpenAI(
            base_url=f"{credentials.url}/v1",
            api_key=credentials.api_key,
            max_retries=0,
            timeout=openai.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            # The site's messages (errors, refusals) in the user's language, as its pages would be.
            default_headers={"Accept-Language": language} if language else None,
        )

    def close(self) -> None:
        self._client.close()

    def personas(self) -> list[Persona]:
        """Return the personas the user may chat with (``GET /v1/models``), in the site's order.

        Raises:
            openai.APIError: the site refused or could not be reached.
        """
        personas = []
        for model in self._client.models.list():
            extra = model.model_extra or {}
            personas.append(
                Persona(
                    id=model.id,
                    name=str(extra.get("name") or model.id),
                    description=str(extra.get("description") or ""),
                )
            )
        return personas

    def conversations(self, *, limit: int = 20) -> list[ConversationSummary]:
        """Return the user's latest conversations, newest first (``GET /v1/conversations``)."""
        page = self._get("/conversations", cast_to=object, params={"limit": limit})
        return [
            ConversationSummary(
                id=str(item["id"]),
                title=str(item.get("title") or ""),
                persona=str(item.get("persona") or ""),
                updated_at=str(item.get("updated") or ""),
            )
            for item in _data(page)
        ]

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """Return one conversation with its messages (``GET /v1/conversations/<id>``).

        Shape: the site's export record, ``{"id", "title", "persona": {"slug", "name", ...} or None,
        "messages": [{"role", "content", "status", ...}]}``.
        """
        result = self._get(f"/conversations/{quote(conversation_id, safe='')}", cast_to=object)
        if not isinstance(result, dict):
            raise SiteError("The site answered something that is not a conversation.")
        return result

    def export_markdown(self, conversation_id: str) -> str:
        """Return a conversation as Markdown (``GET /v1/conversations/<id>/export?format=markdown``)."""
        path = f"/conversations/{quote(conversation_id, safe='')}/export"
        return str(self._get(path, cast_to=str, params={"format": "markdown"}))

    def _get(self, path: str, *, cast_to: type, params: dict[str, Any] | None = None) -> Any:
        return self._client.get(path, cast_to=cast_to, options={"params": params or {}})

    def chat(self, *, persona: str, message: str, conversation_id: str | None) -> tuple[Reply, Iterator[str]]:
        """Send one message; return the reply's record and an iterator over its text deltas.

        The iterator fills in ``Reply.finish_reason`` when the stream ends; closing
        it early (``.close()``, e.g. on Ctrl-C) closes the connection, which makes the site stop the
        upstream and keep the partial reply. Continues ``conversation_id`` when given.

        Raises:
            openai.APIError: the site refused the message (quota, unknown persona, ...) or failed.
        """
        headers = {CONVERSATION_HEADER: conversation_id} if conversation_id else {}
        raw = self._client.chat.completions.with_raw_response.create(
            model=persona,
            messages=[{"role": "user", "content": message}],
            stream=True,
            extra_headers=headers,
        )
        reply = Reply(conversation_id=raw.headers.get(CONVERSATION_HEADER) or conversation_id)
        stream = raw.parse()

        def deltas() -> Iterator[str]:
            with stream:
                for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield choice.delta.content
                        if choice.finish_reason:
                            reply.finish_reason = choice.finish_reason

        return reply, deltas()


def _data(page: Any) -> list[dict[str, Any]]:
    items = page.get("data") if isinstance(page, dict) else None
    if not isinstance(items, list):
        raise SiteError("The site answered something that is not a list.")
    return [item for item in items if isinstance(item, dict) and "id" in item]
