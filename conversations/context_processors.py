"""Template context every page gets: the input limits the forms show (one source each), and the site name."""

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _

from conversations.models import Conversation
from conversations.search import QUERY_MAX_CHARS


def input_limits(request: HttpRequest) -> dict[str, dict[str, int | None]]:
    """Return `input_limits`: `message_chars` (CHAT_MAX_MESSAGE_CHARS), `title_chars`, `search_chars`."""
    return {
        "input_limits": {
            "message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
            "title_chars": Conversation._meta.get_field("title").max_length,
            "search_chars": QUERY_MAX_CHARS,
        }
    }


def site_name(request: HttpRequest) -> dict[str, str]:
    """Return `site_name`: CHAT_SITE_NAME, or "Chat" in the page's language when it is not set (tab titles)."""
    return {"site_name": settings.CHAT_SITE_NAME or _("Chat")}
