"""Admin for bot channels: write-only secrets shown masked, the callback URL to paste, and "Test credentials"."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from bots import credentials, services
from bots.http import PlatformError
from bots.models import BotChannel, BotIdentity
from personas import crypto
from personas.crypto import DecryptionError

SECRETS = ("app_secret", "token", "aes_key")


def _secret_field(label: Any, help_text: Any) -> forms.CharField:  # str or lazy str
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class BotChannelForm(forms.ModelForm):
    """The channel's fields plus write-only secrets; a stored secret is never rendered."""

    app_secret = _secret_field(_("New App Secret"), _("Feishu/Lark App Secret or WeChat AppSecret. Empty keeps it."))
    token = _secret_field(_("New token"), _("Feishu/Lark Verification Token, or WeChat Token. Empty keeps it."))
    aes_key = _secret_field(
        _("New encryption key"),
        _("Feishu/Lark Encrypt Key, or WeChat EncodingAESKey (43 characters). Empty keeps it."),
    )
    clear_secrets = forms.BooleanField(
        label=_("Clear token and encryption key"),
        required=False,
        help_text=_("For a Feishu app without Verification Token and Encrypt Key (not recommended)."),
    )

    class Meta:
        model = BotChannel
        fields = ["name", "kind", "persona", "app_id", "message_mode", "enabled"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        aes_key = cleaned.get("aes_key") or ""
        if cleaned.get("kind") == BotChannel.Kind.WECHAT and aes_key and len(aes_key) != 43:
            self.add_error("aes_key", _("A WeChat EncodingAESKey is 43 characters long."))
        if cleaned.get("clear_secrets") and (cleaned.get("token") or aes_key):
            raise forms.ValidationError(_("Either enter new secrets or clear them, not both."))
        return cleaned


@admin.register(BotChannel)
class BotChannelAdmin(admin.ModelAdmin):
    form = BotChannelForm
    list_display = ["name", "kind", "persona", "app_id", "enabled"]
    list_filter = ["kind", "enabled"]
    list_select_related = ["persona"]
    search_fields = ["name", "app_id"]
    readonly_fields = ["masked_app_secret", "masked_token", "masked_aes_key"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "persona", "enabled"]}),
        (_("Credentials"), {"fields": ["app_id", "masked_app_secret", "app_secret"]}),
        (
            _("Callback security"),
            {"fields": ["masked_token", "token", "masked_aes_key", "aes_key", "clear_secrets", "message_mode"]},
        ),
    ]
    actions = ["test_credentials"]

    @method_decorator(sensitive_post_parameters(*SECRETS))
    @method_decorator(sensitive_variables())
    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        channel = self.get_object(request, object_id) if object_id else None
        if channel is not None:
            extra_context["callback_url"] = request.build_absolute_uri(channel.get_absolute_url())
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _masked(self, obj: BotChannel, field: str) -> str:
        stored = getattr(obj, f"{field}_encrypted")
        if not stored:
            return "—"
        try:
            return crypto.mask(crypto.decrypt(stored))
        except DecryptionError:
            return gettext("cannot be decrypted: enter it again")

    @admin.display(description=_("App Secret"))
    def masked_app_secret(self, obj: BotChannel) -> str:
        return self._masked(obj, "app_secret")

    @admin.display(description=_("Token"))
    def masked_token(self, obj: BotChannel) -> str:
        return self._masked(obj, "token")

    @admin.display(description=_("Encryption key"))
    def masked_aes_key(self, obj: BotChannel) -> str:
        return self._masked(obj, "aes_key")

    def save_model(self, request: HttpRequest, obj: BotChannel, form: BotChannelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        data = form.cleaned_data
        cleared = data.get("clear_secrets")
        services.channel_set_secrets(
            channel=obj,
            app_secret=data.get("app_secret") or None,
            token="" if cleared else data.get("token") or None,
            aes_key="" if cleared else data.get("aes_key") or None,
        )

    @admin.action(description=_("Test credentials"))
    def test_credentials(self, request: HttpRequest, queryset: QuerySet[BotChannel]) -> None:
        for channel in queryset:
            try:
                text = credentials.channel_test(channel=channel)
            except DecryptionError:
                self.message_user(
                    request,
                    gettext("%(channel)s: the stored App Secret cannot be decrypted; enter it again.")
                    % {"channel": channel},
                    messages.ERROR,
                )
            except PlatformError as err:
                self.message_user(request, f"{channel}: {err}", messages.ERROR)
            else:
                self.message_user(request, text, messages.SUCCESS)


@admin.register(BotIdentity)
class BotIdentityAdmin(admin.ModelAdmin):
    list_display = ["platform_user_id", "channel", "user", "linked_at", "created_at"]
    list_filter = ["channel"]
    list_select_related = ["channel", "user"]
    readonly_fields = ["channel", "platform_user_id", "union_id", "user", "linked_at", "created_at"]
    search_fields = ["platform_user_id", "user__username"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
