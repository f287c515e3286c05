from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotsConfig(AppConfig):
    """Feishu, Lark and WeChat Official Account bots answered by the site's personas."""

    name = "bots"
    verbose_name = _("Chat bots")

    def ready(self) -> None:
        """In a process that serves the site, finish the deliveries a stopped process left, from its start on."""
        from bots import resume

        resume.resume_when_serving()
