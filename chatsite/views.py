"""Pages that gather several apps: the account page, one section per app (templates/accounts/sections/)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from accounts.locale import saved_language
from conversations.views.shortcuts import AuthenticatedHttpRequest, render_page


@login_required
def account_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the account page, linked from the sidebar: sign-in details and each app's own section."""
    return render_page(
        request,
        "accounts/account.html",
        "accounts/partials/account.html",
        {"saved_language": saved_language(user=request.user)},
    )
