"""`manage.py rerender_replies`: render the stored replies and greetings again, after an upgrade of the renderer."""

from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from conversations.services import replies_rerender


class Command(BaseCommand):
    help = (
        "Render every stored reply and greeting again with the current Markdown renderer (math, task lists, "
        "table alignment), so replies saved before an upgrade look like new ones. Safe to run again."
    )

    def handle(self, *args, **options) -> None:
        changed = replies_rerender()
        self.stdout.write(
            ngettext("%(count)d message rendered anew.", "%(count)d messages rendered anew.", changed)
            % {"count": changed}
        )
