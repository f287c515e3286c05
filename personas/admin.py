"""Admin for providers, the model allow-list and personas.

A provider's API key is write-only here: the form takes a new key or a
"clear" tick, and the page shows at most its last four characters.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from llm import LLMError
from personas import services
from personas.crypto import DecryptionError
from personas.models import ChatModel, Persona, Provider


class _ChatModelChoiceField(forms.ModelChoiceField):
    """Choices of chat models labelled with their provider: "gpt-4o-mini (OpenAI)"."""

    def label_from_instance(self, obj: ChatModel) -> str:
        return f"{obj} ({obj.provider})"


class _URLField(forms.URLField):
    """A URL field that completes a scheme-less entry with https://, as Django 6 will."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("assume_scheme", "https")
        super().__init__(**kwargs)


class ProviderForm(forms.ModelForm):
    """The provider's fields plus a write-only API key; the stored key is never rendered."""

    api_key = forms.CharField(
        label=_("New API key"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty to keep the current key."),
    )
    clear_api_key = forms.BooleanField(
        label=_("Clear key"), required=False, help_text=_("Remove the stored key (for providers that need none).")
    )

    class Meta:
        model = Provider
        fields = ["name", "base_url", "is_local", "connect_timeout_s", "read_timeout_s", "total_timeout_s"]
        field_classes = {"base_url": _URLField}

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # What ModelForm.clean returns.
        if cleaned.get("api_key") and cleaned.get("clear_api_key"):
            raise forms.ValidationError(_("Either enter a new key or clear the key, not both."))
        return cleaned


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "base_url", "masked_api_key", "connect_timeout_s", "read_timeout_s", "total_timeout_s"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["masked_api_key"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "is_local"]}),
        (_("API key"), {"fields": ["masked_api_key", "api_key", "clear_api_key"]}),
        (_("Timeouts"), {"fields": ["connect_timeout_s", "read_timeout_s", "total_timeout_s"]}),
    ]
    actions = ["fetch_models", "test_connection"]

    # The new key is in the POST and, while the form is cleaned and saved, in
    # many frames: error reports hide the field and every variable below here.
    @method_decorator(sensitive_post_parameters("api_key"))
    @method_decorator(sensitive_variables())
    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("API key"))
    def masked_api_key(self, obj: Provider) -> str:
        try:
            return obj.api_key_masked or "—"
        except DecryptionError:
            return gettext("cannot be decrypted: enter the key again")

    def save_model(self, request: HttpRequest, obj: Provider, form: ProviderForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("clear_api_key"):
            services.provider_set_api_key(provider=obj, api_key="")
        elif form.cleaned_data.get("api_key"):
            services.provider_set_api_key(provider=obj, api_key=form.cleaned_data["api_key"])
        elif change and services.provider_key_forget_on_new_host(
            provider=obj, previous_base_url=form.initial.get("base_url", "")
        ):
            self.message_user(
                request,
                gettext("The base URL now names another server, so the stored API key was removed. Enter its key."),
                messages.WARNING,
            )

    @admin.action(description=_("Fetch models"))
    def fetch_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                created = services.provider_fetch_models(provider=provider)
            except (LLMError, DecryptionError) as err:
                self.message_user(request, f"{provider}: {_error_text(err)}", messages.ERROR)
                continue
            if not created:
                self.message_user(request, gettext("%(provider)s: no new models.") % {"provider": provider})
                continue
            text = ngettext(
                "%(provider)s: %(count)d new model added (disabled): %(models)s",
                "%(provider)s: %(count)d new models added (disabled): %(models)s",
                len(created),
            ) % {"provider": provider, "count": len(created), "models": ", ".join(m.model_id for m in created)}
            self.message_user(request, text, messages.SUCCESS)

    @admin.action(description=_("Test connection"))
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                text = services.provider_test(provider=provider)
            except (LLMError, DecryptionError) as err:
                self.message_user(request, f"{provider}: {_error_text(err)}", messages.ERROR)
            else:
                self.message_user(request, text, messages.SUCCESS)


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "display_name",
        "provider",
        "enabled",
        "supports_images",
        "offered_to_everyone",
        "context_window",
        "max_output_tokens",
    ]
    list_editable = ["enabled", "supports_images", "offered_to_everyone"]
    list_filter = ["enabled", "supports_images", "offered_to_everyone", "provider"]
    list_select_related = ["provider"]
    search_fields = ["model_id", "display_name"]
    actions = ["enable_models", "disable_models"]

    @admin.action(description=_("Enable selected models"))
    def enable_models(self, request: HttpRequest, queryset: QuerySet[ChatModel]) -> None:
        count = services.chat_models_set_enabled(chat_models=queryset, enabled=True)
        self.message_user(
            request, ngettext("%(count)d model enabled.", "%(count)d models enabled.", count) % {"count": count}
        )

    @admin.action(description=_("Disable selected models"))
    def disable_models(self, request: HttpRequest, queryset: QuerySet[ChatModel]) -> None:
        count = services.chat_models_set_enabled(chat_models=queryset, enabled=False)
        self.message_user(
            request, ngettext("%(count)d model disabled.", "%(count)d models disabled.", count) % {"count": count}
        )


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    list_display = ["name", "avatar", "model", "owner", "is_published", "is_active"]
    list_filter = [
        "is_active",
        "is_published",
        ("owner", admin.EmptyFieldListFilter),
        ("model", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["model", "owner"]
    filter_horizontal = ["other_models"]
    raw_id_fields = ["owner"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (_("Who"), {"fields": ["name", "slug", "avatar", "description", "greeting"]}),
        (
            _("Model"),
            {
                "fields": [
                    "model",
                    "other_models",
                    "system_prompt",
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "history_limit",
                ]
            },
        ),
        (None, {"fields": ["is_active", "owner", "is_published"]}),
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "model":
            # The field's limit_choices_to still keeps the choices to enabled models.
            kwargs["queryset"] = ChatModel.objects.select_related("provider")
            kwargs["form_class"] = _ChatModelChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _error_text(err: LLMError | DecryptionError) -> str:
    if isinstance(err, DecryptionError):
        return gettext("The stored API key cannot be decrypted (the secret key changed); enter it again.")
    return err.message
