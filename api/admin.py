"""Admin for the API: every user's keys (list, revoke; never the key itself), group switches, direct-use models."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from api import services
from api.models import ApiKey, DirectModel, GroupApiAccess


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # Keys are created by their user, who alone sees the key once.

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            services.api_key_revoke(key=key)
        self.message_user(
            request,
            ngettext("%(count)d key revoked.", "%(count)d keys revoked.", len(keys)) % {"count": len(keys)},
            messages.SUCCESS,
        )


@admin.register(GroupApiAccess)
class GroupApiAccessAdmin(admin.ModelAdmin):
    list_display = ["group", "enabled"]
    list_editable = ["enabled"]


@admin.register(DirectModel)
class DirectModelAdmin(admin.ModelAdmin):
    list_display = ["model", "created_at"]
    list_select_related = ["model__provider"]
