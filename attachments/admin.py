from django.contrib import admin
from django.http import HttpRequest

from attachments.models import Attachment, AttachmentPolicy


@admin.register(AttachmentPolicy)
class AttachmentPolicyAdmin(admin.ModelAdmin):
    """The site's one row of attachment limits: size, types, storage per user, text and image bounds."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not AttachmentPolicy.objects.exists()


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Metadata only (name, type, size, owner); the files themselves are served to their owners alone."""

    list_display = ("name", "kind", "content_type", "size_bytes", "owner", "created_at")
    list_filter = ["kind"]
    fields = (
        "name",
        "kind",
        "content_type",
        "size_bytes",
        "owner",
        "created_at",
        "width",
        "height",
        "pages",
        "text_cut",
    )
    readonly_fields = fields
    search_fields = ["owner__username"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
