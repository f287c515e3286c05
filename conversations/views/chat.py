import re
from urllib.parse import urlencode
from uuid import UUID

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from conversations import fragments, generation, rendering, selectors, services, sidebar, upstream
from conversations.dom import message_dom_id
from conversations.forms import ConversationCreateForm
from conversations.models import Conversation, Message
from conversations.quotas import quota_status
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from personas.models import Persona
from personas.selectors import chat_model_list_for_persona, persona_list_active

# A message page's cursor: the public id, as 32 hex digits, of the oldest message the page after it shows.
_CURSOR = re.compile(r"[0-9a-f]{32}")


@login_required
@require_GET
def conversation_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the persona picker, or with `?persona=<slug>` a new chat with that persona, not yet created.

    The chat is created when its first message is sent (`conversation_create`),
    so picking a persona and leaving saves nothing. An unknown or inactive
    persona shows the picker with the reason.
    """
    if "persona" not in request.GET:
        context = {
            "personas": list(persona_list_active(user=request.user)),
            "form": ConversationCreateForm(user=request.user),
        }
        return render_page(request, "conversations/new.html", "conversations/partials/persona_picker.html", context)
    form = ConversationCreateForm(request.GET, user=request.user)
    if not form.is_valid():
        return _picker(request, form)
    return _new_chat(request, persona=form.cleaned_data["persona"])


def _picker(request: AuthenticatedHttpRequest, form: ConversationCreateForm) -> HttpResponse:
    context = {"personas": list(persona_list_active(user=request.user)), "form": form}
    return render_page(
        request, "conversations/new.html", "conversations/partials/persona_picker.html", context, status=400
    )


def _new_chat(
    request: AuthenticatedHttpRequest, *, persona: Persona, message: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    """Render a new chat with `persona`: its greeting and a composer whose first message creates the chat."""
    context = {
        "persona": persona,
        "greeting_html": rendering.render_markdown(persona.greeting) if persona.greeting.strip() else "",
        "context_budget": upstream.context_budget_for_new(persona=persona, user_id=request.user.pk),
        "quota": quota_status(user=request.user),
        "message_value": message,
        "error": error,
        "page_title": _("New chat"),
    }
    return render_page(
        request, "conversations/new_chat.html", "conversations/partials/new_chat.html", context, status=status
    )


@login_required
@require_POST
async def conversation_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Create a chat with its first message (`persona`, `message`, `idempotency_key`) and start the reply.

    htmx (the new chat's composer): the conversation replaces the main panel
    and the address becomes its URL; a refused message answers 200 with the
    reason only (`fragments.send_outcome_html`), so the composer keeps the text;
    so is a persona gone meanwhile. Plain POST: a redirect to the conversation,
    or the new chat again with the text and the reason (400); an unknown
    persona shows the picker (400).

    Async so that the reply's task runs on the server's event loop, like a
    reply asked for over the websocket, and outlives the request.
    """
    started, response = await sync_to_async(_conversation_start)(request)
    if started is not None:
        generation.start_reply(started.job)
    return response


def _conversation_start(request: AuthenticatedHttpRequest) -> tuple[services.StartedConversation | None, HttpResponse]:
    form = ConversationCreateForm(request.POST, user=request.user)
    text = request.POST.get("message", "")
    key = request.POST.get("idempotency_key", "")
    if not form.is_valid():  # The persona went away since the page was opened, or a forged post.
        if request.htmx:
            return None, _refused(key, " ".join(str(error) for error in form.errors.get("persona", [])))
        return None, _picker(request, form)
    persona = form.cleaned_data["persona"]
    try:
        started = services.conversation_start(
            user=request.user,
            persona=persona,
            text=text,
            idempotency_key=key,
            attachments=[a for a in request.POST.get("attachments", "").split(",") if a],
        )
    except ValidationError as exc:
        reason = " ".join(exc.messages)
        if request.htmx:
            return None, _refused(key, reason)
        return None, _new_chat(request, persona=persona, message=text, error=reason, status=400)
    except services.DuplicateSend as exc:  # A double submit: show the chat the first one started.
        assert exc.conversation is not None
        return None, _conversation_opened(request, exc.conversation)
    return started, _conversation_opened(request, started.conversation)


def _refused(key: str, reason: str) -> HttpResponse:
    """Answer htmx with the refusal alone: the composer keeps the text, the reason shows beside it."""
    response = HttpResponse(fragments.send_outcome_html(accepted=False, key=key, reason=reason))
    response["HX-Reswap"] = "none"
    return response


