"""The signed-in user's pages for the API: their keys (also a section of the account page) and the API page.

Key management is cookie-authenticated like every page (CSRF applies); the
API itself (/v1) never is. The console on the API page gets a short-lived
key of the user's here (`console_key_create`) and calls the real /v1 with it.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from api import selectors, services
from api.auth import api_enabled_for
from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from personas.selectors import persona_list_active

CONSOLE_KEY_NAME = "API page console"


def keys_context(request: AuthenticatedHttpRequest, **extra) -> dict:
    """Return what templates/api/partials/keys.html shows: the user's keys, the API's state, the site's URLs."""
    return {
        "api_keys": list(selectors.api_key_list_for_user(user=request.user)),
        "api_enabled": api_enabled_for(user=request.user),
        "api_base_url": request.build_absolute_uri(reverse("v1:models")).removesuffix("models"),
        "site_url": request.build_absolute_uri("/"),
        "new_key": None,
        "key_error": "",
        **extra,
    }


@never_cache
@login_required
@require_GET
def api_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the API page: keys, copy-paste examples (curl, the openai SDK, the terminal client), the live console."""
    personas = list(persona_list_active())
    context = keys_context(request, personas=personas, example_model=personas[0].slug if personas else "PERSONA")
    return render_page(request, "api/api.html", "api/partials/api.html", context)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def keys(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the user's keys (the fragment the account page's section loads). POST: create a key (`key_create`)."""
    if request.method == "POST":
        return key_create(request)
    if request.htmx:
        return render(request, "api/partials/keys.html", keys_context(request))
    return redirect("api:page")


def key_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Create a key named by the form; show it once, in the keys fragment (htmx) or on the API page."""
    try:
        _row, key = services.api_key_create(user=request.user, name=request.POST.get("name", ""))
    except ValidationError as exc:
        return _keys_response(request, key_error=" ".join(exc.messages), status=400)
    return _keys_response(request, new_key=key)


@never_cache
@login_required
@require_POST
def key_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the user's keys; another user's is a 404."""
    key = get_owned_or_404(selectors.api_key_get_for_user, user=request.user, pk=pk)
    services.api_key_revoke(key=key)
    if request.htmx:
        return _keys_response(request)
    return redirect("api:page")


@never_cache
@login_required
@require_POST
def console_key_create(request: AuthenticatedHttpRequest) -> JsonResponse:
    """Return a short-lived key for the API page's console: {"key", "expires_at" (ISO 8601)}.

    It lasts CHAT_API_CONSOLE_KEY_S and is not listed with the user's keys;
    the user's expired console keys are deleted meanwhile. 403 when the API
    is off for the user, with the /v1 error object.
    """
    if not api_enabled_for(user=request.user):
        return JsonResponse(
            {"error": {"message": _("The API is switched off for your account."), "type": "permission_error"}},
            status=403,
        )
    now = timezone.now()
    services.console_keys_delete_expired(user=request.user, now=now)
    expires_at = now + timedelta(seconds=settings.CHAT_API_CONSOLE_KEY_S)
    _row, key = services.api_key_create(user=request.user, name=CONSOLE_KEY_NAME, expires_at=expires_at)
    return JsonResponse({"key": key, "expires_at": expires_at.isoformat()})


def _keys_response(request: AuthenticatedHttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    if request.htmx:
        return render(request, "api/partials/keys.html", keys_context(request, **extra), status=status)
    personas = list(persona_list_active())
    context = keys_context(request, personas=personas, example_model=personas[0].slug if personas else "PERSONA")
    context.update(extra)
    return render_page(request, "api/api.html", "api/partials/api.html", context, status=status)
