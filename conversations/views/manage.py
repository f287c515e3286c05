"""Pages that manage the list of conversations: its later pages, rename, archive, delete, the archive page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations import fragments, selectors, services, sidebar
from conversations.models import Conversation
from conversations.views.shortcuts import AuthenticatedHttpRequest, HtmxHttpRequest, get_owned_or_404, render_page

# Where a rename form sits: a sidebar entry, or the heading of the open conversation.
RENAME_PLACES = ("sidebar", "header")


def _page_or_400(request: AuthenticatedHttpRequest, *, archived: bool) -> sidebar.Page | HttpResponse:
    try:
        return sidebar.conversation_page(user=request.user, cursor=request.GET.get("before", ""), archived=archived)
    except sidebar.InvalidCursor:
        return HttpResponseBadRequest(_("That link to older conversations is broken."), content_type="text/plain")


def _current_id(request: HtmxHttpRequest, conversation: Conversation):
    """Return the conversation's public id if the page that sent this htmx request shows it, else None."""
    if request.htmx and request.htmx.current_url_abs_path == conversation.get_absolute_url():
        return conversation.public_id
    return None


def _next_url(request: HttpRequest, default: str) -> str:
    url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return url
    return default


@login_required
@require_GET
def conversation_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the page of the sidebar's list after `?before=<cursor>`.

    htmx (the sidebar's "Older conversations" sentinel, on scroll): the rows
    and the next sentinel. Plain GET (no JavaScript): the whole page, its
    sidebar listing that page.
    """
    page = _page_or_400(request, archived=False)
    if isinstance(page, HttpResponse):
        return page
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "conversations/partials/conversation_rows.html", {"page": page})
    context = {"sidebar": page, "panel": "conversations/partials/older.html", "page_title": _("Conversations")}
    return render(request, "conversations/panel.html", context)


@login_required
@require_GET
def conversation_archived_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the user's archived conversations, grouped by date like the sidebar, newest first."""
    page = _page_or_400(request, archived=True)
    if isinstance(page, HttpResponse):
        return page
    if request.htmx and request.GET.get("before") and not request.htmx.history_restore_request:
        return render(request, "conversations/partials/conversation_rows.html", {"page": page})
    context = {"archived_page": page, "panel": "conversations/partials/archived.html", "page_title": _("Archived")}
    return render_page(request, "conversations/panel.html", "conversations/partials/archived.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_rename(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Rename a conversation: GET shows the form, POST saves the title.

    htmx: the form replaces the sidebar entry or the heading (`place`), and a
    saved title comes back as the updated entry or heading (the other one
    swapped out of band), and reaches the conversation's other tabs. Plain:
    a form page, then back to the conversation. A refused title shows the
    form again with the reason.
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    data = request.POST if request.method == "POST" else request.GET
    asked = data.get("place", "")
    place = asked if request.htmx and asked in RENAME_PLACES else "page"
    context = {"conversation": conversation, "place": place, "title_value": conversation.title, "error": ""}
    if request.method == "GET":
        if place != "page" and "cancel" in request.GET:
            return _renamed(request, conversation, place)
        return _rename_form(request, context)
    title = request.POST.get("title", "")
    try:
        services.conversation_rename(conversation=conversation, title=title)
    except ValidationError as exc:
        return _rename_form(request, {**context, "title_value": title, "error": " ".join(exc.messages)}, status=400)
    if place == "page":
        return redirect(conversation.get_absolute_url())
    return _renamed(request, conversation, place)


def _rename_form(request: AuthenticatedHttpRequest, context: dict, status: int = 200) -> HttpResponse:
    if context["place"] != "page":
        # htmx 2 swaps no 4xx response by default: a refused title answers 200 with the form and its message.
        return render(request, "conversations/partials/rename_form.html", context)
    context = {**context, "panel": "conversations/partials/rename_form.html", "page_title": _("Rename")}
    return render_page(request, "conversations/panel.html", "conversations/partials/rename_form.html", context, status)


def _renamed(request: HtmxHttpRequest, conversation: Conversation, place: str) -> HttpResponse:
    context = {"conversation": conversation, "place": place, "current_id": _current_id(request, conversation)}
    if place == "header":  # The sidebar's entry shows its own title.
        context["title_html"] = fragments.title_html(conversation_id=conversation.public_id, title=conversation.title)
    return render(request, "conversations/partials/renamed.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_delete(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Delete a conversation: GET asks for confirmation, POST deletes it (stopping its reply) and goes to a new chat."""
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    if request.method == "GET":
        context = {"conversation": conversation, "page_title": _("Delete conversation")}
        partial = "conversations/partials/delete_confirm.html"
        return render_page(request, "conversations/panel.html", partial, {**context, "panel": partial})
    title = str(conversation.title or _("New chat"))
    services.conversation_delete(conversation=conversation)
    messages.success(request, _("Deleted “%(title)s”.") % {"title": title})
    url = "/"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def conversation_archive(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Archive a conversation: it leaves the sidebar for the archive page."""
    return _set_archived(request, public_id, archived=True)


@login_required
@require_POST
def conversation_unarchive(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Bring an archived conversation back to the sidebar."""
    return _set_archived(request, public_id, archived=False)


def _set_archived(request: AuthenticatedHttpRequest, public_id, *, archived: bool) -> HttpResponse:
    """htmx: out-of-band swaps only (the entry leaves its list, the header's actions flip). Plain: go back."""
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    services.conversation_set_archived(conversation=conversation, archived=archived)
    if not request.htmx:
        return redirect(_next_url(request, conversation.get_absolute_url()))
    context = {"conversation": conversation, "current_id": _current_id(request, conversation)}
    if not archived:  # Back in the sidebar, at its place by date: show the sidebar's first page again.
        context["sidebar"] = sidebar.conversation_page(user=request.user)
    return render(request, "conversations/partials/archived_changed.html", context)
