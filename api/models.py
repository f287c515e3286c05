from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiKey(models.Model):
    """A user's personal key for the API (/v1 and gRPC), stored only as a hash.

    The key itself is shown once, when it is created (`api.keys`); `prefix` is
    its first characters, kept to tell keys apart. A short-lived key (the API
    page's console) has `expires_at`; a revoked one keeps its row, refused.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=24, editable=False)
    # SHA-256 of the whole key, hex: the key is 256 random bits, so no slow hash is needed to resist guessing.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        indexes = [models.Index(fields=["user", "-created_at"], name="apikey_user_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class GroupApiAccess(models.Model):
    """The admin's per-group switch for the API; the site-wide ones are SiteSettings.api_enabled and CHAT_API_ENABLED.

    No row means on. The API is off for a user when either site-wide switch is
    off or any of their groups' rows is (`api.auth.api_enabled_for`).
    """

    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, related_name="api_access", verbose_name=_("group")
    )
    enabled = models.BooleanField(_("API on"), default=False)

    class Meta:
        verbose_name = _("group's API access")
        verbose_name_plural = _("groups' API access")

    def __str__(self) -> str:
        return str(self.group)


class DirectModel(models.Model):
    """A chat model the admin lets API callers use directly, by its model id, without a persona."""

    model = models.OneToOneField(
        "personas.ChatModel", on_delete=models.CASCADE, related_name="api_direct", verbose_name=_("chat model")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("model for direct use")
        verbose_name_plural = _("models for direct use")

    def __str__(self) -> str:
        return str(self.model)
