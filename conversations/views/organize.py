"""Pages that organise the sidebar: pin and unpin a conversation, move it into a folder or out; a folder's
page of conversations, renaming and deleting a folder.

After a change the sidebar is shown again: htmx refreshes the page (the
sidebar, the header's buttons and the open conversation all change), a
plain form post redirects back.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from conversations import organizing, selectors, sidebar
from conversations.models import Conversation, Folder
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
    """Delete one of the user's folders, empty or not; its conversations go back to the dated list, none is deleted."""
    folder = get_owned_or_404(selectors.folder_get_for_user, user=request.user, public_id=public_id)
    organizing.folder_delete(folder=folder)
    return _done(request)


@login_required
@require_http_methods(["GET"])
def pinned_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show a page of the user's pinned conversations after `before` (a cursor; none: the first page).

    htmx (the sidebar's "Show more"): the conversations and the next "Show
    more", in place of the one that asked. Plain: a page of them. A cursor
    this site did not write: 400.
    """
    try:
        pinned = sidebar.pinned_page(user=request.user, cursor=request.GET.get("before", ""))
    except sidebar.InvalidCursor:
        return HttpResponseBadRequest(_("This link to more conversations is not valid."))
    context = {"pinned": pinned}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "conversations/partials/pinned_rows.html", context)
    partial = "conversations/partials/pinned_page.html"
    return render_page(
        request, "conversations/panel.html", partial, {**context, "panel": partial, "page_title": _("Pinned")}
    )


@login_required
@require_http_methods(["GET"])
def folder_detail(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show a page of one of the user's folders' conversations after `before` (a cursor; none: the first page).

    htmx (the sidebar's "Show more"): the conversations and the next "Show
    more", in place of the one that asked. Plain: the folder's page, with
    its rename and delete buttons. A cursor this site did not write: 400.
    """
    folder = get_owned_or_404(selectors.folder_get_for_user, user=request.user, public_id=public_id)
    try:
        group = sidebar.folder_page(user=request.user, folder=folder, cursor=request.GET.get("before", ""))
    except sidebar.InvalidCursor:
        return HttpResponseBadRequest(_("This link to more conversations is not valid."))
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "conversations/partials/folder_rows.html", {"group": group})
    partial = "conversations/partials/folder_page.html"
    context = {"group": group, "panel": partial, "page_title": folder.name}
    return render_page(request, "conversations/panel.html", partial, context)


@login_required
@require_http_methods(["GET", "POST"])
def folder_rename(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Rename one of the user's folders: GET shows the form, POST `name` saves it.

    htmx (`place` "sidebar"): the form opens under the folder's name, and the
    renamed folder (or, with `cancel`, the unchanged one) replaces the whole
    group. Plain: a form page, then back to the folder's page. A refused
    name shows the form again with the reason (plain: 400).
    """
    folder = get_owned_or_404(selectors.folder_get_for_user, user=request.user, public_id=public_id)
    data = request.POST if request.method == "POST" else request.GET
    place = "sidebar" if request.htmx and data.get("place") == "sidebar" else "page"
    context = {"folder": folder, "place": place, "name_value": folder.name, "error": ""}
    if request.method == "GET" and not (place == "sidebar" and "cancel" in request.GET):
        return _folder_rename_form(request, context)
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            organizing.folder_rename(folder=folder, name=name)
        except ValidationError as exc:
            return _folder_rename_form(request, {**context, "name_value": name, "error": " ".join(exc.messages)}, 400)
        if place == "page":
            return redirect("conversations:folder-detail", public_id=folder.public_id)
    return _folder_group(request, folder)


def _folder_rename_form(request: AuthenticatedHttpRequest, context: dict, status: int = 200) -> HttpResponse:
    partial = "conversations/partials/folder_rename_form.html"
    if context["place"] == "sidebar":
        # htmx 2 swaps no 4xx response by default: a refused name answers 200 with the form and its message.
        return render(request, partial, context)
    context = {**context, "panel": partial, "page_title": _("Rename folder")}
    return render_page(request, "conversations/panel.html", partial, context, status)


def _folder_group(request: AuthenticatedHttpRequest, folder: Folder) -> HttpResponse:
    """The folder's group of the sidebar, in place of the whole group (htmx)."""
    context = {"group": sidebar.folder_page(user=request.user, folder=folder)}
    response = render(request, "conversations/partials/folder_group.html", context)
    response["HX-Retarget"] = f"#folder-{folder.public_id}"
    response["HX-Reswap"] = "outerHTML"
    return response
