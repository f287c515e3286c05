from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser

from attachments.services import files_orphaned


class Command(BaseCommand):
    help = (
        "Delete attachment files in storage that no attachment names any more (left by a crash, or by user "
        "deletions before files went with their rows). Safe to run any time, e.g. weekly from cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-hours",
            type=int,
            default=24,
            help="Only files last modified this long ago (default 24), so an upload being saved is kept.",
        )
        parser.add_argument("--dry-run", action="store_true", help="List the files without deleting them.")

    def handle(self, *args, **options) -> None:
        if options["older_than_hours"] < 0:
            raise CommandError("--older-than-hours cannot be negative.")
        found = 0
        try:
            for name in files_orphaned(older_than=timedelta(hours=options["older_than_hours"])):
                found += 1
                if options["dry_run"]:
                    self.stdout.write(name)
                else:
                    default_storage.delete(name)
        except NotImplementedError:
            raise CommandError("The storage backend cannot tell when a file was written; nothing deleted.") from None
        verb = "Found" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {found} file(s) without an attachment.")
