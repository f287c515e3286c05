"""Share links: the owner's share panel (share, share again, revoke), the shared page, and "continue this chat"."""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import site_settings
from conversations import selectors as conversation_selectors
from conversations import sidebar
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from sharing import selectors, services
from sharing.models import SharedConversation


@login_required
@require_http_methods(["GET", "POST"])
def share_manage(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Show the share panel of the user's conversation; POST `action` "share" (with `show_owner`) or "revoke".

    htmx gets the panel; a plain POST redirects back to it (post/redirect/get).
    """
    conversation = get_owned_or_404(
        conversation_selectors.conversation_get_for_user, user=request.user, public_id=public_id
    )
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "share":
            services.conversation_share(conversation=conversation, show_owner=request.POST.get("show_owner") == "on")
        elif action == "revoke":
            services.conversation_unshare(conversation=conversation)
        else:
            return HttpResponse(status=400)
        if not request.htmx:
            return redirect("sharing:share-manage", public_id=conversation.public_id)
    share = selectors.share_for_conversation(conversation=conversation)
    context = {
        "conversation": conversation,
        "share": share,
        "share_url": request.build_absolute_uri(share.get_absolute_url()) if share else "",
        "shown_now": conversation_selectors.message_list_for_conversation(conversation=conversation).count(),
        "shares_public": site_settings().shares_visible_to_anonymous,
    }
    return render_page(request, "sharing/share.html", "sharing/partials/share.html", context)


def _shared_or_404(request: HttpRequest, token: str) -> SharedConversation | HttpResponse:
    try:
        return selectors.shared_get(token=token, user=request.user)
    except SharedConversation.DoesNotExist:
        raise Http404 from None
    except PermissionError:
        return redirect_to_login(request.get_full_path())


@require_http_methods(["GET"])
def shared_detail(request: HttpRequest, token: str) -> HttpResponse:
    """Show a shared conversation read-only, from its stored sanitized HTML; 404 once revoked.

    Signed-out visitors are sent to the sign-in page unless the admin lets
    them read share links. The persona's system prompt is never shown, a
    private persona's name and avatar only to its owner, the owner's name
    only if they chose so. Not for search engines (X-Robots-Tag).
    """
    share = _shared_or_404(request, token)
    if isinstance(share, HttpResponse):
        return share
    context: dict[str, object] = {
        "share": share,
        "persona": selectors.shared_persona_shown(share=share, user=request.user),
        "persona_private": share.conversation.persona_id is not None,
        "messages_shared": list(selectors.shared_messages(share=share)),
        "owner_name": share.conversation.owner.get_username() if share.show_owner else "",
    }
    if request.user.is_authenticated:
        context["sidebar"] = sidebar.conversation_page(user=request.user)
    response = render(request, "sharing/shared.html", context)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_POST
def shared_continue(request: HttpRequest, token: str) -> HttpResponse:
    """Copy a shared conversation into the visitor's own account and open the copy; signed out: sign in first."""
    if not request.user.is_authenticated:
        return redirect_to_login(SharedConversation(token=token).get_absolute_url())
    share = _shared_or_404(request, token)
    if isinstance(share, HttpResponse):
        return share
    copy = services.shared_conversation_copy(share=share, owner=request.user)
    return redirect(copy)
