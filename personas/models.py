from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from personas import addresses, crypto


class Provider(models.Model):
    """An OpenAI-compatible API endpoint and the key to call it."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    base_url = models.URLField(
        _("base URL"),
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text=_("The API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1."),
    )
    is_local = models.BooleanField(
        _("on this machine or network"),
        default=False,
        help_text=_(
            "Allow a loopback or private address (Ollama, vLLM, llama.cpp on the same machine or network). "
            "Cloud metadata and link-local addresses are always refused."
        ),
    )
    api_key_encrypted = models.TextField(_("API key (encrypted)"), blank=True, editable=False)
    connect_timeout_s = models.FloatField(_("connect timeout (s)"), default=10.0, validators=[MinValueValidator(0.1)])
    read_timeout_s = models.FloatField(
        _("idle timeout between chunks (s)"), default=60.0, validators=[MinValueValidator(0.1)]
    )
    total_timeout_s = models.FloatField(
        _("total timeout per reply (s)"), default=600.0, validators=[MinValueValidator(1)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("provider")
        verbose_name_plural = _("providers")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        kind = addresses.host_kind(self.base_url)
        if kind == addresses.HostKind.FORBIDDEN:
            raise ValidationError(
                {"base_url": _("This is a cloud metadata or link-local address; no provider may be there.")}
            )
        if kind == addresses.HostKind.LOCAL and not self.is_local:
            raise ValidationError(
                {
                    "base_url": _(
                        "This is a loopback or private address. If the provider runs there, "
                        "tick “on this machine or network”."
                    )
                }
            )

    @property
    def api_key(self) -> str:
        """The decrypted API key ("" when none is stored)."""
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    @property
    def api_key_masked(self) -> str:
        return crypto.mask(self.api_key) if self.api_key_encrypted else ""


class ChatModel(models.Model):
    """A model of a provider; enabled models form the allow-list."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models", verbose_name=_("provider"))
    model_id = models.CharField(_("model id"), max_length=200, help_text=_("As the API names it, e.g. gpt-4o-mini."))
    display_name = models.CharField(_("display name"), max_length=200, blank=True)
    enabled = models.BooleanField(_("enabled"), default=False)
    context_window = models.PositiveIntegerField(_("context window (tokens)"), null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(_("max output tokens"), null=True, blank=True)
    supports_images = models.BooleanField(
        _("accepts images"),
        default=False,
        help_text=_("The model reads images (vision): people may attach pictures to their messages."),
    )
    offered_to_everyone = models.BooleanField(
        _("offered to everyone"),
        default=False,
        help_text=_(
            "Anyone may switch a chat to this model, whatever its persona, and pick it for their own personas."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider__name", "model_id"]
        verbose_name = _("chat model")
        verbose_name_plural = _("chat models")
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_id"], name="chatmodel_unique_per_provider"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.model_id


class Persona(models.Model):
    """What a user chats with: a system prompt, a greeting and a model with its parameters."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    avatar = models.CharField(_("avatar (emoji)"), max_length=16, default="🤖")
    description = models.CharField(_("description"), max_length=500, blank=True)
    greeting = models.TextField(
        _("greeting"), blank=True, help_text=_("The first assistant message of every new chat.")
    )
    system_prompt = models.TextField(_("system prompt"), blank=True)
    model = models.ForeignKey(
        ChatModel,
        on_delete=models.PROTECT,
        related_name="personas",
        limit_choices_to={"enabled": True},
        verbose_name=_("model"),
    )
    temperature = models.FloatField(
        _("temperature"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text=_("0–2; empty uses the provider's default."),
    )
    top_p = models.FloatField(
        _("top_p"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("0–1; empty uses the provider's default."),
    )
    max_tokens = models.PositiveIntegerField(
        _("max tokens"), null=True, blank=True, help_text=_("Upper bound on each reply's length.")
    )
    history_limit = models.PositiveIntegerField(
        _("history limit (messages)"),
        default=10,
        help_text=_("How many of the latest messages are sent with each new one."),
    )
    other_models = models.ManyToManyField(
        ChatModel,
        blank=True,
        related_name="+",
        limit_choices_to={"enabled": True},
        verbose_name=_("other models"),
        help_text=_("Models a chat with this persona may switch to, besides its own and those offered to everyone."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # None: the site's persona, made in the admin and read-only to users. A user: that user's own persona.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="personas",
        verbose_name=_("owner"),
        help_text=_("Empty for the site's personas. A user's own persona is private to them unless published."),
    )
    is_published = models.BooleanField(
        _("published to everyone"),
        default=False,
        help_text=_("A user's own persona offered to every user (the site's personas always are)."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("persona")
        verbose_name_plural = _("personas")
        # Given to a group (or a user) in the admin: its members may create their own personas.
        permissions = [("create_own_persona", _("Can create their own personas"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | Q(temperature__gte=0, temperature__lte=2),
                name="persona_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(top_p__isnull=True) | Q(top_p__gte=0, top_p__lte=1),
                name="persona_top_p_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name
