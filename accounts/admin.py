"""Admin for usage limits: inline on each user and each group, and a list of all of them.

django.contrib.auth's User and Group admins are re-registered with the inline
added; everything else about them stays as Django ships it.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import UsageLimit

# A tuple: django-stubs types `fields` as a list or tuple of a wider item type, which a tuple[str, ...] matches
# and a list[str] does not (lists are invariant).
_LIMIT_FIELDS = ("sends_per_minute", "concurrent_replies", "daily_tokens")


class UsageLimitInline(admin.StackedInline):
    model = UsageLimit
    fields = _LIMIT_FIELDS
    verbose_name_plural = _("usage limits")


class UserUsageLimitInline(UsageLimitInline):
    fk_name = "user"


class GroupUsageLimitInline(UsageLimitInline):
    fk_name = "group"


User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserWithLimitsAdmin(UserAdmin):
    def get_inlines(self, request: HttpRequest, obj) -> list:
        # Limits are set on an existing account: the add page stays Django's two-step form.
        return [UserUsageLimitInline] if obj is not None else []


@admin.register(Group)
class GroupWithLimitsAdmin(GroupAdmin):
    inlines = [GroupUsageLimitInline]


@admin.register(UsageLimit)
class UsageLimitAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", *_LIMIT_FIELDS]
    list_select_related = ["user", "group"]
    search_fields = ["user__username", "group__name"]
    autocomplete_fields = ["user", "group"]
    fields = ["user", "group", *_LIMIT_FIELDS]

    @admin.display(description=_("for"))
    def kind(self, obj: UsageLimit) -> str:
        return gettext("group") if obj.group_id else gettext("user")
