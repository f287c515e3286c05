from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

_INHERIT_HELP = _("Empty: inherit (from the groups, else the site default). 0: no limit.")


class UsageLimit(models.Model):
    """Limits on what one user, or every member of one group, may ask of the upstream.

    Each limit left empty is inherited; 0 means no limit. How a user's limits
    are resolved from their own row, their groups' rows and the site defaults
    is described in `accounts.selectors.user_limits`.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="usage_limit",
        verbose_name=_("user"),
    )
    group = models.OneToOneField(
        "auth.Group",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="usage_limit",
        verbose_name=_("group"),
    )
    sends_per_minute = models.PositiveIntegerField(
        _("messages per minute"), null=True, blank=True, help_text=_INHERIT_HELP
    )
    concurrent_replies = models.PositiveIntegerField(
        _("replies at once"), null=True, blank=True, help_text=_INHERIT_HELP
    )
    daily_tokens = models.PositiveBigIntegerField(
        _("tokens per day"),
        null=True,
        blank=True,
        help_text=format_lazy(
            "{} {}",
            _("Prompt and completion tokens as the provider reports them, counted from midnight (site time zone)."),
            _INHERIT_HELP,
        ),
    )

    class Meta:
        verbose_name = _("usage limit")
        verbose_name_plural = _("usage limits")
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="usage_limit_user_xor_group",
                violation_error_message=_("Choose either a user or a group, not both."),
            ),
        ]

    def __str__(self) -> str:
        return str(self.user or self.group)


class Preference(models.Model):
    """One user's display choices, kept across devices: the interface language and the colour theme.

    `language` is a code from settings.LANGUAGES, or empty to follow the
    browser's Accept-Language; `theme` is one of Theme's values.
    """

    class Theme(models.TextChoices):
        SYSTEM = "system", _("As the system")
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference", verbose_name=_("user")
    )
    language = models.CharField(
        _("language"), max_length=16, blank=True, help_text=_("Empty: follow the browser's language.")
    )
    theme = models.CharField(_("theme"), max_length=8, choices=Theme.choices, default=Theme.SYSTEM)

    class Meta:
        verbose_name = _("preference")
        verbose_name_plural = _("preferences")

    def __str__(self) -> str:
        return str(self.user)


class CustomInstructions(models.Model):
    """What one user wants every chat's model to know about them and how to answer, sent with each reply.

    Added to the system message (conversations.upstream) and counted in the
    context budget; each text is at most `MAX_CHARS` characters, blank when unset.
    """

    MAX_CHARS = 1500

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="custom_instructions",
        verbose_name=_("user"),
    )
    about_me = models.TextField(_("what the model should know about you"), max_length=MAX_CHARS, blank=True)
    reply_style = models.TextField(_("how the model should answer"), max_length=MAX_CHARS, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("custom instructions")
        verbose_name_plural = _("custom instructions")

    def __str__(self) -> str:
        return str(self.user)


class SiteSettings(models.Model):
    """The site-wide settings the admin changes at run time: who may sign up, who may open share links, the API.

    One row (pk 1), made on first read by `accounts.selectors.site_settings`.
    """

    class SignupMode(models.TextChoices):
        OPEN = "open", _("Open: anyone may sign up")
        CLOSED = "closed", _("Closed: only the admin creates accounts")
        INVITATION = "invitation", _("By invitation link only")
        DOMAINS = "domains", _("Only for email addresses of the listed domains")

    signup_mode = models.CharField(_("sign-up"), max_length=16, choices=SignupMode.choices, default=SignupMode.OPEN)
    signup_domains = models.TextField(
        _("allowed email domains"),
        blank=True,
        help_text=_("One per line or separated by commas, e.g. example.edu. Used when sign-up is limited to domains."),
    )
    signup_requires_approval = models.BooleanField(
        _("new accounts wait for approval"),
        default=False,
        help_text=_("A new account cannot sign in until an admin ticks “Active” on it (Users list, filter “active”)."),
    )
    shares_visible_to_anonymous = models.BooleanField(
        _("signed-out visitors may open share links"),
        default=False,
        help_text=_("Off: a share link opens only for people signed in to this site."),
    )
    api_enabled = models.BooleanField(
        _("API on"),
        default=True,
        help_text=_(
            "Off: every API key is refused (403 on /v1, PERMISSION_DENIED over gRPC) until it is on again; keys are"
            " kept. Per group: “Groups' API access”. The server setting CHAT_API_ENABLED=0 keeps the API off"
            " whatever this says."
        ),
    )

    class Meta:
        verbose_name = _("site settings")
        verbose_name_plural = _("site settings")

    def __str__(self) -> str:
        return str(_("Site settings"))

    @property
    def allowed_domains(self) -> list[str]:
        """The lower-cased domains of `signup_domains`, without a leading "@"."""
        parts = self.signup_domains.replace(",", "\n").split()
        return [part.strip().lstrip("@").lower() for part in parts if part.strip().lstrip("@")]


class Invitation(models.Model):
    """A sign-up link: /accounts/invite/<code>/ lets its holder sign up while sign-up is by invitation.

    `max_uses` 1 is a single-use link; more (or 0: no limit) a multi-use one;
    `expires_at` empty never expires. `uses` counts the accounts made with it.
    """

    code = models.CharField(max_length=64, unique=True, editable=False)
    note = models.CharField(_("note"), max_length=200, blank=True, help_text=_("Whom it is for (only admins see it)."))
    max_uses = models.PositiveIntegerField(_("uses allowed"), default=1, help_text=_("1: single use. 0: no limit."))
    uses = models.PositiveIntegerField(_("used"), default=0, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self) -> str:
        return self.note or self.code[:8]
