"""The search page: the user's conversations and messages that match a query."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from conversations import search as conversation_search
from conversations.views.shortcuts import AuthenticatedHttpRequest, render_page


@login_required
@require_GET
def search(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show what matches `?q=`: the sidebar's search box asks as the user types (htmx) or on Enter (plain GET)."""
    query = request.GET.get("q", "")
    results = conversation_search.search_for_user(user=request.user, query=query)
    partial = "conversations/partials/search_results.html"
    context = {"results": results, "search_query": results.query, "panel": partial, "page_title": _("Search")}
    return render_page(request, "conversations/panel.html", partial, context)
