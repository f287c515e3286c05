"""Pages that organise the sidebar: pin and unpin a conversation, move it into a folder or out, delete a folder.

After a change the sidebar is shown again: htmx refreshes the page (the
sidebar, the header's buttons and the open conversation all change), a
plain form post redirects back.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from conversations import organizing, selectors
from conversations.models import Conversation
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page


def _done(request: AuthenticatedHttpRequest, conversation: Conversation | None = None) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect(conversation.get_absolute_url() if conversation else "/")


@login_required
@require_POST
def conversation_pin(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Pin a conversation to the top of the sidebar; POST `pinned` "0" unpins it."""
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    organizing.conversation_set_pinned(conversation=conversation, pinned=request.POST.get("pinned", "1") != "0")
    return _done(request, conversation)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_folder(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Choose a conversation's folder: GET shows the menu; POST `folder` (a folder id, "" for none) or `new_folder`.

    A new folder's name, if given, wins over the list. A refused name shows the menu again with the reason (400).
    """
    conversation = get_owned_or_404(selectors.conversation_get_for_user, user=request.user, public_id=public_id)
    error = ""
    if request.method == "POST":
        try:
            new_name = request.POST.get("new_folder", "").strip()
            if new_name:
                folder = organizing.folder_get_or_create(owner=request.user, name=new_name)
            elif request.POST.get("folder"):
                folder = get_owned_or_404(
                    selectors.folder_get_for_user, user=request.user, public_id=request.POST["folder"]
                )
            else:
                folder = None
            organizing.conversation_move(conversation=conversation, folder=folder)
            return _done(request, conversation)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    partial = "conversations/partials/folder_menu.html"
    context = {
        "conversation": conversation,
        "folders": list(selectors.folder_list_for_user(user=request.user)),
        "error": error,
        "panel": partial,
        "page_title": _("Move to folder"),
    }
    # htmx 2 swaps no 4xx response by default: a refused name answers 200 to htmx.
    status = 400 if error and not request.htmx else 200
    return render_page(request, "conversations/panel.html", partial, context, status)


@login_required
@require_POST
def folder_delete(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Delete one of the user's folders; its conversations go back to the dated list."""
    folder = get_owned_or_404(selectors.folder_get_for_user, user=request.user, public_id=public_id)
    organizing.folder_delete(folder=folder)
    return _done(request)
