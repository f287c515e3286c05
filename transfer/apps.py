from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TransferConfig(AppConfig):
    """Export of a user's history (one conversation or all) and import of exports, in the background."""

    name = "transfer"
    verbose_name = _("Export and import")
