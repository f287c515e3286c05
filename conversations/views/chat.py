import re
from urllib.parse import urlencode
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations import fragments, selectors, services, upstream
from conversations.dom import message_dom_id
from conversations.forms import ConversationCreateForm
from conversations.models import Conversation, Message
from conversations.quotas import quota_status
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from personas.selectors import chat_model_list_for_persona, persona_list_active

# A message page's cursor: the public id, as 32 hex digits, of the oldest message the page after it shows.
_CURSOR = re.compile(r"[0-9a-f]{32}")


@login_required
@require_GET
def conversation_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the persona picker that starts a new chat."""
    context = {
        "personas": list(persona_list_active(user=request.user)),
        "form": ConversationCreateForm(user=request.user),
    }
    return render_page(request, "conversations/new.html", "conversations/partials/persona_picker.html", context)


@login_required
@require_POST
def conversation_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Start a chat with the posted persona and go to it."""
    form = ConversationCreateForm(request.POST, user=request.user)
    if not form.is_valid():
        context = {"personas": list(persona_list_active(user=request.user)), "form": form}
        return render_page(
            request, "conversations/new.html", "conversations/partials/persona_picker.html", context, status=400
        )
    conversation = services.conversation_create(owner=request.user, persona=form.cleaned_data["persona"])
    url = conversation.get_absolute_url()
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def conversation_detail(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show one of the user's conversations: its latest messages (older ones load on scroll) and the composer.

    `?around=<message public id>` (a search hit's link) opens the page at
    that message when it is older than the latest page, so that its bubble
    is there; an unknown or hidden message is ignored.
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    services.replies_interrupt_stale(conversation=conversation)  # A dead worker's reply is not "streaming" forever.
    around = _message_or_none(request, conversation, request.GET.get("around", ""))
    if around is None:
        page = selectors.message_page_for_conversation(conversation=conversation)
    else:
        page = selectors.message_page_from(conversation=conversation, first=around)
    context = {
        "conversation": conversation,
        "message_page": fragments.page_with_versions(conversation=conversation, page=page),
        "context_budget": upstream.context_budget(conversation=conversation),
        "quota": quota_status(user=request.user),
        **_model_picker(conversation),
    }
    return render_page(request, "conversations/detail.html", "conversations/partials/conversation.html", context)


def _model_picker(conversation: Conversation) -> dict:
    """Return the model picker's context: the model the chat replies with, and those it may switch to."""
    if conversation.persona is None:
        return {}
    models = [m for m in chat_model_list_for_persona(persona=conversation.persona) if m.enabled]
    return {"chat_model": upstream.chat_model_for(conversation), "chat_models": models}


@login_required
@require_POST
def conversation_model(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Switch the chat to the posted model (`model`: a ChatModel pk offered for its persona).

    htmx: the picker again, and the context budget line for the new model;
    plain: back to the chat. 400 with the reason when the model is not offered.
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    try:
        services.conversation_set_model(conversation=conversation, chat_model_id=request.POST.get("model", ""))
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=400, content_type="text/plain; charset=utf-8")
    if not request.htmx:
        return redirect(conversation.get_absolute_url())
    context = {
        "conversation": conversation,
        "context_budget": upstream.context_budget(conversation=conversation),
        "quota": quota_status(user=request.user),
        "oob": True,
        **_model_picker(conversation),
    }
    return HttpResponse(
        render_to_string("conversations/partials/model_picker.html", context, request=request)
        + render_to_string("conversations/partials/composer_status.html", context)
    )


def _message_or_none(request: AuthenticatedHttpRequest, conversation: Conversation, public_id: str) -> Message | None:
    if not public_id:
        return None
    try:
        return selectors.message_get_for_user(user=request.user, conversation=conversation, public_id=public_id)
    except Message.DoesNotExist:
        return None


@login_required
@require_GET
def message_page(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show the page of messages before `?before=<cursor>` (a `MessagePage.older_cursor`).

    htmx (the sentinel at the top of the messages, on scroll): those bubbles,
    oldest first, under the next sentinel if older ones remain. Plain GET (no
    JavaScript): a redirect to the conversation opened at that page's first
    message. A cursor that is not 32 hex digits answers 400; one naming no
    message of this conversation, or another user's conversation, 404.
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    cursor = request.GET.get("before", "")
    if _CURSOR.fullmatch(cursor) is None:
        return HttpResponseBadRequest(_("That link to older messages is broken."), content_type="text/plain")
    before = get_owned_or_404(
        selectors.message_get_for_user, user=request.user, conversation=conversation, public_id=UUID(hex=cursor)
    )
    page = selectors.message_page_for_conversation(conversation=conversation, before=before)
    if not request.htmx:
        first = page.messages[0] if page.messages else before
        url = f"{conversation.get_absolute_url()}?{urlencode({'around': first.public_id})}"
        return redirect(f"{url}#{message_dom_id(first.public_id)}")
    return HttpResponse(fragments.message_page_html(conversation=conversation, page=page))


@login_required
@require_POST
def message_show(request: AuthenticatedHttpRequest, public_id, message_id) -> HttpResponse:
    """Show another version of a message (‹ 1/2 ›) in every tab of the conversation."""
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    message = get_owned_or_404(
        selectors.message_get_for_user, user=request.user, conversation=conversation, public_id=message_id
    )
    try:
        services.message_version_show(message=message)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=409, content_type="text/plain; charset=utf-8")
    if not request.htmx:
        return redirect(conversation.get_absolute_url())
    return HttpResponse(fragments.message_list_html(conversation=conversation))
