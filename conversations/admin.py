"""Admin for conversations: metadata only, read-only.

Staff see who chats with which persona, when, and how much; not what was
said. Titles are derived from the first message (or written by the model
from it), so they count as message text. Both stay hidden unless
`settings.CHAT_ADMIN_SHOWS_MESSAGE_TEXT` is on, which adds the title column
and the messages, read-only, to the conversation's page.
"""

from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation, Message

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# Shown with or without message text. Tuples: django-stubs types these admin
# options as a list or tuple of a wider item type, which a tuple[str, ...]
# matches and a list[str] does not (lists are invariant).
METADATA_FIELDS = (
    "public_id",
    "owner",
    "persona",
    "title_source",
    "archived",
    "message_count",
    "created_at",
    "updated_at",
)
LIST_DISPLAY = ("public_id", "owner", "persona", "message_count", "archived", "created_at", "updated_at")
MESSAGE_FIELDS = ("created_at", "role", "status", "is_current", "content", "error_text", "model_id")


class _MessageCount(TypedDict):
    message_count: int


def _shows_text() -> bool:
    return settings.CHAT_ADMIN_SHOWS_MESSAGE_TEXT


class MessageInline(admin.TabularInline):
    """A conversation's messages with their text, for when the site allows staff to read them."""

    model = Message
    fields = MESSAGE_FIELDS
    readonly_fields = MESSAGE_FIELDS
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = LIST_DISPLAY
    list_filter = ["archived", ("persona", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["owner", "persona"]
    search_fields = ["owner__username"]
    ordering = ["-updated_at", "-id"]
    view_on_site = False  # The page is the owner's alone: anyone else gets a 404.
    actions = None  # Read-only; and an action's row checkbox is labelled with str(obj), the title.

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Conversation | None:
        conversation = super().get_object(request, object_id, from_field)
        if conversation is not None and not _shows_text():
            # The admin prints str(obj), i.e. the title, in headings, breadcrumbs
            # and the history page; in memory only, as nothing here saves.
            conversation.title = ""
        return conversation

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        if _shows_text():
            return ("public_id", "title", *LIST_DISPLAY[1:])
        return LIST_DISPLAY

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # A title search would answer "does anyone's title contain X?" even with the column hidden.
        return [*self.search_fields, "title"] if _shows_text() else self.search_fields

    def get_fields(self, request: HttpRequest, obj: Conversation | None = None) -> tuple[str, ...]:
        return (*METADATA_FIELDS[:3], "title", *METADATA_FIELDS[3:]) if _shows_text() else METADATA_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Conversation | None = None) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Conversation | None) -> list:
        return [MessageInline] if _shows_text() else []

    @admin.display(description=_("messages"), ordering="message_count")
    def message_count(self, obj: "WithAnnotations[Conversation, _MessageCount]") -> int:
        return obj.message_count  # Rows come from get_queryset, which counts them.

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False
