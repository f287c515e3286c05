"""`manage.py rerender_replies`: render the stored messages again, after an upgrade of the renderer."""

from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from conversations.services import replies_rerender


class Command(BaseCommand):
    help = (
        "Render every stored message again with the current renderer (math in replies and user messages, task "
        "lists, table alignment), so messages saved before an upgrade look like new ones. Safe to run again."
    )

    def handle(self, *args, **options) -> None:
        changed = replies_rerender()
        self.stdout.write(
            ngettext("%(count)d message rendered anew.", "%(count)d messages rendered anew.", changed)
            % {"count": changed}
        )
