from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations import fragments, selectors, services, upstream
from conversations.forms import ConversationCreateForm
from conversations.quotas import quota_status
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from personas.selectors import persona_list_active


@login_required
@require_GET
def conversation_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the persona picker that starts a new chat."""
    context = {"personas": list(persona_list_active()), "form": ConversationCreateForm()}
    return render_page(request, "conversations/new.html", "conversations/partials/persona_picker.html", context)


@login_required
@require_POST
def conversation_create(request: AuthenticatedHttpRequest) -> HttpResponse:
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
def conversation_detail(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show one of the user's conversations with its messages and the composer."""
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    services.replies_interrupt_stale(conversation=conversation)  # A dead worker's reply is not "streaming" forever.
    messages = list(selectors.message_list_for_conversation(conversation=conversation))
    context = {
        "conversation": conversation,
        "message_list": fragments.with_versions(conversation=conversation, messages=messages),
        "context_budget": upstream.context_budget(conversation=conversation),
        "quota": quota_status(user=request.user),
    }
    return render_page(request, "conversations/detail.html", "conversations/partials/conversation.html", context)


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
