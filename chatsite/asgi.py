"""ASGI entry point: Django for HTTP, Channels consumers for websockets (daphne serves both)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Build Django first: it populates the app registry that the consumers import.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.locale import WebsocketLanguageMiddleware  # noqa: E402
from chatsite.websocket_sessions import WebsocketAuthMiddlewareStack  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # types-channels wants a list of its check-only _ExtendedURLPattern, which path() never returns
        # (a list is invariant; python/typeshed#15080 loosens it).
        "websocket": AllowedHostsOriginValidator(
            WebsocketAuthMiddlewareStack(WebsocketLanguageMiddleware(URLRouter(websocket_urlpatterns)))  # type: ignore[arg-type]
        ),
    }
)
