"""Sign-in (allauth's login view; a lockout answers 429 with Retry-After), the language switch, invitation links."""

from allauth.account.views import LoginView as AllauthLoginView
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from accounts import invitations, locale, services
from accounts.forms import LanguageForm
from accounts.models import Invitation

# The code of allauth's "Too many failed login attempts" error (its adapter's error_messages).
LOCKOUT_CODE = "too_many_login_attempts"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def login_lockout_s() -> int:
    """Return the longest window of the failed-login limits, in seconds: the most a lockout can last.

    Reads settings.ACCOUNT_RATE_LIMITS["login_failed"], allauth's format
    "<count>/<duration><unit>/<key>[,...]" with unit s, m, h or d (no unit: seconds).
    """
    windows = [0]
    for rate in settings.ACCOUNT_RATE_LIMITS.get("login_failed", "").split(","):
        parts = rate.strip().split("/")
        if len(parts) >= 2 and parts[1]:
            duration = parts[1]
            unit = _UNIT_S.get(duration[-1])
            windows.append(int(duration[:-1]) * unit if unit else int(duration))
    return max(windows)


class LoginView(AllauthLoginView):
    """allauth's sign-in page; a refused sign-in because of too many failures is a 429 (RFC 6585 §4).

    Retry-After (RFC 9110 §10.2.3) is the limit's window: failures older
    than that no longer count, so the form works again by then at the latest.
    """

    def form_invalid(self, form: Form) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, LOCKOUT_CODE):
            response.status_code = 429
            response["Retry-After"] = str(login_lockout_s())
        return response


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Switch the interface language, then go back to the form's `next` (if on this site; else as set_language does).

    Anyone may switch: a visitor's choice is kept in Django's language cookie
    (settings.LANGUAGE_COOKIE_*), a signed-in user's also in their
    accounts.Preference, so it follows them to every device they sign in on.
    "" forgets the choice: the browser's Accept-Language decides again.
    Answers 400 for a language the site does not offer.
    """
    form = LanguageForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text())
    language = form.cleaned_data["language"]
    if request.user.is_authenticated:
        services.preference_set_language(user=request.user, language=language)
        request.session[locale.SESSION_KEY] = language
    # Django's own view: the cookie with every LANGUAGE_COOKIE_* setting, and a redirect to `next` if it is safe.
    response = set_language(request)
    if not language:
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME, path=settings.LANGUAGE_COOKIE_PATH, domain=settings.LANGUAGE_COOKIE_DOMAIN
        )
    return response


def invitation_follow(request: HttpRequest, code: str) -> HttpResponse:
    """Open the sign-up form for the holder of a usable invitation link; a dead link gets a page saying so (404).

    The code is kept in the session until the account is made
    (accounts.adapter counts the use then), so the form can be sent again
    after a mistake without following the link again.
    """
    try:
        invitations.invitation_get_usable(code=code)
    except Invitation.DoesNotExist:
        return render(request, "account/invitation_invalid.html", status=404)
    request.session[invitations.SESSION_KEY] = code
    return redirect("account_signup")
