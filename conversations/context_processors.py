"""Template context every page gets: the input limits the forms show, from their one source each."""

from django.conf import settings
from django.http import HttpRequest

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
