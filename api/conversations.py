"""The key's user's own history over the API: list conversations, read one, export one (the terminal client's needs).

Beyond OpenAI's endpoints, under /v1 like them and authenticated the same way (a personal key as
``Authorization: Bearer``; never a session cookie). Every read goes through `conversations.selectors`,
scoped to the key's user: another user's conversation answers 404, like a missing one. Shapes are
documented in docs/api-clients.md; a conversation is the record of the export schema (docs/export-format.md).

    GET /v1/conversations?limit=20&after=<id>     {"object": "list", "data": [...], "has_more": bool}
    GET /v1/conversations/<id>                    the export record, messages included
    GET /v1/conversations/<id>/export?format=markdown|json|text
"""

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from api.errors import ApiError, ApiErrorKind
from api.views import api_view, authenticate, method_check, with_cors
from conversations import selectors
from conversations.models import Conversation
from transfer import export

LIST_DEFAULT = 20
LIST_MAX = 100
# The export formats, as `format=` names them, and their content types.
EXPORT_CONTENT_TYPES = {
    "markdown": "text/markdown; charset=utf-8",
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
}


def conversation_summary(conversation: Conversation) -> dict[str, Any]:
    """Return one line of the list: ``{"id", "object", "title", "persona" (slug or None), "created", "updated"}``."""
    return {
        "id": str(conversation.public_id),
        "object": "conversation",
        "title": conversation.title,
        "persona": conversation.persona.slug if conversation.persona else None,
        "created": export.iso_utc(conversation.created_at),
        "updated": export.iso_utc(conversation.updated_at),
    }


@api_view
async def conversation_list(request: HttpRequest) -> HttpResponse:
    """List the key's user's unarchived conversations, latest activity first.

    Query: ``limit`` (1 to 100, default 20); ``after``: the last id of the previous page.
    Errors (OpenAI error objects): 401/403 as every /v1 endpoint; 400 naming ``limit`` or ``after``.
    """
    method_check(request, "GET")
    user = await authenticate(request)
    body = await database_sync_to_async(_list)(
        user=user, limit=_limit(request.GET.get("limit")), after=request.GET.get("after")
    )
    return with_cors(request, JsonResponse(body, json_dumps_params={"ensure_ascii": False}))


@api_view
async def conversation_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """Return one of the key's user's conversations with its shown messages, oldest first (the export record).

    Errors: 401/403 as every /v1 endpoint; 404 for another user's or a missing conversation.
    """
    method_check(request, "GET")
    user = await authenticate(request)
    record = await database_sync_to_async(_record)(user=user, public_id=public_id)
    return with_cors(request, JsonResponse(record, json_dumps_params={"ensure_ascii": False}))


@api_view
async def conversation_export(request: HttpRequest, public_id: str) -> HttpResponse:
    """Return one conversation as the page's export does: ``format`` markdown (default), json or text.

    Errors: 401/403 as every /v1 endpoint; 404 as above; 400 naming ``format``.
    """
    fmt = request.GET.get("format", "markdown")
    method_check(request, "GET")
    user = await authenticate(request)
    if fmt not in EXPORT_CONTENT_TYPES:
        raise ApiError(
            ApiErrorKind.INVALID_REQUEST,
            _("Unknown format “%(format)s”: use markdown, json or text.") % {"format": fmt[:20]},
            param="format",
        )
    body = await database_sync_to_async(_export)(user=user, public_id=public_id, fmt=fmt)
    return with_cors(request, HttpResponse(body, content_type=EXPORT_CONTENT_TYPES[fmt]))


def _list(*, user: User, limit: int, after: str | None) -> dict[str, Any]:
    before = None
    if after:
        try:
            last = selectors.conversation_get_for_user(user=user, public_id=after)
        except Conversation.DoesNotExist:
            raise ApiError(
                ApiErrorKind.INVALID_REQUEST, _("“after” is not one of your conversations."), param="after"
            ) from None
        before = (last.updated_at, last.public_id)
    page = list(
        selectors.conversation_list_for_user(
            user=user, limit=limit + 1, before=before, with_persona=True, organized=True
        )
    )
    data = [conversation_summary(conversation) for conversation in page[:limit]]
    return {"object": "list", "data": data, "has_more": len(page) > limit}


def _record(*, user: User, public_id: str) -> dict[str, Any]:
    conversation = _owned(user, public_id)
    return export.conversation_record(conversation, selectors.message_list_for_conversation(conversation=conversation))


def _export(*, user: User, public_id: str, fmt: str) -> bytes:
    conversation = _owned(user, public_id)
    messages = list(selectors.message_list_for_conversation(conversation=conversation))
    if fmt == "json":
        return export.conversation_json(conversation, messages, exported_at=timezone.now())
    if fmt == "markdown":
        return export.conversation_markdown(conversation, messages).encode()
    return export.conversation_text(conversation, messages).encode()


def _owned(user: User, public_id: str) -> Conversation:
    try:
        return selectors.conversation_get_for_user(user=user, public_id=public_id)
    except Conversation.DoesNotExist:
        raise ApiError(
            ApiErrorKind.NOT_FOUND, _("There is no such conversation in your history."), code="conversation_not_found"
        ) from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return LIST_DEFAULT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_MAX:
        raise ApiError(
            ApiErrorKind.INVALID_REQUEST,
            _("“limit” must be a whole number from 1 to %(max)d.") % {"max": LIST_MAX},
            param="limit",
        )
    return limit
