"""The interface language: a signed-in user's saved choice, else Django's pick (language cookie, then the browser's).

Django's LocaleMiddleware runs before authentication and picks from the
language cookie, then Accept-Language (RFC 9110 §12.5.4), mapping a browser's
zh-CN or zh-SG to zh-hans and zh-TW, zh-HK or zh-MO to zh-hant through its
LANG_INFO fallbacks. `UserLanguageMiddleware`, after authentication, puts a
signed-in user's saved choice (accounts.Preference.language) over that pick.

The choice is copied into the session when the user signs in (and when they
change it), so a request reads it with the session rather than with a query of
its own; another device picks up a change when it next signs in. Websockets get
the same language through `WebsocketLanguageMiddleware`, so refusals, alerts
and the fragments a reply broadcasts are in the language of the page.
"""

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from accounts.models import Preference

# The session key holding a signed-in user's saved language ("" for none: follow the cookie or browser).
SESSION_KEY = "chat_language"


def supported_language(code: str) -> str:
    """Return `code` if it is one of settings.LANGUAGES' codes, else ""."""
    return code if code in dict(settings.LANGUAGES) else ""


def saved_language(*, user: AbstractBaseUser | AnonymousUser) -> str:
    """Return `user`'s saved interface language (a settings.LANGUAGES code), or "" to follow the browser."""
    if not user.is_authenticated:
        return ""
    language = Preference.objects.filter(user_id=user.pk).values_list("language", flat=True).first()
    return supported_language(language or "")


def session_language(session: Any, user: AbstractBaseUser | AnonymousUser) -> str:
    """Return the signed-in user's saved language as the session keeps it, reading it once if it does not yet.

    Only a signed-in user's session holds the key (signing out flushes the
    session), so a session that has it answers without loading the user: the
    JavaScript catalog, requested by every page, costs no query for it.
    Sessions opened before the user chose (or before this key existed) get it
    from accounts.Preference here, once.
    """
    if SESSION_KEY not in session:
        if not user.is_authenticated:
            return ""
        session[SESSION_KEY] = saved_language(user=user)
    return supported_language(session[SESSION_KEY])


def remember_language_on_login(sender: Any, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> None:
    """Copy the user's saved language into the new session (receiver of `user_logged_in`)."""
    request.session[SESSION_KEY] = saved_language(user=user)


class UserLanguageMiddleware:
    """Activate a signed-in user's saved language; place it after AuthenticationMiddleware.

    Without a saved language, LocaleMiddleware's pick (cookie, then browser) stays.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = session_language(request.session, request.user)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


def language_for_websocket(scope: dict) -> str:
    """Return the language for a websocket whose scope has passed `WebsocketAuthMiddlewareStack`.

    The user's saved language, else Django's pick from the handshake's
    language cookie and Accept-Language header, as for a page.
    """
    language = session_language(scope["session"], scope.get("user") or AnonymousUser())
    if language:
        return language
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


class WebsocketLanguageMiddleware:
    """Channels middleware: run the consumer (and the tasks it starts) in the page's language.

    Goes inside WebsocketAuthMiddlewareStack. The language is chosen once, at the
    handshake; a page that changes it reloads and so reconnects.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        language = await database_sync_to_async(language_for_websocket)(scope)
        with translation.override(language):
            return await self.inner(scope, receive, send)
