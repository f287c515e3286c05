from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotsConfig(AppConfig):
    """Feishu, Lark and WeChat Official Account bots answered by the site's personas."""

    name = "bots"
    verbose_name = _("Chat bots")
