from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TransferConfig(AppConfig):
    """Export of a user's history (one conversation or all) and import of exports, in the background."""

    name = "transfer"
    verbose_name = _("Export and import")

    def ready(self) -> None:
        """Start the import worker thread when this process serves the site (daphne, runserver), not otherwise."""
        from transfer import jobs

        jobs.import_worker_start_if_serving()
