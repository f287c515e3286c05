"""Pages that gather several apps: the account page, one section per app (templates/accounts/sections/)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.forms import CustomInstructionsForm
from accounts.locale import saved_language
from accounts.selectors import custom_instructions_for_user
from accounts.services import custom_instructions_set
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


@login_required
def custom_instructions(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show and save the user's custom instructions (the account page's section, loaded into it by htmx).

    GET: the form with what is stored. POST: store it (both texts blank clear
    them) and show the form again with "Saved."; a text over the limit
    answers 400 with the form's error. Plain requests get the account page.
    """
    saved = False
    if request.method == "POST":
        form = CustomInstructionsForm(request.POST)
        if form.is_valid():
            custom_instructions_set(user=request.user, **form.cleaned_data)
            saved = True
    else:
        current = custom_instructions_for_user(user=request.user)
        initial = {"about_me": current.about_me, "reply_style": current.reply_style} if current else {}
        form = CustomInstructionsForm(initial=initial)
    if request.method == "POST" and not request.htmx and saved:
        return redirect("account")
    context = {
        "instructions_form": form,
        "instructions_saved": saved,
        "saved_language": saved_language(user=request.user),
    }
    status = 400 if form.is_bound and not form.is_valid() else 200
    if request.htmx:
        return render(request, "accounts/partials/custom_instructions_form.html", context, status=status)
    return render_page(request, "accounts/account.html", "accounts/partials/account.html", context, status=status)
