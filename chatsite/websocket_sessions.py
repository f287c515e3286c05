"""The websockets' session and user: Channels' AuthMiddlewareStack without its wrapper of every frame sent."""

from typing import Any

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper


class WebsocketSessionMiddleware:
    """Channels' `SessionMiddleware` for websockets: the scope's session, and the server's own `send`.

    Channels wraps `send` to save a modified session and set its cookie when
    a message of type `http.response.start` goes out; a websocket sends none,
    yet the wrapper reads the session's `modified` and `is_empty()` through
    its lazy proxy for every frame: about 2 % of the server's CPU while 50
    replies stream (bench/README.md, the eighteenth round). Nothing the site
    does on a socket needs the session saved: signing in and out are pages.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        wrapper = InstanceSessionWrapper(scope, send)  # Puts the lazy session in a copy of the scope.
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def WebsocketAuthMiddlewareStack(inner: Any) -> Any:  # Named as Channels' AuthMiddlewareStack, which it replaces.
    """Return `inner` with the handshake's cookies, session and user in its scope (Channels' stack, same order)."""
    return CookieMiddleware(WebsocketSessionMiddleware(AuthMiddleware(inner)))
