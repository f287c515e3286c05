"""The Content-Security-Policy of the "Sign in with ..." pages: their form may lead to the identity provider.

The site's policy allows forms to post only to the site (form-action
'self'), and browsers apply form-action to the redirects that follow a
post too (CSP Level 3, "form-action"). allauth's provider sign-in page posts
to the site, which redirects to the provider's authorization endpoint: on
that page alone, form-action also allows the origins of the configured
providers' endpoints. For OpenID Connect that is the origin of the app's
`server_url` (the issuer; an authorization endpoint elsewhere goes in the
app's settings as "form_action_origins": [...]); for other providers (Feishu)
the provider's own authorization URL.
"""

from collections.abc import Callable
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse

# The view modules of allauth's provider sign-in pages.
_SOCIAL_LOGIN_MODULE = "allauth.socialaccount.providers."


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def identity_provider_origins(request: HttpRequest) -> list[str]:
    """Return the origins of the configured identity providers' authorization endpoints. One query."""
    from allauth.socialaccount.adapter import get_adapter

    origins: set[str] = set()
    for app in get_adapter().list_apps(request):
        settings = app.settings or {}
        candidates = list(settings.get("form_action_origins", []))
        if app.provider == "openid_connect":
            candidates.append(settings.get("server_url", ""))
        else:
            provider = app.get_provider(request)
            adapter_class = getattr(provider, "oauth2_adapter_class", None)
            if adapter_class is not None:
                candidates.append(settings.get("AUTHORIZE_URL") or getattr(adapter_class, "authorization_url", ""))
        origins.update(origin for origin in map(_origin, candidates) if origin)
    return sorted(origins)


class SocialLoginFormActionMiddleware:
    """Widen form-action on allauth's provider sign-in pages to the providers' origins (see the module docstring).

    Listed after csp.middleware.CSPMiddleware, so that its response is seen first.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if match is not None and match.func.__module__.startswith(_SOCIAL_LOGIN_MODULE) and request.method == "GET":
            origins = identity_provider_origins(request)
            if origins:
                response._csp_update = {"form-action": origins}  # type: ignore[attr-defined]  # django-csp's hook
        return response
