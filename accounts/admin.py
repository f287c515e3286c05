"""Admin for usage limits (inline on each user and each group, and a list), site settings and invitations.

django.contrib.auth's User and Group admins are re-registered with the inline
added; everything else about them stays as Django ships it.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts import invitations
from accounts.models import Invitation, SiteSettings, UsageLimit
from accounts.selectors import site_settings

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
    actions = ["approve"]

    @admin.action(description=_("Approve the selected accounts (make them active)"))
    def approve(self, request: HttpRequest, queryset) -> None:
        approved = queryset.filter(is_active=False).update(is_active=True)
        self.message_user(
            request,
            ngettext("%(count)d account approved.", "%(count)d accounts approved.", approved) % {"count": approved},
        )

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


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    """One row of site settings: the list goes straight to it, and it cannot be added twice or deleted.

    Its page warns when the server setting CHAT_API_ENABLED=0 keeps the API off whatever "API on" says.
    """

    fieldsets = [
        (_("Sign-up"), {"fields": ["signup_mode", "signup_domains", "signup_requires_approval"]}),
        (_("Share links"), {"fields": ["shares_visible_to_anonymous"]}),
        (_("API"), {"fields": ["api_enabled"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return redirect("admin:accounts_sitesettings_change", site_settings().pk)

    def change_view(self, request: HttpRequest, object_id: str, form_url="", extra_context=None):
        if request.method == "GET" and not settings.CHAT_API_ENABLED:
            messages.warning(
                request,
                gettext(
                    "CHAT_API_ENABLED=0 on the server keeps the API off for the whole site, whatever “API on” says."
                ),
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitation links: the link to send is shown once the invitation is saved."""

    list_display = ["__str__", "link", "uses", "max_uses", "expires_at", "created_at"]
    fields = ["note", "max_uses", "expires_at", "link", "uses"]
    readonly_fields = ["link", "uses"]

    @admin.display(description=_("link to send"))
    def link(self, obj: Invitation) -> str:
        if not obj.code:
            return gettext("Shown once saved.")
        url = reverse("account-invitation", args=[obj.code])
        return format_html('<a href="{}">{}</a>', url, url)

    def save_model(self, request: HttpRequest, obj: Invitation, form, change: bool) -> None:
        if not obj.code:
            obj.code = invitations.invitation_code_new()
            obj.created_by = request.user  # type: ignore[assignment]  # the admin site requires a signed-in user
        super().save_model(request, obj, form, change)
