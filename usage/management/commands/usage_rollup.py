from datetime import date

from django.core.management.base import BaseCommand

from conversations.models import Message
from usage import rollup


class Command(BaseCommand):
    help = "Sum each day that is over into the usage rollup (run daily, e.g. from cron, shortly after 01:00)."

    def handle(self, *args, **options) -> None:
        first = Message.objects.order_by("created_at").values_list("created_at", flat=True).first()
        if first is None:
            return
        start: date = rollup.day_of(first)
        done = rollup.usage_rollup_pending(first=start, last=rollup.last_rollable_day())
        self.stdout.write(f"Rolled up {len(done)} day(s).")
