"""The colour theme: system, light or dark, chosen by anyone, kept per user, applied by the server.

The page's ``<html>`` carries ``data-theme`` (the `theme` context
processor), so the stylesheet shows the chosen colours from the first paint,
with no flash of the other theme. "system" leaves the choice to the browser's
``prefers-color-scheme`` (Media Queries Level 5, §12.5).

A visitor's choice is kept in a cookie (THEME_COOKIE). A signed-in user's is
saved in accounts.Preference, so it follows them to every device, and copied
into the session when they sign in (and when they change it), so a page reads
it with the session rather than with a query of its own; another device picks
up a change when it next signs in. The cookie is set for signed-in users too,
so the sign-in page after signing out keeps their colours.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import services
from accounts.models import Preference

THEME_COOKIE = "chat_theme"
THEME_COOKIE_AGE_S = 365 * 24 * 3600
SESSION_KEY = "chat_theme"
THEMES = frozenset(Preference.Theme.values)


def saved_theme(*, user: User | AbstractBaseUser | AnonymousUser) -> str:
    """Return `user`'s saved theme (a Preference.Theme value); "system" when they have none."""
    if not isinstance(user, User) or not user.is_authenticated:
        return Preference.Theme.SYSTEM
    theme = Preference.objects.filter(user=user).values_list("theme", flat=True).first()
    return theme if theme in THEMES else Preference.Theme.SYSTEM


def request_theme(request: HttpRequest) -> str:
    """Return the theme of the page for `request`: the user's saved one, else the visitor's cookie, else "system".

    Sessions opened before the user chose (or before this key existed) read
    it from accounts.Preference once, then keep it.
    """
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)  # none on a request that skipped the middleware (an error page's)
    if user is not None and user.is_authenticated:
        if session is None:
            theme = saved_theme(user=user)
        else:
            if SESSION_KEY not in session:
                session[SESSION_KEY] = saved_theme(user=user)
            theme = session[SESSION_KEY]
    else:
        theme = request.COOKIES.get(THEME_COOKIE, "")
    return theme if theme in THEMES else Preference.Theme.SYSTEM


def theme(request: HttpRequest) -> dict[str, Any]:
    """Context processor: ``theme`` (system, light or dark) and ``themes`` (the choices, with their labels)."""
    return {"theme": request_theme(request), "themes": Preference.Theme.choices}


def remember_theme_on_login(sender: Any, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> None:
    """Copy the user's saved theme into the new session (receiver of `user_logged_in`)."""
    request.session[SESSION_KEY] = saved_theme(user=user)


@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    """Switch the colour theme, then go back to the form's `next` (a path of this site; else the home page).

    POST fields: ``theme`` (system, light or dark), ``next``. Anyone may
    switch: a visitor's choice is kept in a cookie, a signed-in user's also in
    accounts.Preference. Answers 400 for a theme that does not exist.
    """
    chosen = request.POST.get("theme", "")
    if chosen not in THEMES:
        return HttpResponseBadRequest("Unknown theme.")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    if request.user.is_authenticated:
        services.preference_set_theme(user=request.user, theme=chosen)
        request.session[SESSION_KEY] = chosen
    response = HttpResponseRedirect(next_url)
    response.set_cookie(
        THEME_COOKIE,
        chosen,
        max_age=THEME_COOKIE_AGE_S,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response