def _conversation_opened(request: AuthenticatedHttpRequest, conversation: Conversation) -> HttpResponse:
    """Answer a new chat's first send: its page (htmx: in the main panel, with the sidebar's list again)."""
    url = conversation.get_absolute_url()
    if not request.htmx:
        return redirect(url)
    context = {
        **_conversation_context(
            request, conversation, selectors.message_page_for_conversation(conversation=conversation)
        ),
        "sidebar": sidebar.conversation_page(user=request.user),
        "current_id": conversation.public_id,
    }
    response = render(request, "conversations/partials/conversation_opened.html", context)
    response["HX-Retarget"] = "#main"
    response["HX-Reswap"] = "innerHTML"
    response["HX-Push-Url"] = url
    return response


@login_required
@require_GET
def conversation_detail(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show one of the user's conversations: its latest messages (older ones load on scroll) and the composer.

    `?around=<message public id>` (a search hit's link) opens the page at
    that message when it is older than the latest page, so that its bubble
    is there; an unknown or hidden message is ignored.
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    services.replies_streaming_live(conversation=conversation)  # A dead worker's reply is not "streaming" forever.
    around = _message_or_none(request, conversation, request.GET.get("around", ""))
    if around is None:
        page = selectors.message_page_for_conversation(conversation=conversation)
    else:
        page = selectors.message_page_from(conversation=conversation, first=around)
    context = _conversation_context(request, conversation, page)
    return render_page(request, "conversations/detail.html", "conversations/partials/conversation.html", context)


def _conversation_context(
    request: AuthenticatedHttpRequest, conversation: Conversation, page: selectors.MessagePage
) -> dict:
    """Return what conversation.html shows: the page of bubbles, the lines under the composer, the persona choice."""
    usable = upstream.persona_usable(conversation=conversation)
    return {
        "conversation": conversation,
        "message_page": fragments.page_with_versions(conversation=conversation, page=page),
        "context_budget": upstream.context_budget(conversation=conversation) if usable else None,
        "quota": quota_status(user=request.user),
        **_model_picker(conversation),
        "persona_gone": not usable,
        "personas": [] if usable else list(persona_list_active(user=request.user)),
    }


@login_required
@require_POST
def conversation_persona(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Continue a chat whose persona is gone (an import, a persona or model removed) with an active `persona`.

    htmx: the header shows the new persona and the choice goes away, out of
    band, leaving the composer's text alone. Plain POST: back to the chat. An
    unknown or inactive persona answers the choice again with the reason
    (htmx: 200, so it is swapped in; plain: 400).
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    form = ConversationCreateForm(request.POST, user=request.user)
    if form.is_valid():
        conversation = services.conversation_persona_set(
            conversation=conversation, persona=form.cleaned_data["persona"]
        )
        if not request.htmx:
            return redirect(conversation.get_absolute_url())
        changed = {
            "conversation": conversation,
            "context_budget": upstream.context_budget(conversation=conversation),
            **_model_picker(conversation),
        }
        return render(request, "conversations/partials/persona_changed.html", changed)
    context: dict[str, object] = {
        "conversation": conversation,
        "personas": list(persona_list_active(user=request.user)),
        "choice_error": " ".join(str(error) for error in form.errors.get("persona", [])),
        "oob": True,
    }
    if request.htmx:
        return render(request, "conversations/partials/persona_choice.html", context)
    return render_page(
        request,
        "conversations/panel.html",
        "conversations/partials/persona_choice.html",
        {**context, "oob": False, "panel": "conversations/partials/persona_choice.html", "page_title": _("Persona")},
        status=400,
    )


def _model_picker(conversation: Conversation) -> dict:
    """Return the model picker's context: the model the chat replies with, and those it may switch to."""
    if conversation.persona is None:
        return {}
    models = [m for m in chat_model_list_for_persona(persona=conversation.persona) if m.enabled]
    return {"chat_model": upstream.chat_model_for(conversation), "chat_models": models}


@login_required
@require_POST
def conversation_model(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Switch the chat to the posted model (`model`: a ChatModel pk offered for its persona) and temperature.

    `temperature`: 0-2, or empty for the persona's; each field is optional.
    htmx: the picker again, and the context budget line for the new model;
    plain: back to the chat. 400 with the reason when the model is not
    offered or the temperature is not one; then nothing is changed.
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    try:
        with transaction.atomic():
            if "temperature" in request.POST:
                services.conversation_set_temperature(
                    conversation=conversation, temperature=request.POST["temperature"]
                )
            if "model" in request.POST:
                services.conversation_set_model(conversation=conversation, chat_model_id=request.POST["model"])
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
