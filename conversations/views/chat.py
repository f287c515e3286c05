from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations.quotas import quota_status
from conversations import bubbles, events, selectors, services, sidebar, streaming
from conversations.forms import ConversationCreateForm
from conversations.models import Conversation, Message
from personas.selectors import persona_list_active


def render_page(request: HttpRequest, template: str, partial: str, context: dict, status: int = 200) -> HttpResponse:
    """Render the whole page, or only its main panel for an htmx request (one view, two renderings)."""
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, partial, context, status=status)
    context["sidebar"] = sidebar.conversation_page(user=request.user)
    return render(request, template, context, status=status)


@login_required
@require_GET
def conversation_new(request: HttpRequest) -> HttpResponse:
    """Show the persona picker that starts a new chat."""
    context = {"personas": list(persona_list_active()), "form": ConversationCreateForm()}
    return render_page(request, "conversations/new.html", "conversations/partials/persona_picker.html", context)


@login_required
@require_POST
def conversation_create(request: HttpRequest) -> HttpResponse:
    """Start a chat with the posted persona and go to it."""
    form = ConversationCreateForm(request.POST)
    if not form.is_valid():
        context = {"personas": list(persona_list_active()), "form": form}
        return render_page(
            request, "conversations/new.html", "conversations/partials/persona_picker.html", context, status=400
        )
    conversation = services.conversation_create(owner=request.user, persona=form.cleaned_data["persona"])
    url = conversation.get_absolute_url()
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def conversation_detail(request: HttpRequest, public_id) -> HttpResponse:
    """Show one of the user's conversations with its messages and the composer."""
    try:
        conversation = selectors.conversation_get_for_user(user=request.user, public_id=public_id)
    except Conversation.DoesNotExist:
        raise Http404 from None
    services.replies_interrupt_stale(conversation=conversation)  # A dead worker's reply is not "streaming" forever.
    messages = list(selectors.message_list_for_conversation(conversation=conversation))
    context = {
        "conversation": conversation,
        "message_list": bubbles.with_versions(conversation=conversation, messages=messages),
        "context_budget": streaming.context_budget(conversation=conversation),
        "quota": quota_status(user=request.user),
    }
    return render_page(request, "conversations/detail.html", "conversations/partials/conversation.html", context)


@login_required
@require_POST
def message_show(request: HttpRequest, public_id, message_id) -> HttpResponse:
    """Show another version of a message (‹ 1/2 ›) in every tab of the conversation."""
    try:
        conversation = selectors.conversation_get_for_user(user=request.user, public_id=public_id)
        message = selectors.message_get_for_user(user=request.user, conversation=conversation, public_id=message_id)
    except (Conversation.DoesNotExist, Message.DoesNotExist):
        raise Http404 from None
    try:
        services.message_version_show(message=message)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=409, content_type="text/plain; charset=utf-8")
    html = bubbles.message_list_html(conversation=conversation)
    changed: events.MessagesChanged = {"type": "messages.changed", "html": html}
    async_to_sync(get_channel_layer().group_send)(events.conversation_group(conversation.public_id), changed)
    return HttpResponse(html) if request.htmx else redirect(conversation.get_absolute_url())
